"""CPU kernels of the engine, timed alone (results: benchmarks/RESULTS.md, "Engine round 3").

  --part msa    the fused MSA decode kernel (kernels/msa_cpu.c): µs per layer at 8K context over 30 layers'
                caches of SmolLM2's shape (3 KV heads x 3 query heads, head dim 64, bf16), several selections;
                --baseline REV also times that git revision's kernel (its 25-argument ABI) in the same run
  --part int8   one decode step's weight-only int8 linears (SmolLM2's 30 layers + lm_head): the C loop
                (kernels/int8_cpu.c) vs PyTorch's _weight_int8pack_mm, and the same through Int8Linear modules
  --part amx    causal attention of an 8K prompt, one layer (9 query / 3 KV heads): the AMX kernel
                (kernels/attn_amx.c) vs PyTorch's bf16 scaled_dot_product_attention
                --amx-baseline REV also times that revision's attn_amx.c (with its cpu_common.h) in the same run
  --part norm   RMSNorm (SmolLM2's 576-wide rows) and the SiLU-gate product (1,536 wide), 8K rows and one row:
                the fused C kernels (kernels/norm_cpu.c) vs their PyTorch references
  --part prefill  an 8K prompt prefilled by the engine (default model), AMX attention vs PyTorch's, alternating;
                  and the perplexity of 600 continuation tokens after 5,000-token prefixes of 4 CUAD contracts with
                  each (engine.score), i.e. whether the kernel changes what the model computes
  --part fuse   the same for the fused norm/MLP modules (engine/fuse.py) on vs off (their PyTorch fallback),
                with decode tokens/s after the prefill (--model: another registry model, e.g. gemma-3-270m)
Each kernel figure is the best of --rounds interleaved repetitions, at the thread count given (--threads).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from m3analyst.kernels import attn_amx, cbuild, int8_cpu, norm_cpu
from m3analyst.kernels.msa import cpu as msa_cpu
from m3analyst.settings import EngineSettings

HKV, G, D, LAYERS = 3, 3, 64, 30
# (block size, top_k, rerank, scorer): the default, 72 x 32, round 3's default, one stage, the issue's, every block
MSA_CONFIGS = [(32, 80, 2, "hybrid"), (32, 72, 2, "hybrid"), (64, 32, 2, "hybrid"), (64, 32, 0, "hybrid"), (64, 16, 0, "minmax"), (64, 128, 0, "mean")]


def best_of(rounds: int, fns: dict) -> dict:
    """Interleave the callables `rounds` times; the best wall time of each (s)."""
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def _build_revision(rev: str, source: str):
    """kernels/<source> of git revision `rev`, with that revision's kernels/cpu_common.h where it had one, built
    here (cbuild) in a temporary folder."""
    tmp = Path(tempfile.mkdtemp())
    for name in (source, "cpu_common.h"):
        shown = subprocess.run(["git", "show", f"{rev}:kernels/{name}"], capture_output=True, text=True)
        if shown.returncode == 0:
            (tmp / name).write_text(shown.stdout)
    return cbuild.build(tmp / source)


def _baseline_call(rev: str):
    """The msa_decode_b1 entry of git revision `rev` (the 25-argument ABI before LayerPlan), built here."""
    lib = _build_revision(rev, "msa_cpu.c")
    fn = lib.msa_decode_b1
    p, i, i64, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float
    fn.argtypes = [p, p, p, i, p, p, p, i, i, i, i, i64, i64, i64, i, i, i, i, f, f, i, p, p, p, p]
    scratch = {}

    def call(q, layer, seq_len, bs, top_k, rerank, scorer):
        key = (bs, top_k, rerank)
        if key not in scratch:
            scratch[key] = (torch.empty(HKV * (G + 1) * layer.ksum.shape[2]), torch.empty(HKV * G * max(rerank, 1) * top_k * bs))
        sel, logits = scratch[key]
        out, idx = torch.empty(HKV * G, D), torch.empty(HKV, top_k, dtype=torch.int32)
        q32 = q[0].float().contiguous()
        fn(q32.data_ptr(), layer.keys.data_ptr(), layer.values.data_ptr(), 1, layer.ksum.data_ptr(), layer.kmin.data_ptr(),
           layer.kmax.data_ptr(), msa_cpu.SCORERS[scorer], HKV, G, D, layer.keys.shape[2], layer.ksum.shape[2], seq_len,
           bs, top_k, 1, 2, D ** -0.5, 0.5, rerank, idx.data_ptr(), sel.data_ptr(), logits.data_ptr(), out.data_ptr())
        return out.to(q.dtype)

    return call


def part_msa(args) -> list[dict]:
    from m3analyst.engine.kv_cache import MSACache

    S = args.context
    caches = {}
    with torch.inference_mode():
        for bs in sorted({c[0] for c in MSA_CONFIGS}):
            caches[bs] = MSACache(LAYERS, S + 64, bs)
            for layer in caches[bs].layers:
                layer.update(torch.randn(1, HKV, S, D).bfloat16(), torch.randn(1, HKV, S, D).bfloat16())
    q = torch.randn(1, HKV * G, D).bfloat16()
    base = _baseline_call(args.baseline) if args.baseline else None
    rows = []
    for bs, top_k, rerank, scorer in MSA_CONFIGS:
        layers = caches[bs].layers
        plans = [msa_cpu.LayerPlan(q, L.keys, L.values, L.ksum, L.kmin, L.kmax, bs, top_k, 1, 2, scorer, D ** -0.5,
                                   rerank=rerank) for L in layers]
        fns = {"kernel": lambda: [p(q, S) for p in plans]}
        if base:
            fns["baseline"] = lambda: [base(q, L, S, bs, top_k, rerank, scorer) for L in layers]
        t = best_of(args.rounds, fns)
        rows.append(dict(part="msa", context=S, block_size=bs, top_k=top_k, rerank=rerank, scorer=scorer,
                         **{f"{k}_us_per_layer": round(v / LAYERS * 1e6, 1) for k, v in t.items()}))
    return rows


def part_int8(args) -> list[dict]:
    from m3analyst.engine.quant import Int8Linear

    shapes = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]  # q k v o gate up down
    mods = [[Int8Linear(torch.nn.Linear(K, N, bias=False)) for N, K in shapes] for _ in range(LAYERS)]
    mods.append([Int8Linear(torch.nn.Linear(576, 49152, bias=False))])  # lm_head
    xs = {K: torch.randn(1, 1, K).bfloat16() for K in (576, 1536)}
    nbytes = sum(m.weight_q.numel() for layer in mods for m in layer)

    def step(use_c: bool):
        for layer in mods:
            for m in layer:
                x = xs[m.in_features]
                if use_c:
                    int8_cpu.gemv(x, m.weight_q, m.scales, None)
                else:
                    torch.ops.aten._weight_int8pack_mm(x.reshape(1, -1), m.weight_q, m.scales)

    def modules():  # what the engine runs: Int8Linear.forward (its bound C call) per linear
        for layer in mods:
            for m in layer:
                m(xs[m.in_features])

    with torch.inference_mode():
        t = best_of(args.rounds, {"c": lambda: step(True), "torch": lambda: step(False), "modules": modules})
    return [dict(part="int8", weights_mb=round(nbytes / 1e6, 1), **{f"{k}_ms": round(v * 1e3, 2) for k, v in t.items()},
                 **{f"{k}_gb_s": round(nbytes / v / 1e9, 1) for k, v in t.items()})]


def _amx_baseline(rev: str):
    """attn_amx.c of git revision `rev`, built here and declared."""
    lib = _build_revision(rev, "attn_amx.c")
    attn_amx._declare(lib)
    return lib


def _with_lib(kernel: cbuild.Kernel, lib, fn):
    """fn() with `kernel` bound to lib for the call."""
    def call():
        saved = kernel.lib
        kernel.lib = lib
        try:
            return fn()
        finally:
            kernel.lib = saved
    return call


def part_amx(args) -> list[dict]:
    if attn_amx.library() is None:
        return [dict(part="amx", skipped="AMX kernel not built: no AMX, no C compiler or M3ANALYST_CPU_KERNEL=0")]
    S, hq = args.context, HKV * G
    k, v = torch.randn(1, HKV, S, D).bfloat16(), torch.randn(1, HKV, S, D).bfloat16()
    q = torch.randn(1, S, hq, D).bfloat16().transpose(1, 2)
    fns = {"amx": lambda: attn_amx.causal_prefill(q, k, v, D ** -0.5),
           "torch": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=D ** -0.5, enable_gqa=True)}
    if args.amx_baseline:
        fns[f"amx_{args.amx_baseline}"] = _with_lib(attn_amx.KERNEL, _amx_baseline(args.amx_baseline), fns["amx"])
    with torch.inference_mode():
        t = best_of(args.rounds, fns)
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, scale=D ** -0.5, enable_gqa=True)
        err = {"amx": attn_amx.causal_prefill(q, k, v, D ** -0.5),
               "torch": F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=D ** -0.5, enable_gqa=True)}
    return [dict(part="amx", context=S, **{f"{k}_ms": round(v * 1e3, 1) for k, v in t.items()},
                 **{f"{k}_max_abs_err_vs_fp32": round(float((o.float() - ref).abs().max()), 5) for k, o in err.items()})]


def part_norm(args) -> list[dict]:
    if norm_cpu.library() is None:
        return [dict(part="norm", skipped="fused kernels not built: no C compiler or M3ANALYST_CPU_KERNEL=0")]
    rows = []
    for n in (args.context, 1):
        x, w = torch.randn(1, n, 576).bfloat16(), torch.randn(576).bfloat16()
        g, u = torch.randn(1, n, 1536).bfloat16(), torch.randn(1, n, 1536).bfloat16()
        reps = 1 if n > 1 else 200  # one row: many calls per timing, so the figure is per call
        fns = {"rmsnorm_c": lambda: [norm_cpu.rmsnorm(x, w, 1e-5, 0) for _ in range(reps)],
               "rmsnorm_torch": lambda: [norm_cpu.rmsnorm_ref(x, w, 1e-5, 0) for _ in range(reps)],
               "silu_mul_c": lambda: [norm_cpu.silu_mul(g, u) for _ in range(reps)],
               "silu_mul_torch": lambda: [norm_cpu.silu_mul_ref(g, u) for _ in range(reps)]}
        with torch.inference_mode():
            t = best_of(args.rounds, fns)
        rows.append(dict(part="norm", rows=n, **{f"{k}_us": round(v / reps * 1e6, 1) for k, v in t.items()}))
    return rows


def _engine_ab(args, part: str, variants: dict, decode_tokens: int = 0) -> list[dict]:
    """An 8K prompt prefilled (then `decode_tokens` greedy steps) by the engine under each variant (a callable
    that switches the engine to it), alternating; then the perplexity of 600 continuation tokens after
    5,000-token prefixes of 4 CUAD contracts under each. The first variant is the one under test."""
    import math

    from m3analyst.engine import load_engine
    from m3analyst.engine.bench import corpus_ids
    from m3analyst.resources import corpus_dir

    eng = load_engine(EngineSettings(model=args.model, threads=args.threads, decode_threads=args.threads))
    eng.eos_ids, eng.track_hits = set(), False
    ids = corpus_ids(eng, args.context - 42 - decode_tokens)
    eng.prefill(ids[:1024], reserve=8)  # warm-up
    times = {k: [] for k in variants}
    rates = {k: [] for k in variants}
    for _ in range(args.rounds):
        for k, switch in variants.items():
            switch()
            t = time.perf_counter()
            sess = eng.prefill(ids, reserve=decode_tokens + 8)
            times[k].append(round(time.perf_counter() - t, 2))
            if decode_tokens:
                rates[k].append(round(sess.generate("", max_new_tokens=decode_tokens, temperature=0.0).stats.decode_tok_s, 1))
    rows = [dict(part=part, tokens=len(ids), **{f"{k}_s": v for k, v in times.items()},
                 **({f"{k}_decode_tok_s": v for k, v in rates.items()} if decode_tokens else {}))]
    first, second = list(variants)[:2]
    for doc in sorted((corpus_dir() / "legal" / "contracts_txt").glob("*.txt")):
        tok = eng._encode_suffix(doc.read_text(errors="ignore"))
        if len(tok) < 5600:
            continue
        prefix, cont = eng.tokenizer.decode(tok[:5000]), eng.tokenizer.decode(tok[5000:5600])
        ppl = {}
        for k, switch in variants.items():
            switch()
            ppl[k] = math.exp(-eng.score(prefix, cont))
        rows.append(dict(part=f"{part}_ppl", doc=doc.name[:40], **{f"{k}_ppl": round(v, 4) for k, v in ppl.items()},
                         ratio=round(ppl[first] / ppl[second], 4)))
        if len(rows) == 5:
            break
    next(iter(variants.values()))()
    return rows


def part_prefill(args) -> list[dict]:
    supports = attn_amx.supports

    def use(fn):
        return lambda: setattr(attn_amx, "supports", fn)

    return _engine_ab(args, "prefill", {"amx": use(supports), "torch": use(lambda *a: False)})


def part_fuse(args) -> list[dict]:
    lib = norm_cpu.library()
    if lib is None:
        return [dict(part="fuse", skipped="fused kernels not built: no C compiler or M3ANALYST_CPU_KERNEL=0")]

    def use(built):
        return lambda: setattr(norm_cpu.KERNEL, "lib", built)

    return _engine_ab(args, "fuse", {"fused": use(lib), "torch": use(None)}, decode_tokens=64)


PARTS = {"msa": part_msa, "int8": part_int8, "amx": part_amx, "norm": part_norm, "prefill": part_prefill, "fuse": part_fuse}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="msa,int8,amx")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=EngineSettings().model, help="engine model for --part prefill / fuse")
    ap.add_argument("--baseline", default=None, help="git revision whose msa_cpu.c to time beside (e.g. d68f6be)")
    ap.add_argument("--amx-baseline", default=None, help="git revision whose attn_amx.c to time beside (e.g. b434a67)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), threads=args.threads,
                          load=open("/proc/loadavg").read().split()[:4] if Path("/proc/loadavg").exists() else None)))
    for part in args.part.split(","):
        for row in PARTS[part](args):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
