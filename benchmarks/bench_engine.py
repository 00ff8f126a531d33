"""Engine speed: prefill seconds and decode tokens/s (attention share) per context, MSA vs dense,
beside plain transformers (DynamicCache, dense SDPA, fp32) on the same prompt as the baseline.

Run: python benchmarks/bench_engine.py [--contexts 2048,8192] [--steps 32] [--threads N] [--decode-threads N] [--no-hf]
     [--scorer S] [--top-k K] [--block-size B] [--rerank R]
Rows "msa" use the engine's defaults (MSA decode, block-sparse prefill past 4,096 tokens); rows "dense" run
dense prefill and dense decode on the same engine.
Prints one JSON line per row; the 1-minute load average is recorded with each (cores shared here).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from m3analyst.engine import load_engine
from m3analyst.engine.bench import corpus_ids, run_bench
from m3analyst.engine.core import cache_keyword
from m3analyst.settings import EngineSettings


def hf_baseline(eng, ids: list[int], steps: int) -> dict:
    """transformers' own path (the issue's baseline): model(ids) with its DynamicCache, then greedy steps."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(eng.path), dtype=torch.float32, attn_implementation="sdpa").eval()
    with torch.inference_mode():
        t = time.perf_counter()
        out = model(torch.tensor([ids]), use_cache=True, logits_to_keep=1)
        prefill = time.perf_counter() - t
        cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t = time.perf_counter()
        for _ in range(steps):
            out = model(nxt, use_cache=True, **{cache_keyword(model): cache})
            cache, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        tps = steps / (time.perf_counter() - t)
    return {"backend": "hf-dense-fp32", "context": len(ids), "prefill_s": round(prefill, 3),
            "decode_tok_s": round(tps, 2), "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", default="2048,8192")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="prefill threads (default: all cores)")
    ap.add_argument("--decode-threads", type=int, default=None, help="decode threads (default: the engine's)")
    ap.add_argument("--scorer", default=None, help="a scorer name (default: the settings' default, auto)")
    ap.add_argument("--top-k", type=int, default=None, help="blocks kept per KV head (default: the settings')")
    ap.add_argument("--rerank", type=int, default=None, help="candidates x top-k scored exactly (0/1: off)")
    ap.add_argument("--block-size", type=int, default=None, help="tokens per KV block (default: the settings')")
    ap.add_argument("--dtype", default="auto", help="auto (int8 decode + bf16 prefill on AMX/AVX512-BF16), int8, float32, bfloat16")
    ap.add_argument("--backends", default="msa,dense", help="comma list of msa, dense")
    ap.add_argument("--no-hf", action="store_true", help="skip the plain transformers baseline")
    args = ap.parse_args()
    settings = EngineSettings(threads=args.threads, decode_threads=args.decode_threads, dtype=args.dtype)
    if args.scorer:
        settings.attention.scorer = args.scorer
    if args.top_k is not None:
        settings.attention.top_k = args.top_k
    if args.rerank is not None:
        settings.attention.rerank = args.rerank
    if args.block_size is not None:
        settings.attention.block_size = args.block_size
    eng = load_engine(settings)
    info = eng.info()
    a = settings.attention
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": info["threads"],
                      "attention": dict(scorer=a.scorer, top_k=a.top_k, rerank=a.rerank, block_size=a.block_size),
                      "decode_threads": info["decode_threads"],
                      "dtype": info["dtype"], "prefill_dtype": info["prefill_dtype"],
                      "decode_weights": info["decode_weights"], "load": os.getloadavg()}))
    contexts = [int(c) for c in args.contexts.split(",")]
    for row in run_bench(eng, contexts, tuple(args.backends.split(",")), args.steps):
        print(json.dumps(row.to_dict()), flush=True)
    if not args.no_hf:
        for c in contexts:
            c = min(c, eng.context_length - args.steps - 2)
            print(json.dumps(hf_baseline(eng, corpus_ids(eng, c), args.steps)), flush=True)


if __name__ == "__main__":
    main()
