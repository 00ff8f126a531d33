"""Block-sparse prefill vs dense prefill: speed and fidelity on real documents.

For each document (CUAD contracts / a trial paper from ../shared/corpus, cut to C tokens) and each
variant (sparse_prefill_from, prefill_top_k, prefill_chunk): one prefill of all C tokens in one forward
(timed, as the engine runs it), then the same forward with the logits of every position, compared with
dense prefill over the positions the variant makes sparse: perplexity of the document's own next tokens
and top-1 next-token agreement.

Run: python benchmarks/bench_prefill.py [--context 8150] [--docs 0,1,2] [--threads N]
     [--variants 4096:64:512,4096:32:512]   (from:top_k:chunk)
Prints one JSON line per row (load average included: the machine's cores may be shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from m3analyst.engine import load_engine
from m3analyst.resources import corpus_dir
from m3analyst.settings import EngineSettings

DOCS = [
    "legal/contracts_txt/GOOSEHEADINSURANCE,INC_04_02_2018-EX-10.6-Franchise Agreement.txt",
    "legal/contracts_txt/PhasebioPharmaceuticalsInc_20200330_10-K_EX-10.21_12086810_EX-10.21_Development Agreement.txt",
    "bio/trials_txt/PMC5388694.txt",
]


def doc_ids(eng, rel: str, n: int) -> list[int]:
    ids = eng._encode_suffix((corpus_dir() / rel).read_text(errors="ignore"))
    while len(ids) < n:  # short document: repeat it (still real text)
        ids = ids + ids
    return ids[:n]


def run_variant(eng, ids: list[int], sparse_from: int, top_k: int, chunk: int):
    """(prefill seconds, logits of every position [C, V] fp32)."""
    a = eng.settings.attention
    a.sparse_prefill_from, a.prefill_top_k, a.prefill_chunk = sparse_from, top_k, chunk
    t = time.perf_counter()
    sess = eng.prefill(ids, reserve=8)
    seconds = time.perf_counter() - t
    del sess
    cache = eng._new_cache(len(ids) + 8)
    with torch.inference_mode():
        logits = eng._forward(ids, cache, eng._context(cache), all_logits=True)
    return seconds, logits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=8150)
    ap.add_argument("--docs", default="0,1,2")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--variants", default="4096:64:512,4096:32:512")
    args = ap.parse_args()
    eng = load_engine(EngineSettings(threads=args.threads))
    variants = [tuple(int(x) for x in v.split(":")) for v in args.variants.split(",")]
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "context": args.context,
                      "threads": eng.info()["threads"], "load": os.getloadavg()}), flush=True)
    for d in (int(x) for x in args.docs.split(",")):
        ids = doc_ids(eng, DOCS[d], args.context)
        target = torch.tensor(ids[1:])
        dense_s, dense_logits = run_variant(eng, ids, 0, 64, 512)
        dense_top = dense_logits[:-1].argmax(-1)
        dense_nll = -torch.log_softmax(dense_logits[:-1], -1).gather(1, target[:, None])[:, 0]
        print(json.dumps({"doc": DOCS[d].split("/")[-1][:40], "variant": "dense", "prefill_s": round(dense_s, 2),
                          "load": os.getloadavg()[0]}), flush=True)
        for sparse_from, top_k, chunk in variants:
            secs, logits = run_variant(eng, ids, sparse_from, top_k, chunk)
            span = slice(sparse_from, None)  # positions whose attention was sparse
            nll = -torch.log_softmax(logits[:-1], -1).gather(1, target[:, None])[:, 0]
            ppl, ppl_dense = math.exp(nll[span].mean()), math.exp(dense_nll[span].mean())
            agree = (logits[:-1].argmax(-1) == dense_top)[span].float().mean().item()
            print(json.dumps({"doc": DOCS[d].split("/")[-1][:40], "variant": f"sparse from {sparse_from}, top-{top_k}, chunk {chunk}",
                              "prefill_s": round(secs, 2), "ppl": round(ppl, 3), "ppl_dense": round(ppl_dense, 3),
                              "ppl_change_pct": round((ppl / ppl_dense - 1) * 100, 2), "top1_agreement": round(agree, 4),
                              "load": os.getloadavg()[0]}), flush=True)
            del logits
        del dense_logits


if __name__ == "__main__":
    main()
