"""Per-layer cost of one batch-1 decode attention call at 8K under each selection option (1 thread, CPU).

Shapes of SmolLM2-135M (9 q / 3 KV heads, D 64), bf16 cache of 8,191 tokens in 64-token blocks, random keys.
Times selection + the engine's sparse_decode_b1 (or dense SDPA), best of --reps rounds of --iters calls,
in microseconds. A layer listed dense costs the dense figure; multiply by layer counts for a step.

Run: python benchmarks/fidelity_cost.py [--context 8191]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from m3analyst.kernels.msa import eager as msa_ops
from m3analyst.kernels.msa import naive as scorers


def best_us(fn, iters: int, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t0) / iters)
    return round(best * 1e6, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=8191)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    S, bs, hkv, D = args.context, 64, 3, 64
    cap = -(-(S + 1) // bs) * bs
    keys = torch.randn(1, hkv, cap, D).bfloat16()
    vals = torch.randn(1, hkv, cap, D).bfloat16()
    ks, kn, kx = (torch.zeros(1, hkv, cap // bs, D) for _ in range(3))
    msa_ops.update_summaries(ks, kn, kx, keys[:, :, :S].float(), 0, bs)
    q = (torch.randn(1, 9, D) * 3).bfloat16()

    def sparse(select, k):
        return lambda: msa_ops.sparse_decode_b1(q, keys, vals, select(k), S, bs, 0.125)

    opts = {
        "minmax k16": sparse(lambda k: msa_ops.select_blocks_b1(q, ks, S, bs, k, 1, 2, "minmax", kn, kx), 16),
        "hybrid k16": sparse(lambda k: scorers.select_blocks_b1(q, ks, S, bs, k, 1, 2, "hybrid", kn, kx), 16),
        "rerank2 k16": sparse(lambda k: scorers.select_rerank(q, keys, ks, kn, kx, S, bs, k, 1, 2), 16),
        "minmax k24": sparse(lambda k: msa_ops.select_blocks_b1(q, ks, S, bs, k, 1, 2, "minmax", kn, kx), 24),
        "rerank2 k24": sparse(lambda k: scorers.select_rerank(q, keys, ks, kn, kx, S, bs, k, 1, 2), 24),
        "minmax k32": sparse(lambda k: msa_ops.select_blocks_b1(q, ks, S, bs, k, 1, 2, "minmax", kn, kx), 32),
        "rerank2 k32": sparse(lambda k: scorers.select_rerank(q, keys, ks, kn, kx, S, bs, k, 1, 2), 32),
        "dense": lambda: F.scaled_dot_product_attention(q[:, :, None], keys[:, :, :S], vals[:, :, :S], scale=0.125,
                                                        enable_gqa=True),
    }
    res = {name: best_us(fn, args.iters, args.reps) for name, fn in opts.items()}
    print(json.dumps({"context": S, "us_per_layer_call": res, "load": os.getloadavg()[0],
                      "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}))


if __name__ == "__main__":
    main()
