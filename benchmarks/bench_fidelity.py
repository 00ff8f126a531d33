"""MSA vs dense fidelity on real long documents (decode path), and block-scorer recall.

For each document and context length C: prefill the first C-256 tokens once (dense, shared), then feed
the last 256 tokens one at a time (teacher forcing) under each backend: dense, MSA/mean, MSA/minmax.
Reports perplexity over those 256 tokens, top-1 agreement with dense, and each scorer's recall of the
exact top-K blocks (ranked by the true max attention logit q.k over the block, group heads pooled;
forced sink/local blocks excluded from both sides). Then greedy generations (64 tokens after a
question) are compared, MSA vs dense.

Each row also carries the selection's cost per KV head and decode step (scored_tokens: keys scored exactly, i.e.
rerank x top-K candidate blocks' tokens, or the attended ones in one stage; attended_tokens: top-K x block tokens)
and the commit of the m3analyst package imported.

Run: python benchmarks/bench_fidelity.py [--contexts 4096,8192] [--out benchmarks/fidelity.json]
Round 4 (RESULTS.md): --threads 1 --no-gen --contexts 8192 --variants dense,msa-default,msa-k40,...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from m3analyst.engine import load_engine
from m3analyst.resources import corpus_dir
from m3analyst.settings import AttentionSettings, EngineSettings

DOCS = [
    "legal/contracts_txt/GOOSEHEADINSURANCE,INC_04_02_2018-EX-10.6-Franchise Agreement.txt",
    "legal/contracts_txt/PhasebioPharmaceuticalsInc_20200330_10-K_EX-10.21_12086810_EX-10.21_Development Agreement.txt",
    "bio/trials_txt/PMC5388694.txt",
]
TAIL = 256
VARIANTS = {  # name -> AttentionSettings overrides of the settings' defaults (see m3analyst/settings.py)
    "dense": {"backend": "dense"},
    "msa-default": {"backend": "msa"},  # the shipped defaults (m3analyst/settings.py: 80 blocks of 32, hybrid scorer, rerank x2)
    "msa-k16-minmax": {"backend": "msa", "top_k": 16, "scorer": "minmax", "rerank": 0, "dense_layers": 2},  # round 1's defaults
    "msa-rr3": {"backend": "msa", "rerank": 3},
    "msa-mean": {"backend": "msa", "scorer": "mean"},
    "msa-minmax": {"backend": "msa", "scorer": "minmax"},
    "msa-mean-k32": {"backend": "msa", "scorer": "mean", "top_k": 32},
    "msa-minmax-k32": {"backend": "msa", "scorer": "minmax", "top_k": 32},
    "msa-mean-b32k32": {"backend": "msa", "scorer": "mean", "block_size": 32, "top_k": 32, "local_blocks": 4},
    "msa-minmax-b32k32": {"backend": "msa", "scorer": "minmax", "block_size": 32, "top_k": 32, "local_blocks": 4},
    "msa-mean-dense4": {"backend": "msa", "scorer": "mean", "dense_layers": 4},
    # round 4: settings around the defaults (hybrid scorer, rerank x2, top-K 32, block 64), to meet the 8K target
    "msa-k40": {"backend": "msa", "top_k": 40},
    "msa-k48": {"backend": "msa", "top_k": 48},
    "msa-rr3-k40": {"backend": "msa", "rerank": 3, "top_k": 40},
    "msa-rr4": {"backend": "msa", "rerank": 4},  # 128 candidates: every block at 8K (exact selection, K 32)
    "msa-local4": {"backend": "msa", "local_blocks": 4},
    "msa-b32k64": {"backend": "msa", "block_size": 32, "top_k": 64},  # same tokens as the defaults, finer blocks
    "msa-b32k64-l4": {"backend": "msa", "block_size": 32, "top_k": 64, "local_blocks": 4},  # 128 local tokens
    "msa-b32k64-rr3": {"backend": "msa", "block_size": 32, "top_k": 64, "rerank": 3},
    "msa-b32k80": {"backend": "msa", "block_size": 32, "top_k": 80},
    "msa-b32k56": {"backend": "msa", "block_size": 32, "top_k": 56},  # fewer tokens than the defaults
    "msa-b32k72": {"backend": "msa", "block_size": 32, "top_k": 72},
    "msa-b32k64-rr4": {"backend": "msa", "block_size": 32, "top_k": 64, "rerank": 4},  # every block a candidate at 8K
    "msa-b16k128": {"backend": "msa", "block_size": 16, "top_k": 128},  # the defaults' tokens in 16-token blocks
    "msa-b32k96": {"backend": "msa", "block_size": 32, "top_k": 96},
}
DEFAULT_VARIANTS = "dense,msa-default,msa-k16-minmax"
DEFAULT_BLOCK = AttentionSettings().block_size  # variants that name no block size run the shipped one


def selection_cost(overrides: dict, seq_len: int) -> dict:
    """Tokens per KV head and decode step at seq_len: keys scored exactly (two-stage rerank: every candidate block's
    tokens; one stage: the attended ones) and tokens attended (keys+values of the top-K blocks); dense reads all.
    summary_rows: D-wide summary vectors read to score every block (mean key, plus min and max unless "mean")."""
    s = AttentionSettings().model_copy(update=overrides)
    if s.backend == "dense":
        return {"scored_tokens": seq_len, "attended_tokens": seq_len, "summary_blocks": 0, "summary_rows": 0}
    nb = -(-seq_len // s.block_size)
    attended = min(s.top_k, nb) * s.block_size
    scored = min(max(s.rerank, 1) * s.top_k, nb) * s.block_size if s.rerank > 1 else attended
    return {"scored_tokens": min(scored, seq_len), "attended_tokens": min(attended, seq_len), "summary_blocks": nb,
            "summary_rows": nb * (1 if s.scorer == "mean" else 3)}


class RecallMeter:
    """Recall of the selected non-forced blocks against the exact top blocks by max attention logit."""

    def __init__(self, s):
        self.s, self.hits, self.total, self.secs = s, 0, 0, 0.0  # secs: own time (inside the engine's attention timer)

    def __call__(self, layer_idx, q, layer, idx, seq_len):
        t0 = time.perf_counter()
        self._count(q, layer, idx, seq_len)
        self.secs += time.perf_counter() - t0

    def _count(self, q, layer, idx, seq_len):
        s = self.s
        bs = s.block_size
        nb = -(-seq_len // bs)
        B, hq, D = q.shape
        hkv = layer.keys.shape[1]
        keys = layer.keys[0, :, : nb * bs].float()  # [hkv, nb*bs, D]
        logits = torch.matmul(q[0].float().view(hkv, hq // hkv, D), keys.transpose(1, 2))  # [hkv, G, nb*bs]
        pos = torch.arange(nb * bs)
        logits[:, :, pos >= seq_len] = -math.inf
        block_max = logits.view(hkv, -1, nb, bs).amax(dim=(1, 3))  # [hkv, nb]
        forced = torch.zeros(nb, dtype=torch.bool)
        forced[: s.sink_blocks] = True
        forced[nb - s.local_blocks :] = True
        block_max[:, forced] = -math.inf
        free = s.top_k - int(forced.sum())
        exact = block_max.topk(free, dim=-1).indices
        for h in range(hkv):
            chosen = {int(b) for b in idx[0, h] if b >= 0 and not forced[int(b)]}
            self.hits += len(chosen & {int(b) for b in exact[h]})
            self.total += free

    @property
    def recall(self):
        return self.hits / max(self.total, 1)


def teacher_forced(eng, cache, n_prefix, tail_ids, variant, recall=True):
    """NLL per token and argmax predictions for tail_ids fed one by one after the cached prefix. recall=False: no
    recall meter (an observer makes the engine run the model's modules instead of its C decode step)."""
    ctx = eng._context(cache, VARIANTS[variant])
    ctx.track = False
    meter = RecallMeter(ctx.settings) if ctx.mode == "msa" and recall else None
    ctx.observer = meter
    nll, top1 = [], []
    logits = None
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i, tok in enumerate(tail_ids):
            if i:  # the first target is predicted by the prefill logits
                logits = eng._forward([tail_ids[i - 1]], cache, ctx)[-1]
            else:
                logits = first_logits[n_prefix]
            lp = torch.log_softmax(logits, -1)
            nll.append(-float(lp[tok]))
            top1.append(int(lp.argmax()))
    cache.truncate(n_prefix)
    attn_us = (ctx.attn_s - (meter.secs if meter else 0.0)) / max(ctx.decode_calls, 1) * 1e6  # per layer call
    return nll, top1, (meter.recall if meter else None), time.perf_counter() - t0, attn_us


first_logits: dict[int, torch.Tensor] = {}


def _commit() -> str:
    """Commit of the m3analyst package actually imported (a snapshot may carry a COMMIT file), for the JSON rows."""
    import subprocess

    import m3analyst

    root = Path(m3analyst.__file__).resolve().parent.parent
    if (root / "COMMIT").is_file():
        return (root / "COMMIT").read_text().strip()
    r = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


COMMIT = _commit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", default="4096,8192")
    ap.add_argument("--docs", type=int, default=len(DOCS))
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--out", default="benchmarks/fidelity.json")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma list of {', '.join(VARIANTS)} (dense first)")
    ap.add_argument("--no-gen", action="store_true", help="skip the greedy generation comparison")
    ap.add_argument("--first-doc", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--kv-cache", default="auto", help="engine.kv_cache: auto, model (the model's dtype), bfloat16")
    ap.add_argument("--no-recall", action="store_true", help="skip the scorer-recall meter (times the engine's own "
                    "decode path: the meter's observer sends decode through the model's modules)")
    ap.add_argument("--doc", action="append", default=None, help="corpus-relative document (repeatable) instead of DOCS")
    ap.add_argument("--model", default="smollm2-135m-instruct", help="registry name, HF dir or .gguf")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = ap.parse_args()
    variants = args.variants.split(",")
    eng = load_engine(EngineSettings(model=args.model, device=args.device, threads=args.threads, time_budget=1e9,  # full context
                                     decode_threads=args.threads, kv_cache=args.kv_cache))  # prefill + decode
    contexts = [int(c) for c in args.contexts.split(",")]
    rows, gens = [], []
    for rel in (args.doc or DOCS)[args.first_doc : args.first_doc + args.docs]:
        ids = eng._encode_suffix((corpus_dir() / rel).read_text(errors="ignore"))
        for C in contexts:
            C = min(C, eng.context_length - 1)
            if len(ids) < C:
                print(f"skip {rel} at {C}: only {len(ids)} tokens")
                continue
            n_prefix = C - TAIL
            tail = ids[n_prefix:C]
            res = {}
            for bs in sorted({VARIANTS[v].get("block_size", DEFAULT_BLOCK) for v in variants}):  # one prefill per block size
                eng.settings.attention.block_size = bs
                cache = eng._new_cache(C + 8, minmax=True)
                with torch.inference_mode():
                    first_logits[n_prefix] = eng._prefill_ids(ids[:n_prefix], cache, eng._context(cache))
                for v in variants:
                    if VARIANTS[v].get("block_size", DEFAULT_BLOCK) == bs:
                        res[v] = teacher_forced(eng, cache, n_prefix, tail, v, recall=not args.no_recall)
            eng.settings.attention.block_size = DEFAULT_BLOCK
            dense_top1 = res["dense"][1]
            for v, (nll, top1, recall, secs, attn_us) in res.items():
                row = {"doc": Path(rel).name[:40], "model": eng.name, "device": str(eng.device), "context": C, "variant": v, "ppl": math.exp(sum(nll) / len(nll)),
                       "top1_agree_dense": sum(a == b for a, b in zip(top1, dense_top1)) / len(top1),
                       "top1_acc": sum(a == b for a, b in zip(top1, tail)) / len(tail), "scorer_recall": recall,
                       "seconds": round(secs, 1), "attn_us_per_layer": round(attn_us, 1),  # recall meter excluded
                       "load": os.getloadavg()[0], **selection_cost(VARIANTS[v], C), "overrides": VARIANTS[v],
                       "commit": COMMIT, "kv_cache": eng.info()["kv_cache"],
                       "decode_step": eng.info().get("op_paths", {}).get("decode_step")}
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.no_gen:
            continue
        # greedy generations after a question, MSA vs dense (MSA active: prompt ~4K tokens)
        prompt = eng.tokenizer.decode(ids[:4000]) + "\n\nQuestion: Who are the parties and what is this document about?\nAnswer:"
        out = {}
        for v in ("dense", "msa-default", "msa-k16-minmax"):
            eng.settings.attention = eng.settings.attention.model_copy(update=VARIANTS[v])
            out[v] = eng.generate(prompt, max_new_tokens=args.gen_tokens).token_ids
        eng.settings.attention = type(eng.settings.attention)()
        for v in ("msa-default", "msa-k16-minmax"):
            common = next((i for i, (a, b) in enumerate(zip(out[v], out["dense"])) if a != b), min(len(out[v]), len(out["dense"])))
            g = {"doc": Path(rel).name[:40], "variant": v, "identical": out[v] == out["dense"], "common_prefix": common,
                 "len": len(out[v]), "dense_len": len(out["dense"]), "text": eng.tokenizer.decode(out[v])[:160],
                 "dense_text": eng.tokenizer.decode(out["dense"])[:160]}
            gens.append(g)
            print(json.dumps(g), flush=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "generations": gens, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))


if __name__ == "__main__":
    main()
