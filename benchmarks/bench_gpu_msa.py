"""MSA decode on one GPU: the Triton kernels vs their peers, and a whole 8B-shaped decode step.

Part `kernels` — one attention layer of Llama-3-8B shape (32 query heads, 8 KV heads, head dim 128,
bf16), block 64, top-K 16 (1 sink + 1 local forced), batch 1 and 8, contexts 32K..1M. For each:
  * our kernels one by one (summary update of the new token, score + select, sparse decode + merge)
    and the whole MSA step, each captured in a CUDA graph over NL layers' distinct caches
    (L2 flushed before each replay; time per layer = replay / NL);
  * the same step with bf16 block summaries (half the summary bytes; selection may differ in near ties);
  * peers: dense SDPA (flash backend, enable_gqa=True), FlexAttention with a BlockMask of the same
    selection (KV heads folded into batch so the mask has H=1), the naive PyTorch gather + SDPA path
    (same as the shared baseline script), timed eagerly with the L2 flushed;
  * HBM floors: bytes each must read / measured copy bandwidth.
Part `model` — decode step of a HF LlamaForCausalLM with 8B shape and random weights (bf16), batch 1,
attention plugged in through transformers' AttentionInterface: dense SDPA over the full cache, MSA
(our kernels), and no attention at all (the rest of the step); attention share = (t - t_none) / t.
Every correctness check passes before a figure is kept (MSA output vs the PyTorch reference).

Run on the GPU machine:  python3 benchmarks/bench_gpu_msa.py --part all --out $OUT
Smoke test of the plumbing on CPU (tiny shapes, Triton interpreter):
    TRITON_INTERPRET=1 python benchmarks/bench_gpu_msa.py --smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from collections.abc import MutableMapping

from m3analyst.kernels.msa import naive as R
from m3analyst.kernels.msa import triton_common, triton_decode, triton_select, triton_summary



class _TuningView(MutableMapping):
    """This tree's launch parameters (triton_common.TUNING, the fields of the setting engine.kernels.triton) seen as
    the dict earlier rounds' kernels had, so a baseline's TUNING and this tree's are driven alike. The v2 step is
    retired: step_impl reads "v3" and only takes "v3"."""

    def __getitem__(self, key):
        return "v3" if key == "step_impl" else getattr(triton_common.TUNING, key)

    def __setitem__(self, key, value):
        if key == "step_impl":
            if value != "v3":
                raise ValueError("the v2 step kernel is retired (this tree has v3 only)")
            return
        setattr(triton_common.TUNING, key, value)

    def __delitem__(self, key):
        raise TypeError("launch parameters cannot be removed")

    def __iter__(self):
        return iter(["step_impl", *type(triton_common.TUNING).model_fields])

    def __len__(self):
        return 1 + len(type(triton_common.TUNING).model_fields)


class _Kernels:
    """This tree's Triton ops (one module per stage) under the one name the benchmark used for its kernels module."""

    TUNING = _TuningView()

    def __getattr__(self, name):
        for mod in (triton_decode, triton_select, triton_summary, triton_common):
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(name)

    def __setattr__(self, name, value):  # TIMELINE (profiling) lives in triton_common
        setattr(triton_common, name, value)


K = _Kernels()
GiB = 1 << 30
BASE = None  # --baseline: an earlier msa_triton (a package dir holding msa_triton.py + msa_naive.py), timed in the same run


def load_baseline(path: str | None):
    """Import the kernels package copy at `path` (e.g. the previous round's msa_triton) as a module."""
    global BASE
    if not path:
        return None
    import importlib

    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    BASE = importlib.import_module(os.path.basename(os.path.normpath(path)) + ".msa_triton")
    return BASE


@dataclass
class Shape:
    hq: int = 32
    hkv: int = 8
    d: int = 128
    block: int = 64
    top_k: int = 16
    sink: int = 1
    local: int = 1
    dtype: torch.dtype = torch.bfloat16


# ----------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------
class Timer:
    """Median of `iters` timed calls; on CUDA with CUDA events and an L2 flush before each call."""

    def __init__(self, device: str, iters: int = 30, warm: int = 3):
        self.cuda = device == "cuda"
        self.iters, self.warm = iters, warm
        self.flush_buf = torch.empty(256 << 20, dtype=torch.uint8, device=device) if self.cuda else None

    def __call__(self, fn) -> float:
        for _ in range(self.warm):
            fn()
        ts = []
        for _ in range(self.iters):
            if self.cuda:
                self.flush_buf.zero_()
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                torch.cuda.synchronize()
                ts.append(s.elapsed_time(e))
            else:
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
        ts.sort()
        return ts[len(ts) // 2]


def graphed(fn, cuda: bool):
    """Capture fn in a CUDA graph (proves no host sync) and return its replay; plain fn on CPU."""
    if not cuda:
        return fn
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g.replay


def copy_bandwidth(device: str) -> float:
    """Bytes/s of a 1 GiB device copy (read + write), as the shared baseline measures it."""
    n = GiB if device == "cuda" else 64 << 20
    x = torch.empty(n, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    t = Timer(device, iters=20)(lambda: y.copy_(x))
    return 2 * n / (t / 1e3)


# ----------------------------------------------------------------------------------------------
# part 1: kernels and peers
# ----------------------------------------------------------------------------------------------
@dataclass
class Layer:
    k: torch.Tensor
    v: torch.Tensor
    ksum: torch.Tensor
    ksum16: torch.Tensor
    q: torch.Tensor
    k_new: torch.Tensor
    kmean: torch.Tensor  # bf16 block means (what the new select reads)


def make_layers(n: int, B: int, L: int, sh: Shape, device: str, timer: Timer, prefill_ms: list) -> list[Layer]:
    layers = []
    nb = L // sh.block
    for i in range(n):
        k = torch.randn(B, sh.hkv, L, sh.d, device=device, dtype=sh.dtype)
        v = torch.randn(B, sh.hkv, L, sh.d, device=device, dtype=sh.dtype)
        ksum = torch.empty(B, sh.hkv, nb, sh.d, device=device, dtype=torch.float32)
        t0 = time.perf_counter()
        K.update_summaries(ksum, None, None, k, 0, sh.block)  # whole-prompt summaries (prefill)
        if device == "cuda":
            torch.cuda.synchronize()
        if i == 0:  # time the prefill summary pass once, cold
            prefill_ms.append(timer(lambda: K.update_summaries(ksum, None, None, k, 0, sh.block)))
        q = torch.randn(B, sh.hq, sh.d, device=device, dtype=sh.dtype)
        counts = R.block_counts(torch.full((B,), L, device=device), nb, sh.block).clamp(min=1)
        kmean = (ksum / counts[:, None, :, None]).to(torch.bfloat16)
        layers.append(Layer(k, v, ksum, ksum.to(torch.bfloat16), q, k[:, :, L - 1 : L].clone(), kmean))
        del t0
    return layers


def msa_step(layer: Layer, seq_lens, L: int, sh: Shape, bf16_summaries=False):
    ks = layer.ksum16 if bf16_summaries else layer.ksum
    K.update_summaries(ks, None, None, layer.k_new, L - 1, sh.block)
    idx = K.select_blocks(layer.q, ks, seq_lens, sh.block, sh.top_k, sh.sink, sh.local)
    return K.sparse_decode(layer.q, layer.k, layer.v, idx, seq_lens, sh.block, sh.d**-0.5)


def _features(mod) -> frozenset:
    return getattr(mod, "FEATURES", frozenset())


def _set_pdl(mod, pdl) -> dict:
    """Set mod.TUNING's programmatic-dependent-launch keys (round 6 and later) for pdl = None (leave the defaults),
    False, True (the next launch may start once every program has passed its wait) or "notrigger" (only as the
    programs exit); returns the previous values."""
    keys = [k for k in ("step_pdl", "step_pdl_trigger") if k in mod.TUNING]
    saved = {k: mod.TUNING[k] for k in keys}
    if pdl is not None and keys:
        mod.TUNING["step_pdl"] = bool(pdl)
        mod.TUNING["step_pdl_trigger"] = pdl != "notrigger"
    return saved


def fused_step(layer: Layer, seq_lens, L: int, sh: Shape, means=True, fused=True, impl="v3", exact=False, launches=1,
               mod=None, pdl=None, prefetch=True):
    """decode_step (fold the token into the summaries + select + decode); impl "v3" (merge in the decode
    programs, exact rescoring of bf16 means when exact; launches 1, 2, or 0 = the select launch alone) or
    "v2" (round 2's one-launch kernel). mod: the kernels module (default this tree's msa_triton). Round 6 and
    later (mod.FEATURES): pdl = programmatic dependent launch on Hopper, prefetch = the summary tiles read before
    the wait for the previous kernel (safe here: every launch of a graph is another layer's)."""
    mod = mod or K
    saved = {k: mod.TUNING[k] for k in ("step_impl", "step_exact", "step_launches")}
    saved.update(_set_pdl(mod, pdl))
    mod.TUNING.update(step_impl=impl, step_exact=exact, step_launches=launches)
    kw = dict(prefetch=prefetch) if "prefetch" in _features(mod) else {}
    try:
        return mod.decode_step(layer.q, layer.k_new, layer.k, layer.v, layer.ksum, seq_lens, L - 1, sh.block, sh.top_k,
                               sh.sink, sh.local, sh.d**-0.5, kmean=layer.kmean if means else None, fused=fused, **kw)[0]
    finally:
        mod.TUNING.update(saved)


def engine_op(ly: Layer, L: int, sh: Shape, fold=False, kv=False, pdl=None, prefetch=True, mod=None, means=False):
    """select_and_decode (the engine's launch) with fp32 sums (means: the bf16 means, round 7); fold: the token's
    summary update in the launch; kv: its key/value cache write too (v_new; round 6); pdl / prefetch as in fused_step
    (round 6)."""
    mod = mod or K
    kw = dict(kmean=ly.kmean) if means else {}
    if fold:
        kw.update(k_new=ly.k_new, pos=L - 1)
    if kv:
        kw["v_new"] = ly.v[:, :, L - 1 : L]
    if "prefetch" in _features(mod):
        kw["prefetch"] = prefetch
    saved = _set_pdl(mod, pdl)
    try:
        return mod.select_and_decode(ly.q, ly.k, ly.v, ly.ksum, L, sh.block, sh.top_k, sh.sink, sh.local, **kw)[0]
    finally:
        mod.TUNING.update(saved)


def check_step(layer: Layer, seq_lens, L: int, sh: Shape, means: bool, impl: str = "v3", exact: bool = True):
    """decode_step on copies of the summaries vs the reference's update + select + decode: selection
    equal (fp32 sums) or within the rounding tolerance of bf16 means (rows with swaps counted), output
    equal to the reference attention over the kernel's selection."""
    ks_r, ks_k = layer.ksum.clone(), layer.ksum.clone()
    km_r, km_k = (layer.kmean.clone(), layer.kmean.clone()) if means else (None, None)
    _, idx_r = R.decode_step(layer.q, layer.k_new, layer.k, layer.v, ks_r, seq_lens, L - 1, sh.block, sh.top_k,
                             sh.sink, sh.local, kmean=km_r)
    saved = K.TUNING["step_impl"], K.TUNING["step_exact"]
    K.TUNING.update(step_impl=impl, step_exact=exact)
    try:
        out, idx_k = K.decode_step(layer.q, layer.k_new, layer.k, layer.v, ks_k, seq_lens, L - 1, sh.block, sh.top_k,
                                   sh.sink, sh.local, sh.d**-0.5, kmean=km_k)
    finally:
        K.TUNING.update(step_impl=saved[0], step_exact=saved[1])
    nb = ks_r.shape[2]
    sc = R.block_scores(layer.q, ks_r, seq_lens, sh.block)
    forced, valid = R.forced_and_valid(seq_lens, nb, sh.block, sh.sink, sh.local)
    sc = sc.masked_fill(forced[:, None], math.inf).masked_fill(~valid[:, None], -math.inf)
    tol = R.mean_score_tolerance(layer.q, ks_r, seq_lens, sh.block, torch.bfloat16) if means else torch.zeros_like(sc)
    sel_k = torch.zeros_like(sc, dtype=torch.bool).scatter_(-1, idx_k.long().clamp(min=0), True)
    sel_r = torch.zeros_like(sc, dtype=torch.bool).scatter_(-1, idx_r.long().clamp(min=0), True)
    lo_k = torch.where(sel_k & ~sel_r, sc + tol, math.inf).amin(-1)  # worst kernel-only pick (+ its tolerance)
    hi_r = torch.where(sel_r & ~sel_k, sc - tol, -math.inf).amax(-1)  # best reference-only pick (- its tolerance)
    ref = R.sparse_decode(layer.q, layer.k, layer.v, idx_k, seq_lens, sh.block, sh.d**-0.5)
    return dict(rows_identical=round((idx_k == idx_r).all(-1).float().mean().item(), 4),
                swaps_within_tolerance=bool((lo_k >= hi_r).all().item()),
                summaries_equal=bool(torch.allclose(ks_k, ks_r, rtol=1e-5, atol=1e-3)),
                max_abs_err_vs_ref=(out.float() - ref.float()).abs().max().item())


def naive_baseline_step(q, k, v, kmean, sh: Shape):
    """The shared baseline's naive block-top-K: einsum scores, topk, gather, SDPA (no forcing)."""
    B = q.shape[0]
    qg = q.view(B, sh.hkv, sh.hq // sh.hkv, sh.d).float()
    s = torch.einsum("bgqd,bgnd->bgn", qg, kmean.float())
    idx = s.topk(sh.top_k, dim=-1).indices
    tok = (idx.unsqueeze(-1) * sh.block + torch.arange(sh.block, device=q.device)).flatten(-2)
    ks = torch.gather(k, 2, tok.unsqueeze(-1).expand(-1, -1, -1, sh.d))
    vs = torch.gather(v, 2, tok.unsqueeze(-1).expand(-1, -1, -1, sh.d))
    return F.scaled_dot_product_attention(q.unsqueeze(2), ks, vs, enable_gqa=True)


def dense_sdpa(q, k, v):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        return F.scaled_dot_product_attention(q.unsqueeze(2), k, v, enable_gqa=True)


class FlexPeer:
    """FlexAttention decode with a BlockMask built from our selection; KV heads folded into batch."""

    def __init__(self, cuda: bool):
        from torch.nn.attention.flex_attention import BlockMask, flex_attention

        self.BlockMask = BlockMask
        torch._dynamo.config.cache_size_limit = 64  # one compile per (batch, context); stay compiled
        if hasattr(torch._dynamo.config, "recompile_limit"):
            torch._dynamo.config.recompile_limit = 64
        self.fn = torch.compile(flex_attention, dynamic=False) if cuda else flex_attention

    def mask(self, idx, L: int, sh: Shape):
        """Selected blocks as *full* blocks (the fused kernel skips mask_mod on them); mask_mod says the
        same per token, for the unfused (eager / CPU) path that ignores block sparsity."""
        B, hkv, k = idx.shape
        nb = L // sh.block
        ind = torch.zeros(B * hkv, 1, 1, nb, dtype=torch.int32, device=idx.device)
        ind[..., :k] = idx.reshape(B * hkv, 1, 1, k)  # the first `num` entries are the blocks read
        num = torch.full((B * hkv, 1, 1), k, dtype=torch.int32, device=idx.device)
        sel = torch.zeros(B * hkv, nb, dtype=torch.bool, device=idx.device)
        sel.scatter_(1, idx.reshape(B * hkv, k).long(), True)
        block = sh.block

        def mask_mod(b, h, q_idx, kv_idx):
            return sel[b, kv_idx // block]

        return self.BlockMask.from_kv_blocks(torch.zeros_like(num), ind, num, ind, BLOCK_SIZE=block,
                                             mask_mod=mask_mod, seq_lengths=(1, L))

    def __call__(self, q, k, v, bm, sh: Shape):
        B = q.shape[0]
        G = sh.hq // sh.hkv
        qf = q.view(B * sh.hkv, G, 1, sh.d)
        kf = k.view(B * sh.hkv, 1, k.shape[2], sh.d)
        vf = v.view(B * sh.hkv, 1, v.shape[2], sh.d)
        return self.fn(qf, kf, vf, block_mask=bm, enable_gqa=True, scale=sh.d**-0.5)


def check_minmax(layer: Layer, seq_lens, L: int, sh: Shape) -> dict:
    """The engine's default scorer (minmax, fp32 kmin/kmax) through select_and_decode: selection vs the
    reference, and its time (one layer in the graph, L2 flushed)."""
    B, hkv, nb, D = layer.ksum.shape
    ksum = torch.zeros_like(layer.ksum)
    kmin, kmax = torch.zeros_like(ksum), torch.zeros_like(ksum)
    R.update_summaries(ksum, kmin, kmax, layer.k, 0, sh.block)
    idx_r = R.select_blocks(layer.q, ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local, "minmax", kmin, kmax)
    out, idx_k = K.select_and_decode(layer.q, layer.k, layer.v, ksum, L, sh.block, sh.top_k, sh.sink, sh.local, None,
                                     "minmax", kmin, kmax)
    ref = R.sparse_decode(layer.q, layer.k, layer.v, idx_k, seq_lens, sh.block, sh.d**-0.5)
    timer = Timer("cuda" if layer.q.is_cuda else "cpu")
    row = dict(minmax_rows_identical=round((idx_k == idx_r).all(-1).float().mean().item(), 4),
               minmax_max_abs_err_vs_ref=(out.float() - ref.float()).abs().max().item())
    for key, mod in (("select_and_decode_minmax_ms", K), ("base_select_and_decode_minmax_ms", BASE)):
        if mod is not None:
            row[key] = timer(graphed(lambda: mod.select_and_decode(layer.q, layer.k, layer.v, ksum, L, sh.block, sh.top_k,
                                                                   sh.sink, sh.local, None, "minmax", kmin, kmax),
                                     layer.q.is_cuda))
    # the engine's fused decode of a token whose summary update is folded into the launch (new kernels only)
    kn = layer.k[:, :, L - 1 : L]
    row["select_and_decode_minmax_fold_ms"] = timer(graphed(lambda: K.select_and_decode(
        layer.q, layer.k, layer.v, ksum, L, sh.block, sh.top_k, sh.sink, sh.local, None, "minmax", kmin, kmax, k_new=kn,
        pos=L - 1), layer.q.is_cuda))
    return row


def bench_kernels(args, device: str, report: dict):
    cuda = device == "cuda"
    sh = Shape() if not args.smoke else Shape(hq=8, hkv=2, d=64, block=16, top_k=4)
    timer = Timer(device, iters=args.iters)
    bw = copy_bandwidth(device)
    report["copy_GBps"] = round(bw / 1e9, 1)
    flex = None
    try:
        flex = FlexPeer(cuda)
    except Exception as e:  # pragma: no cover - depends on the torch build
        report.setdefault("notes", []).append(f"flex unavailable: {e!r}")
    rows = report.setdefault("kernel_rows", [])
    for B in args.batches:
        for L in args.contexts:
            rows.append(_kernel_row(args, device, sh, timer, bw, flex, B, L))
            print(json.dumps(rows[-1]), flush=True)
            _dump(args, report)
            if cuda:  # the row's layers are gone with _kernel_row's frame
                torch.cuda.empty_cache()


def _kernel_row(args, device: str, sh: Shape, timer: Timer, bw: float, flex, B: int, L: int) -> dict:
    """One (batch, context) row of the kernels part: checks first, then each variant timed over NL layers."""
    cuda = device == "cuda"
    t_start = time.time()
    per_layer_bytes = 2 * B * sh.hkv * L * sh.d * 2
    nl = max(1, min(args.max_layers, int(args.cache_gib * GiB // per_layer_bytes)))
    prefill = []
    layers = make_layers(nl, B, L, sh, device, timer, prefill)
    seq_lens = torch.full((B,), L, dtype=torch.int32, device=device)
    row = dict(B=B, L=L, layers_in_graph=nl)

    def t_graph(f):  # one variant captured in a CUDA graph over the NL layers' caches: time per layer
        return timer(graphed(lambda: [f(ly) for ly in layers], cuda)) / nl

    idx0 = K.select_blocks(layers[0].q, layers[0].ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local)
    # checks on copies first (selection vs the fp32 reference, output vs reference attention)
    for tag, means, impl, exact in (("v3_exact", True, "v3", True), ("v3_fp32sum", False, "v3", True),
                                    ("v3_bf16", True, "v3", False)):
        row.update({f"{tag}_{k}": v for k, v in check_step(layers[0], seq_lens, L, sh, means, impl, exact).items()})
    if args.minmax_check and B == 1:
        row.update(check_minmax(layers[0], seq_lens, L, sh))
    _step_rows(args, row, t_graph, seq_lens, L, sh)
    if BASE is not None:  # the previous round's kernels, same layers, same run
        _base_step_rows(row, t_graph, seq_lens, L, sh)
    row["update1_bf16mean_ms"] = t_graph(lambda ly: K.update_summaries(ly.ksum, None, None, ly.k_new, L - 1, sh.block, kmean=ly.kmean))
    row["select_bf16mean_ms"] = t_graph(lambda ly: K.select_blocks(ly.q, ly.ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local, kmean=ly.kmean))
    row["decode_ms"] = t_graph(lambda ly: K.sparse_decode(ly.q, ly.k, ly.v, idx0, seq_lens, sh.block, sh.d**-0.5))
    row["prefill_summaries_ms"] = prefill[0]
    _peer_rows(args, row, timer, flex, layers[0], idx0, seq_lens, B, L, sh)
    sel_bytes = 2 * B * sh.hkv * sh.top_k * sh.block * sh.d * 2
    sum32 = B * sh.hkv * (L // sh.block) * sh.d * 4
    row["floor_dense_ms"] = per_layer_bytes / bw * 1e3
    row["floor_msa_fp32sum_ms"] = (sel_bytes + sum32) / bw * 1e3
    row["floor_msa_bf16sum_ms"] = (sel_bytes + sum32 // 2) / bw * 1e3  # = floor with bf16 means
    row["wall_s"] = round(time.time() - t_start, 1)
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}


def _step_rows(args, row: dict, t_graph, seq_lens, L: int, sh: Shape) -> None:
    """This tree's whole step and the engine's op, each variant timed per layer (the v2 step kernel is retired)."""
    row["step_v3_bf16_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh))
    row["step_v3_fp32sum_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, means=False))
    # round 6: the same launches with programmatic dependent launch (off by default): back to back in the graph,
    # layer i+1's programs start (and with prefetch load their first summary tile) while layer i's finish
    # ("pdl"); or only as layer i's programs exit ("notrigger"); or without the early tile load ("noprefetch")
    if args.pdl_rows:
        row["step_v3_bf16_pdl_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, pdl=True))
        row["step_v3_fp32sum_pdl_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, means=False, pdl=True))
        row["step_v3_fp32sum_pdl_noprefetch_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, means=False,
                                                                                 pdl=True, prefetch=False))
        row["step_v3_fp32sum_pdl_notrigger_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, means=False,
                                                                                pdl="notrigger"))
        row["step_v3_bf16_pdl_notrigger_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, pdl="notrigger"))
    row["step_v3_exact_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, exact=True))
    row["select_and_decode_fp32sum_ms"] = t_graph(lambda ly: engine_op(ly, L, sh))  # the engine's op
    row["select_and_decode_fp32sum_fold_ms"] = t_graph(lambda ly: engine_op(ly, L, sh, fold=True))  # + update
    if args.pdl_rows:
        row["select_and_decode_fp32sum_fold_pdl_ms"] = t_graph(lambda ly: engine_op(ly, L, sh, fold=True, pdl=True))
    # round 7: the engine's launch with bf16 means (token folded into sum, mean; key/value written)
    row["select_and_decode_bf16_fold_kv_ms"] = t_graph(lambda ly: engine_op(ly, L, sh, fold=True, kv=True, means=True))
    # + the token's key/value cache write (the engine's launch in round 6); the reference: the same launch
    # after two copy kernels writing them, as the engine did before
    row["select_and_decode_fp32sum_fold_kv_ms"] = t_graph(lambda ly: engine_op(ly, L, sh, fold=True, kv=True))
    row["select_and_decode_fp32sum_fold_copies_ms"] = t_graph(lambda ly: (
        ly.k[:, :, L - 1 : L].copy_(ly.k_new), ly.v[:, :, L - 1 : L].copy_(ly.v[:, :, L - 2 : L - 1]),
        engine_op(ly, L, sh, fold=True)))
    row["v3_select_launch_alone_bf16_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, launches=0))
    for buf in K._counters.values():  # the probe above left its flags raised
        buf.zero_()


def _base_step_rows(row: dict, t_graph, seq_lens, L: int, sh: Shape) -> None:
    """The baseline kernels (--baseline) timed on the same layers as this tree's."""
    row["base_step_v2_bf16mean_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, impl="v2", mod=BASE))
    row["base_step_v3_bf16_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, mod=BASE))
    row["base_step_v3_fp32sum_ms"] = t_graph(lambda ly: fused_step(ly, seq_lens, L, sh, means=False, mod=BASE))
    row["base_select_and_decode_fp32sum_ms"] = t_graph(lambda ly: engine_op(ly, L, sh, mod=BASE))
    row["base_select_and_decode_fp32sum_fold_ms"] = t_graph(lambda ly: engine_op(ly, L, sh, fold=True, mod=BASE))
    row["base_select_and_decode_fp32sum_fold_copies_ms"] = t_graph(lambda ly: (
        ly.k[:, :, L - 1 : L].copy_(ly.k_new), ly.v[:, :, L - 1 : L].copy_(ly.v[:, :, L - 2 : L - 1]),
        engine_op(ly, L, sh, fold=True, mod=BASE)))


def _peer_rows(args, row: dict, timer: Timer, flex, ly, idx0, seq_lens, B: int, L: int, sh: Shape) -> None:
    """The peers on the first layer, timed eagerly: dense SDPA, the naive gather + SDPA, FlexAttention's BlockMask."""
    row["dense_sdpa_ms"] = _try(row, "dense", lambda: timer(lambda: dense_sdpa(ly.q, ly.k, ly.v)))
    if row["dense_sdpa_ms"] is None:  # flash backend refused: take PyTorch's default choice
        row["dense_sdpa_default_backend_ms"] = _try(row, "dense_default", lambda: timer(
            lambda: F.scaled_dot_product_attention(ly.q.unsqueeze(2), ly.k, ly.v, enable_gqa=True)))
    kmean = (ly.ksum / sh.block).to(sh.dtype)
    row["naive_gather_sdpa_ms"] = _try(row, "naive", lambda: timer(lambda: naive_baseline_step(ly.q, ly.k, ly.v, kmean, sh)))
    if flex is not None and not args.no_flex:
        def run_flex():
            bm = flex.mask(idx0, L, sh)
            o = flex(ly.q, ly.k, ly.v, bm, sh)
            ref = R.sparse_decode(ly.q, ly.k, ly.v, idx0, seq_lens, sh.block, sh.d**-0.5)
            row["flex_max_abs_err"] = (o.reshape(B, sh.hq, sh.d).float() - ref.float()).abs().max().item()
            return timer(lambda: flex(ly.q, ly.k, ly.v, bm, sh))
        row["flex_blockmask_ms"] = _try(row, "flex", run_flex)


def _try(row: dict, name: str, fn):
    try:
        return fn()
    except Exception as e:
        row[f"{name}_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        return None


def bench_sweep(args, device: str, report: dict):
    """Launch-parameter sweep of select and decode (B=1), to pick the defaults in msa_triton.TUNING."""
    cuda = device == "cuda"
    sh = Shape() if not args.smoke else Shape(hq=8, hkv=2, d=64, block=16, top_k=4)
    timer = Timer(device, iters=args.iters)
    rows = report.setdefault("sweep_rows", [])
    saved = dict(K.TUNING)
    for L in args.sweep_contexts:
        nl = max(1, min(args.max_layers, int(args.cache_gib * GiB // (2 * sh.hkv * L * sh.d * 2))))
        layers = make_layers(nl, 1, L, sh, device, timer, [])
        seq_lens = torch.full((1,), L, dtype=torch.int32, device=device)
        idx0 = K.select_blocks(layers[0].q, layers[0].ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local)

        def t_graph(f):
            fn = lambda: [f(ly) for ly in layers]
            fn()
            return timer(graphed(fn, cuda)) / nl

        base = dict(L=L, layers_in_graph=nl)
        rows.append(dict(base, op="update1", ms=t_graph(lambda ly: K.update_summaries(ly.ksum, None, None, ly.k_new, L - 1, sh.block))))
        for bn in (32, 64, 128):
            for w in (2, 4, 8):
                K.TUNING.update(saved, select_block_n=bn, select_warps=w)
                r = dict(base, op="select", block_n=bn, warps=w)
                r["ms"] = _try(r, "select", lambda: t_graph(lambda ly: K.select_blocks(ly.q, ly.ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local)))
                if r["ms"] is not None:
                    got = K.select_blocks(layers[0].q, layers[0].ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local)
                    r["same_idx"] = bool(torch.equal(got, idx0))
                rows.append(r)
        for bps in (1, 2, 4):
            for w in (2, 4):
                K.TUNING.update(saved, decode_warps=w, decode_blocks_per_split=bps)
                r = dict(base, op="decode", warps=w, blocks_per_split=bps)
                r["ms"] = _try(r, "decode", lambda: t_graph(lambda ly: K.sparse_decode(ly.q, ly.k, ly.v, idx0, seq_lens, sh.block, sh.d**-0.5)))
                rows.append(r)
        K.TUNING.update(saved)
        for r in rows:
            if r.get("L") == L:
                print(json.dumps(r), flush=True)
        _dump(args, report)
        del layers
        if cuda:
            torch.cuda.empty_cache()


# --part fusedsweep: launch parameters of the one-launch step, each tried on its own (round 5: how many persistent
# select programs; 0 = one tile per program, as in round 4)
FUSED_SWEEP = (dict(step_select_programs=0), dict(), dict(step_select_programs=512),
               dict(step_select_programs=512, step_tile_bytes_persistent_minmax=None), dict(step_max_tiles=32),
               dict(step_max_tiles=32, step_tile_bytes_persistent_minmax=None))


def bench_fused_sweep(args, device: str, report: dict):
    """Launch parameters of the one-launch step (B=1), each configuration of FUSED_SWEEP on the same layers: the
    mean scorer from fp32 sums (the engine's select_and_decode; selection checked against the reference), from
    bf16 means (decode_step), and the minmax scorer with the token's update folded in (as the engine runs it)."""
    cuda = device == "cuda"
    sh = Shape() if not args.smoke else Shape(hq=8, hkv=2, d=64, block=16, top_k=4)
    timer = Timer(device, iters=args.iters)
    rows = report.setdefault("fused_sweep_rows", [])
    saved = dict(K.TUNING)
    for L in args.sweep_contexts:
        nl = max(1, min(args.max_layers, int(args.cache_gib * GiB // (2 * sh.hkv * L * sh.d * 2))))
        layers = make_layers(nl, 1, L, sh, device, timer, [])
        seq_lens = torch.full((1,), L, dtype=torch.int32, device=device)
        mm = []
        for ly in layers:
            kmin, kmax = torch.empty_like(ly.ksum), torch.empty_like(ly.ksum)
            K.update_summaries(torch.empty_like(ly.ksum), kmin, kmax, ly.k, 0, sh.block)
            mm.append((kmin, kmax))
        ly0 = layers[0]
        idx_ref = R.select_blocks(ly0.q, ly0.ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local)
        idx_ref_mm = R.select_blocks(ly0.q, ly0.ksum, seq_lens, sh.block, sh.top_k, sh.sink, sh.local, "minmax", *mm[0])

        def t_graph(f):
            fn = lambda: [f(i, ly) for i, ly in enumerate(layers)]
            fn()
            return timer(graphed(fn, cuda)) / nl

        for cfg in FUSED_SWEEP:
            K.TUNING.update(saved, **cfg)
            r = dict(L=L, layers_in_graph=nl, **cfg)
            _, idx = K.select_and_decode(ly0.q, ly0.k, ly0.v, ly0.ksum, L, sh.block, sh.top_k, sh.sink, sh.local)
            _, idx_mm = K.select_and_decode(ly0.q, ly0.k, ly0.v, ly0.ksum, L, sh.block, sh.top_k, sh.sink, sh.local, None,
                                            "minmax", *mm[0])
            r["fp32_identical"] = bool(torch.equal(idx, idx_ref))
            r["minmax_identical"] = bool(torch.equal(idx_mm, idx_ref_mm))
            r["ms_fp32sum"] = _try(r, "fp32", lambda: t_graph(lambda i, ly: K.select_and_decode(
                ly.q, ly.k, ly.v, ly.ksum, L, sh.block, sh.top_k, sh.sink, sh.local)))
            r["ms_bf16"] = _try(r, "bf16", lambda: t_graph(lambda i, ly: fused_step(ly, seq_lens, L, sh)))
            r["ms_minmax_fold"] = _try(r, "minmax", lambda: t_graph(lambda i, ly: K.select_and_decode(
                ly.q, ly.k, ly.v, ly.ksum, L, sh.block, sh.top_k, sh.sink, sh.local, None, "minmax", *mm[i],
                k_new=ly.k_new, pos=L - 1)))
            rows.append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()})
            print(json.dumps(rows[-1]), flush=True)
            _dump(args, report)
        K.TUNING.update(saved)
        _dump(args, report)
        del layers, mm
        if cuda:
            torch.cuda.empty_cache()


def _probe_memory_kernels() -> dict:
    """The probe's launch and memory kernels: empty, one 32 KB load, index then load, load then atomic merge."""
    import triton
    import triton.language as tl


    @triton.jit
    def empty_k(dst):
        if tl.program_id(0) < 0:
            tl.store(dst, 0.0)

    @triton.jit
    def load_k(src, dst, N: tl.constexpr):
        pid = tl.program_id(0)
        x = tl.load(src + pid.to(tl.int64) * N + tl.arange(0, N)).to(tl.float32)
        tl.store(dst + pid, tl.sum(x, axis=0))

    @triton.jit
    def chain_k(idx, src, dst, N: tl.constexpr):
        pid = tl.program_id(0)
        j = tl.load(idx + pid)
        x = tl.load(src + j.to(tl.int64) * N + tl.arange(0, N)).to(tl.float32)
        tl.store(dst + pid, tl.sum(x, axis=0))

    @triton.jit
    def merge_k(cnt, part, dst, P: tl.constexpr, N: tl.constexpr, src):
        pid = tl.program_id(0)
        x = tl.load(src + pid.to(tl.int64) * N + tl.arange(0, N)).to(tl.float32)
        tl.store(part + pid, tl.sum(x, axis=0))
        tl.debug_barrier()
        done = tl.atomic_add(cnt, 1, sem="acq_rel")
        if done == P - 1:
            tl.store(dst, tl.sum(tl.load(part + tl.arange(0, P), cache_modifier=".cg"), axis=0))
            tl.store(cnt, 0)

    return dict(empty=empty_k, load=load_k, chain=chain_k, merge=merge_k)


def _probe_compute_kernels() -> dict:
    """The probe's compute kernels: tl.topk, a cumsum, one block attended, flags published and waited on."""
    import triton
    import triton.language as tl

    @triton.jit
    def topk_k(src, dst, N: tl.constexpr, K: tl.constexpr):  # the K-th best of N scores (bitonic tl.topk)
        pid = tl.program_id(0)
        x = tl.load(src + pid * N + tl.arange(0, N)).to(tl.float32)
        top = tl.topk(x, K)
        tl.store(dst + pid, tl.sum(tl.where(tl.arange(0, K) == K - 1, top, 0.0), axis=0))

    @triton.jit
    def cumsum_k(src, dst, N: tl.constexpr):
        pid = tl.program_id(0)
        x = tl.load(src + pid * N + tl.arange(0, N)).to(tl.float32)
        c = tl.cumsum((x > 0).to(tl.int32), axis=0)
        tl.store(dst + pid, tl.sum(c, axis=0).to(tl.float32))

    @triton.jit
    def attend_k(q_ptr, src, dst, N: tl.constexpr):  # one 64-token block: two 16-row dots + softmax
        pid = tl.program_id(0)
        r = tl.arange(0, 16)
        d = tl.arange(0, 128)
        t = tl.arange(0, 64)
        q = tl.load(q_ptr + r[:, None] * 128 + d[None, :])
        k = tl.load(src + pid.to(tl.int64) * N + t[:, None] * 128 + d[None, :])
        v = tl.load(src + pid.to(tl.int64) * N + 8192 + t[:, None] * 128 + d[None, :])
        sc = tl.dot(q, tl.trans(k))
        p = tl.exp2(sc - tl.max(sc, axis=1)[:, None])
        o = tl.dot(p.to(v.dtype), v) / tl.sum(p, axis=1)[:, None]
        tl.store(dst + pid * 2048 + r[:, None] * 128 + d[None, :], o)

    @triton.jit
    def flag_k(flag, P: tl.constexpr, W: tl.constexpr):  # P publishers then P waiters, W = publishers per flag
        pid = tl.program_id(0)
        if pid < P:
            tl.atomic_add(flag + pid // W, 1, sem="release")
        else:
            f = (pid - P) // W
            while tl.load(flag + f, volatile=True) < W:
                pass
            tl.atomic_add(flag + f, 0, sem="acquire")
            tl.debug_barrier()
            done = tl.atomic_add(flag + 64 + f, 1, sem="acq_rel")
            if done == W - 1:
                tl.store(flag + 64 + f, 0)
                tl.atomic_xchg(flag + f, 0, sem="relaxed")

    return dict(topk=topk_k, cumsum=cumsum_k, attend=attend_k, flag=flag_k)


def bench_probe(args, device: str, report: dict):
    """Where a microsecond goes: tiny Triton kernels, each launched NL=8 times in one CUDA graph (L2 flushed
    before each replay; time per launch). An empty launch, one 32 KB load per program, an index load then a
    dependent 32 KB load, the last-program merge through an acq_rel atomic, and the select's 32 MB stream."""
    k = {**_probe_memory_kernels(), **_probe_compute_kernels()}
    empty_k, load_k, chain_k, merge_k = k["empty"], k["load"], k["chain"], k["merge"]
    topk_k, cumsum_k, attend_k, flag_k = k["topk"], k["cumsum"], k["attend"], k["flag"]
    timer = Timer(device, iters=args.iters)
    nl = 8
    n = 16384  # bf16 elements = 32 KB per program
    src = torch.randn(1024 * n, device=device, dtype=torch.bfloat16)
    dst = torch.empty(1024, device=device)
    idx = torch.randperm(1024, device=device, dtype=torch.int32)
    cnt = torch.zeros(1, device=device, dtype=torch.int32)
    part = torch.empty(1024, device=device)
    big = torch.empty(1024 * 2048, device=device)
    flags = torch.zeros(256, device=device, dtype=torch.int32)
    cases = {
        "empty_1prog": lambda: empty_k[(1,)](dst),
        "empty_128prog": lambda: empty_k[(128,)](dst),
        "load32KB_128prog": lambda: load_k[(128,)](src, dst, N=n),
        "idx_then_load32KB_128prog": lambda: chain_k[(128,)](idx, src, dst, N=n),
        "load32KB_atomic_merge_128prog": lambda: merge_k[(128,)](cnt, part, dst, P=128, N=n, src=src),
        "load32KB_1024prog_32MB": lambda: load_k[(1024,)](src, dst, N=n),
        "topk16_of_128_128prog": lambda: topk_k[(128,)](src, dst, N=128, K=16),
        "topk16_of_256_128prog": lambda: topk_k[(128,)](src, dst, N=256, K=16),
        "cumsum_128_128prog": lambda: cumsum_k[(128,)](src, dst, N=128),
        "attend_block_128prog": lambda: attend_k[(128,)](src, src, big, N=n),
        "flag_publish_wait_merge_128x2prog": lambda: flag_k[(256,)](flags, P=128, W=16),
    }
    row = report.setdefault("probe", {})
    for name, fn in cases.items():
        fn()
        row[name + "_us"] = round(timer(graphed(lambda: [fn() for _ in range(nl)], device == "cuda")) / nl * 1e3, 2)
    print(json.dumps(row), flush=True)
    _dump(args, report)


def _timeline_summary(tm: torch.Tensor, n_dec: int, heads: int) -> dict:
    """One launch's program stamps (tm [programs, 16] int64: (clock64, globaltimer) pairs, msa_triton._stamp) ->
    phase times in us. Select programs (the first programs - n_dec): 0 entry, 1 scores, 2 list stored, 3 published;
    decode programs (the last n_dec, TOP_K per head in head order): 0 entry, 1 lists visible, 2 merged, 3 attended,
    4 published (+ merged by the last), slot 5 = 1 in the program that merged. Durations inside a program from its
    SM clock (converted by the ns-per-cycle the run shows over programs longer than 2 us), offsets across programs
    from globaltimer relative to the first program's entry."""
    tm = tm.to(torch.float64)
    c, g = tm[:, 0::2], tm[:, 1::2]
    n_sel = tm.shape[0] - n_dec
    t0 = g[:, 0].min()
    g = (g - t0) / 1e3  # us
    long = torch.cat([(g[:n_sel, 3] - g[:n_sel, 0]), (g[n_sel:, 4] - g[n_sel:, 0])]) > 2.0
    cyc = torch.cat([(c[:n_sel, 3] - c[:n_sel, 0]), (c[n_sel:, 4] - c[n_sel:, 0])])
    dt = torch.cat([(g[:n_sel, 3] - g[:n_sel, 0]), (g[n_sel:, 4] - g[n_sel:, 0])])
    us_per_clk = (dt[long].sum() / cyc[long].sum()).item() if long.any() else 1 / 1755.0
    d = lambda a, b, rows: (c[rows, b] - c[rows, a]) * us_per_clk  # noqa: E731
    sel, dec = slice(0, n_sel), slice(n_sel, None)
    last = tm[n_sel:, 10] > 0
    q = lambda x, p: float(torch.quantile(x.float(), p)) if x.numel() else float("nan")  # noqa: E731
    pub_end = g[sel, 3].view(heads, -1)  # select programs in head order (pid_bh major)
    vis = g[dec, 1].view(heads, -1)
    starts = torch.sort(g[:, 0]).values
    steps = torch.diff(torch.unique(g[:, :5].flatten()))
    return dict(
        us_per_clk=round(us_per_clk, 8), gt_step_us=round(float(steps[steps > 0].min()), 4) if steps.numel() else None,
        span=q(torch.cat([g[sel, 3], g[dec, 4]]), 1.0), sel_start_med=q(g[sel, 0], 0.5), sel_start_max=q(g[sel, 0], 1.0),
        dec_start_med=q(g[dec, 0], 0.5), dec_start_max=q(g[dec, 0], 1.0), all_started=float(starts[-1]),
        sel_scores_med=q(d(0, 1, sel), 0.5), sel_scores_max=q(d(0, 1, sel), 1.0),
        sel_top_med=q(d(1, 2, sel), 0.5), sel_top_max=q(d(1, 2, sel), 1.0),
        sel_publish_med=q(d(2, 3, sel), 0.5), sel_publish_max=q(d(2, 3, sel), 1.0),
        sel_last_published_med_head=q(pub_end.max(1).values, 0.5), sel_last_published=q(pub_end, 1.0),
        dec_visible_med=q(g[dec, 1], 0.5), dec_visible_max=q(g[dec, 1], 1.0),
        flag_latency_med_head=q(vis.min(1).values - pub_end.max(1).values, 0.5),
        dec_spin_med=q(d(0, 1, dec), 0.5), dec_merge_med=q(d(1, 2, dec), 0.5), dec_merge_max=q(d(1, 2, dec), 1.0),
        dec_attend_med=q(d(2, 3, dec), 0.5), dec_attend_max=q(d(2, 3, dec), 1.0),
        dec_publish_med=q(d(3, 4, dec)[~last], 0.5), dec_last_publish_merge_med=q(d(3, 4, dec)[last], 0.5),
        dec_end_med_head=q(g[dec, 4].view(heads, -1).max(1).values, 0.5), dec_end_max=q(g[dec, 4], 1.0),
    )


def bench_timeline(args, device: str, report: dict):
    """Per-phase timeline of the v3 step (the engine's launch: select_and_decode with the token's fold and key/value
    write; fp32 sums and bf16 means) from in-kernel stamps (msa_triton.TIMELINE): eager launches with the L2 flushed,
    medians over --iters launches of each phase (see _timeline_summary), beside the launch's CUDA-event time and its
    graph time with and without the stamps (their overhead)."""
    sh = Shape()
    timer = Timer(device, iters=args.iters)
    rows = report.setdefault("timeline_rows", [])
    for L in args.contexts:
        for B in args.batches:
            ly = make_layers(1, B, L, sh, device, timer, [])[0]
            for tag, means in (("engine_fp32", False), ("engine_bf16", True)):
                kw = dict(k_new=ly.k_new, pos=L - 1, v_new=ly.v[:, :, L - 1 : L], kmean=ly.kmean if means else None)

                def op():
                    return K.select_and_decode(ly.q, ly.k, ly.v, ly.ksum, L, sh.block, sh.top_k, sh.sink, sh.local, **kw)

                row = dict(B=B, L=L, variant=tag)
                op()
                row["graph_us_off"] = round(timer(graphed(op, device == "cuda")) * 1e3, 2)
                K.TIMELINE = torch.zeros(1 << 20, dtype=torch.int64, device=device)
                try:
                    op()
                    row["graph_us_stamped"] = round(timer(graphed(op, device == "cuda")) * 1e3, 2)
                    sums, ev = [], []
                    n_dec = B * sh.hkv * sh.top_k
                    for _ in range(args.iters):
                        K.TIMELINE.zero_()
                        timer.flush_buf.zero_()
                        s_, e_ = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s_.record()
                        op()
                        e_.record()
                        torch.cuda.synchronize()
                        ev.append(s_.elapsed_time(e_) * 1e3)
                        tm = K.TIMELINE.view(-1, 16)
                        n = int((tm[:, 1] != 0).sum())
                        sums.append(_timeline_summary(tm[:n].cpu(), n_dec, B * sh.hkv))
                    row["eager_event_us_stamped"] = round(sorted(ev)[len(ev) // 2], 2)
                    row["programs"] = n
                    for key in sums[0]:
                        vals = sorted(x[key] for x in sums if x[key] is not None)
                        row[key] = round(vals[len(vals) // 2], 3) if vals else None
                finally:
                    K.TIMELINE = None
                rows.append(row)
                print(json.dumps(row), flush=True)
                _dump(args, report)
            del ly
            torch.cuda.empty_cache()


ONCE_OPS = {  # --part once: what each variant calls (B=1, first context), for a profiler such as Nsight Compute
    "three": lambda ly, lens, L, sh: msa_step(ly, lens, L, sh),
    "v3_fp32": lambda ly, lens, L, sh: fused_step(ly, lens, L, sh, means=False),
    "v3_bf16": lambda ly, lens, L, sh: fused_step(ly, lens, L, sh),
}


def run_once(args, device: str, report: dict):
    """A few plain calls of each variant in --once-ops (B=1, first context), for a profiler."""
    sh = Shape()
    L = args.contexts[0]
    ly = make_layers(1, 1, L, sh, device, Timer(device, iters=1), [])[0]
    seq_lens = torch.full((1,), L, dtype=torch.int32, device=device)
    for name in args.once_ops:
        for _ in range(3):
            ONCE_OPS[name](ly, seq_lens, L, sh)
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# part 2: a whole decode step of an 8B-shaped HF Llama
# ----------------------------------------------------------------------------------------------
@dataclass
class AttnState:
    """Per-layer caches filled with random K/V; the new token's K/V are written at position pos."""

    k: list = field(default_factory=list)
    v: list = field(default_factory=list)
    ksum: list = field(default_factory=list)
    kmean: list = field(default_factory=list)
    pos: int = 0
    seq_lens: torch.Tensor | None = None
    sh: Shape = field(default_factory=Shape)


STATE = AttnState()


def _write_new(module, key, value):
    i = module.layer_idx
    kc, vc = STATE.k[i], STATE.v[i]
    kc[:, :, STATE.pos : STATE.pos + 1].copy_(key)
    vc[:, :, STATE.pos : STATE.pos + 1].copy_(value)
    return i, kc, vc


def attn_dense(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    i, kc, vc = _write_new(module, key, value)
    out = dense_sdpa(query.squeeze(2), kc, vc)  # [B, Hq, 1, D]
    return out.transpose(1, 2), None


def attn_msa_fused(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    i, kc, vc = _write_new(module, key, value)
    sh = STATE.sh
    # prefetch: the launch follows the two copies above, which do not write the summaries
    out, _ = K.decode_step(query.squeeze(2), key, kc, vc, STATE.ksum[i], STATE.seq_lens, STATE.pos, sh.block, sh.top_k,
                           sh.sink, sh.local, scaling or sh.d**-0.5, kmean=STATE.kmean[i], prefetch=True)
    return out.unsqueeze(1), None


def attn_msa_fused_pdl(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    saved = _set_pdl(K, True)
    try:
        return attn_msa_fused(module, query, key, value, attention_mask, scaling, dropout, **kw)
    finally:
        K.TUNING.update(saved)


def attn_none(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    _write_new(module, key, value)
    return query.transpose(1, 2), None


ATTN_IMPLS = {"m3_dense_sdpa": attn_dense, "m3_msa_fused": attn_msa_fused, "m3_msa_fused_pdl": attn_msa_fused_pdl,
              "m3_no_attention": attn_none}


def build_model(n_layers: int, device: str, smoke: bool):
    from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM

    for name, fn in ATTN_IMPLS.items():
        AttentionInterface.register(name, fn)
    if smoke:
        cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_attention_heads=8, num_key_value_heads=2,
                          num_hidden_layers=n_layers, vocab_size=1000, max_position_embeddings=1 << 21)
    else:
        cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                          num_hidden_layers=n_layers, vocab_size=128256, rope_theta=500000.0,
                          max_position_embeddings=1 << 21, tie_word_embeddings=False)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(prev)
    return model, cfg


def set_impl(model, name: str):
    model.config._attn_implementation = name
    for m in model.modules():
        if hasattr(m, "config") and m.config is not model.config:
            m.config._attn_implementation = name


def fill_state(cfg, n_layers: int, B: int, L: int, device: str, dtype):
    sh = Shape(hq=cfg.num_attention_heads, hkv=cfg.num_key_value_heads, d=cfg.hidden_size // cfg.num_attention_heads,
               block=STATE.sh.block, top_k=STATE.sh.top_k)
    STATE.sh = sh
    STATE.k, STATE.v, STATE.ksum, STATE.kmean = [], [], [], []
    for _ in range(n_layers):
        k = torch.randn(B, sh.hkv, L, sh.d, device=device, dtype=dtype)
        STATE.k.append(k)
        STATE.v.append(torch.randn_like(k))
        ks = torch.empty(B, sh.hkv, L // sh.block, sh.d, device=device, dtype=torch.float32)
        km = torch.empty(B, sh.hkv, L // sh.block, sh.d, device=device, dtype=torch.bfloat16)
        K.update_summaries(ks, None, None, k[:, :, : L - 1], 0, sh.block, kmean=km)
        STATE.ksum.append(ks)
        STATE.kmean.append(km)
    STATE.pos = L - 1
    STATE.seq_lens = torch.full((B,), L, dtype=torch.int32, device=device)


def _time_step(row: dict, key: str, step, timer: Timer, cuda: bool) -> float | None:
    """Graph-captured time of step() (eager if capture fails; the error is kept in the row)."""
    try:
        t = timer(graphed(step, cuda))
        row[f"{key}_graph_ms"] = t
        return t
    except Exception as e:
        row[f"{key}_graph_error"] = f"{type(e).__name__}: {str(e)[:200]}"
        t = row[f"{key}_eager_ms"] = timer(step)
        return t


# (tag, mode, scorer, means, kernels module: "new" | "base", fold the token's summary update into the decode launch,
#  its key/value cache write too (round 6), programmatic dependent launch (round 6)). The "base" rows run the
# previous round's kernels through this tree's hooks with that round's default (the summary fold, no cache write
# in the launch, no PDL: the base module has neither).
ENGINE_RUNS = (
    ("engine_msa_mean", "msa", "mean", "fp32", "new", True, True, False),
    ("engine_msa_mean_bf16", "msa", "mean", "bf16", "new", True, True, False),  # round 7: token folded into the means
    ("engine_msa_mean_bf16_r6", "msa", "mean", "bf16", "new", False, True, False),  # round 6's bf16 path: update + copies
    ("engine_msa_minmax", "msa", "minmax", "fp32", "new", True, True, False),
    ("engine_msa_minmax_bf16mode", "msa", "minmax", "bf16", "new", True, True, False),  # round 7's default means mode
    ("engine_msa_mean_nokv", "msa", "mean", "fp32", "new", True, False, False),
    ("engine_msa_minmax_nokv", "msa", "minmax", "fp32", "new", True, False, False),
    ("engine_msa_mean_pdl", "msa", "mean", "fp32", "new", True, True, True),
    ("engine_msa_minmax_pdl", "msa", "minmax", "fp32", "new", True, True, True),
    ("engine_msa_mean_pdl_notrigger", "msa", "mean", "fp32", "new", True, True, "notrigger"),
    ("base_engine_msa_mean", "msa", "mean", "fp32", "base", True, False, False),
    ("base_engine_msa_minmax", "msa", "minmax", "fp32", "base", True, False, False),
    ("engine_dense", "dense", "mean", "fp32", "new", True, True, True),
)


ENGINE_TAGS: list[str] = []  # --engine-runs: the ENGINE_RUNS tags to run (empty: all)


def bf16_selection_checks(q, layer, kmean, idx, ref_fp32, lens, bs: int, top_k: int) -> dict:
    """A selection scored from bf16 means vs (a) the reference scoring the SAME means (exact up to fp32
    reassociation ties: 1e-5 of sum_d |sum_g q_gd| |mean_d|) and (b) the fp32-sum reference (swaps within
    msa_naive.mean_score_tolerance). Counts over the layer's (batch, KV head) rows."""
    sink, local = STATE.sh.sink, STATE.sh.local
    scores_m = R.means_scores(q, kmean)
    idx_m = R.select_from_scores(scores_m, lens, bs, top_k, sink, local)
    a = R.compare_selections(idx, idx_m, scores_m, R.means_tie_tolerance(q, kmean), lens, bs, sink, local)
    scores_f = R.block_scores(q, layer.ksum, lens, bs)
    tol = R.mean_score_tolerance(q, layer.ksum, lens, bs, torch.bfloat16)
    b = R.compare_selections(idx, ref_fp32, scores_f, tol, lens, bs, sink, local)
    return dict(rows=a["rows"], vs_means_rows_differ=a["rows_differ"], vs_means_swaps=a["swaps"],
                vs_means_all_ties=a["ties_within_tol"], vs_fp32_rows_differ=b["rows_differ"], vs_fp32_swaps=b["swaps"],
                vs_fp32_within_rounding=b["ties_within_tol"])


def engine_path(model, cfg, n_layers: int, L: int, device: str, dtype, timer: Timer, t_none: float | None, row: dict):
    """The decode step through the engine's own attention ("m3_msa", MSACache, RunContext): the cache is
    filled with L-1 random keys/values through MSALayer.update (so the engine's summary update runs), then
    the step appends token L-1 and attends. Each replay re-runs that same step (lengths reset before each
    eager call). Scorers "mean" and "minmax" (the engine's default) and the engine's dense mode; the
    selection of every MSA layer is checked against the reference on an eager step (observer)."""
    from m3analyst.engine import attention
    from m3analyst.engine.core import cache_keyword
    from m3analyst.engine.msa_ops import msa_ops
    from m3analyst.kernels import msa as kmsa

    cuda = device == "cuda"
    ops = msa_ops(device)
    row["engine_ops"] = ops.name
    row["engine_has_decode_hook"] = getattr(ops, "decode", None) is not None
    set_impl(model, attention.register())
    cache, reset = _engine_cache(cfg, n_layers, L, device, dtype)
    ids = torch.randint(0, cfg.vocab_size, (1, 1), device=device)
    pos = torch.full((1, 1), L - 1, device=device, dtype=torch.long)
    feed = {"input_ids": ids, "position_ids": pos, cache_keyword(model): cache}
    default_means = kmsa.ENGINE_MEAN_SUMMARY
    for run in ENGINE_RUNS:
        tag, kernels = run[0], run[4]
        if (kernels == "base" and BASE is None) or (ENGINE_TAGS and tag not in ENGINE_TAGS):
            continue
        step = _engine_variant(model, run, cache, reset, feed, row)
        t = _time_step(row, tag, step, timer, cuda)
        if t and t_none:
            row[f"{tag}_attention_share"] = round((t - t_none) / t, 4)
            row[f"{tag}_attn_ms_per_layer"] = round((t - t_none) / n_layers, 5)
    kmsa.ENGINE_MEAN_SUMMARY, kmsa.ENGINE_FOLD, kmsa.ENGINE_KV_FOLD = default_means, True, True
    _set_pdl(K, False)
    kmsa.register_backend("triton", lambda: K)
    del cache, feed
    if cuda:
        torch.cuda.empty_cache()


def _engine_cache(cfg, n_layers: int, L: int, device: str, dtype):
    """An MSACache holding L-1 random keys/values per layer (through MSALayer.update), and `reset`, which sets
    every layer back to that length before a step re-runs."""
    from m3analyst.engine.kv_cache import MSACache

    hkv, d = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    with torch.inference_mode():
        cache = MSACache(n_layers, L + STATE.sh.block, STATE.sh.block, minmax=True, dtype=dtype)
        for ly in cache.layers:
            k = torch.randn(1, hkv, L - 1, d, device=device, dtype=dtype)
            ly.update(k, torch.randn_like(k))
            del k

    def reset():
        for ly in cache.layers:
            ly.length = L - 1
            extra = getattr(ly, "extra", None)
            if extra and "kmean_len" in extra:
                extra["kmean_len"] = L - 1
            if extra and extra.get("next_pos") == L:  # as if the layer's previous decode were the token before
                extra["next_pos"] = L - 1

    return cache, reset


def _engine_variant(model, run: tuple, cache, reset, feed: dict, row: dict):
    """Set up one ENGINE_RUNS variant, check its selections on eager steps (MSA modes), and return its step,
    warmed up once, for timing."""
    from m3analyst.engine import attention
    from m3analyst.kernels import msa as kmsa
    from m3analyst.settings import AttentionSettings

    tag, mode, scorer, means, kernels, fold, kv, pdl = run
    bs, top_k = STATE.sh.block, STATE.sh.top_k
    kmsa.register_backend("triton", (lambda: BASE) if kernels == "base" else (lambda: K))
    kmsa.ENGINE_MEAN_SUMMARY, kmsa.ENGINE_FOLD = means, fold
    kmsa.ENGINE_KV_FOLD = kv
    _set_pdl(K, pdl)
    for ly in cache.layers:  # no deferred token carried over from the previous variant
        kmsa.engine_flush(ly)
    settings = AttentionSettings(scorer=scorer, top_k=top_k, block_size=bs, sink_blocks=STATE.sh.sink,
                                 local_blocks=STATE.sh.local, dense_layers=0)
    ctx = attention.RunContext(settings=settings, cache=cache, mode=mode, track=False)
    checks, mchecks = [], []

    def observer(layer_idx, q, layer, idx, seq_len):
        lens = torch.full((q.shape[0],), seq_len, device=q.device)
        ref = R.select_blocks(q, layer.ksum, lens, bs, top_k, STATE.sh.sink, STATE.sh.local, scorer, layer.kmin, layer.kmax)
        idx_s = idx.to(ref.dtype).sort(-1).values
        checks.append((idx_s == ref).all(-1).float().mean().item())
        km = layer.extra.get("kmean") if means == "bf16" else None
        if km is not None and layer.extra.get("fused_kmean"):  # the launch scored these means
            mchecks.append(bf16_selection_checks(q, layer, km, idx_s, ref, lens, bs, top_k))

    def step():
        reset()
        with torch.inference_mode(), attention.active(ctx):
            model(**feed, use_cache=True, msa=ctx, logits_to_keep=1)

    if mode == "msa":
        step()  # a first decode on this path: the next one may fold its token's summary update in
        ctx.observer = observer
        step()
        ctx.observer = None
        row[f"{tag}_select_rows_identical"] = round(sum(checks) / max(len(checks), 1), 4)
        if mchecks:
            row[f"{tag}_bf16_checks"] = {k: (all(c[k] for c in mchecks) if isinstance(mchecks[0][k], bool)
                                             else sum(c[k] for c in mchecks)) for k in mchecks[0]}
        row[f"{tag}_msa_layers_seen"] = len(checks)
        row[f"{tag}_kv_in_launch"] = sum(bool(ly.extra.get("kv_in_launch")) for ly in cache.layers)  # write folded
    step()
    return step


def bench_model(args, device: str, report: dict):
    cuda = device == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    timer = Timer(device, iters=args.iters)
    rows = report.setdefault("model_rows", [])
    if args.smoke:
        STATE.sh = Shape(block=16, top_k=4)
    plans = [(args.model_layers_full, c) for c in args.model_full_contexts] + [(args.model_layers_few, c) for c in args.model_few_contexts]
    model, cfg = None, None
    for n_layers, L in plans:
        t0 = time.time()
        if model is None or cfg.num_hidden_layers != n_layers:
            if model is not None and n_layers < cfg.num_hidden_layers:  # drop layers instead of rebuilding
                model.model.layers = model.model.layers[:n_layers]
                cfg.num_hidden_layers = n_layers
            else:
                model, cfg = build_model(n_layers, device, args.smoke)
        STATE.k = STATE.v = STATE.ksum = STATE.kmean = []
        if cuda:
            torch.cuda.empty_cache()
        fill_state(cfg, n_layers, 1, L, device, dtype)
        ids = torch.randint(0, cfg.vocab_size, (1, 1), device=device)
        pos = torch.full((1, 1), L - 1, device=device, dtype=torch.long)
        row = dict(layers=n_layers, L=L, B=1)
        for name in ATTN_IMPLS:
            if args.plugin_impls is not None and name not in args.plugin_impls and name != "m3_no_attention":
                continue
            set_impl(model, name)

            def step():
                with torch.no_grad():
                    model(input_ids=ids, position_ids=pos, use_cache=False)
            step()
            _time_step(row, name, step, timer, cuda)
        t_none = row.get("m3_no_attention_graph_ms") or row.get("m3_no_attention_eager_ms")
        for name in ("m3_dense_sdpa", "m3_msa_fused", "m3_msa_fused_pdl"):
            t = row.get(f"{name}_graph_ms") or row.get(f"{name}_eager_ms")
            if t and t_none:
                row[f"{name}_attention_share"] = round((t - t_none) / t, 4)
                row[f"{name}_attn_ms_per_layer"] = round((t - t_none) / n_layers, 5)
        STATE.k = STATE.v = STATE.ksum = STATE.kmean = []
        if cuda:
            torch.cuda.empty_cache()
        if args.engine:
            _try(row, "engine", lambda: engine_path(model, cfg, n_layers, L, device, dtype, timer, t_none, row))
        row["wall_s"] = round(time.time() - t0, 1)
        rows.append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
        print(json.dumps(rows[-1]), flush=True)
        _dump(args, report)
    del model
    STATE.k = STATE.v = STATE.ksum = []


# ----------------------------------------------------------------------------------------------
def _dump(args, report):
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench_gpu_msa.json"), "w") as f:
            json.dump(report, f, indent=1, default=str)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["kernels", "model", "sweep", "fusedsweep", "once", "probe", "timeline", "all"], default="all")
    ap.add_argument("--sweep-contexts", type=int, nargs="+", default=[131072, 1048576])
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (plumbing check)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--contexts", type=int, nargs="+", default=[32768, 131072, 524288, 1048576])
    ap.add_argument("--cache-gib", type=float, default=36.0, help="GPU memory for the per-layer caches of one config")
    ap.add_argument("--max-layers", type=int, default=8)
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--no-pdl-rows", dest="pdl_rows", action="store_false", help="kernels part: skip the PDL variants")
    ap.add_argument("--no-minmax-check", dest="minmax_check", action="store_false")
    ap.add_argument("--no-engine", dest="engine", action="store_false", help="model part: skip the engine's own path")
    ap.add_argument("--baseline", default=None, help="package dir of an earlier msa_triton to time beside this one")
    ap.add_argument("--once-ops", nargs="+", default=["three"], choices=sorted(ONCE_OPS))
    ap.add_argument("--tuning", nargs="*", default=[], help="msa_triton.TUNING overrides, e.g. select_max_chunks=64")
    ap.add_argument("--model-layers-full", type=int, default=32)
    ap.add_argument("--model-full-contexts", type=int, nargs="*", default=[131072])
    ap.add_argument("--model-layers-few", type=int, default=8)
    ap.add_argument("--model-few-contexts", type=int, nargs="*", default=[131072, 1048576])
    ap.add_argument("--engine-runs", nargs="*", default=[], help="model part: ENGINE_RUNS tags to run (default all)")
    ap.add_argument("--plugin-impls", nargs="*", default=None, help="model part: ATTN_IMPLS to time (default all)")
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.smoke:
        args.batches, args.contexts, args.iters = [1, 2], [256, 1024], 3
        args.cache_gib, args.max_layers = 0.001, 2
        args.model_layers_full, args.model_full_contexts = 2, [256]
        args.model_layers_few, args.model_few_contexts = 1, [512]
        args.sweep_contexts = [1024]
    import triton

    for kv in args.tuning:
        key, val = kv.split("=")
        K.TUNING[key] = None if val == "None" else int(val)

    ENGINE_TAGS[:] = args.engine_runs
    load_baseline(args.baseline)
    report = dict(
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        command=" ".join([os.path.basename(sys.executable)] + sys.argv),
        device=torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        torch=torch.__version__, triton=triton.__version__, host=platform.node(), tuning=dict(K.TUNING),
        commit=os.environ.get("M3_COMMIT", "unknown"),
    )
    try:
        import transformers

        report["transformers"] = transformers.__version__
    except ImportError:
        pass
    print(json.dumps(report), flush=True)
    if args.part == "sweep":
        bench_sweep(args, device, report)
    if args.part == "fusedsweep":
        bench_fused_sweep(args, device, report)
    if args.part == "once":
        run_once(args, device, report)
    if args.part == "probe":
        bench_probe(args, device, report)
    if args.part == "timeline":
        bench_timeline(args, device, report)
    if args.part in ("kernels", "all"):
        bench_kernels(args, device, report)
    if args.part in ("model", "all"):
        bench_model(args, device, report)
    _dump(args, report)


if __name__ == "__main__":
    main()
