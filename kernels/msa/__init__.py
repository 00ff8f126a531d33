"""MSA (block-sparse attention) ops: one folder, one dispatch by device and scorer.

Layout (flash-linear-attention style):
    naive.py          the plain-PyTorch reference of every op and scorer (contract ops, the estimated-mass
                      scorers, hybrid, the two-stage rerank, the exact-mass oracle)
    eager.py          the same ops vectorised in PyTorch (the CPU path without the C kernel, batches, prefill)
    cpu.c, cpu.py     the fused C decode kernel (select + exact attention in one call per layer)
    triton_summary.py, triton_select.py, triton_decode.py (+ triton_common.py)   the Triton stages
    contract.py       the contract ops and the registry of their backends ("torch" = naive.py, "triton")
    cuda.py           the CUDA route over a layer: Triton launches with the decode token's work folded in
    state.py          `LayerState`: what the kernels read of a layer (its KV cache and block summaries)

Contract ops (shapes in naive.py), dispatched to a registered backend ("torch" = naive, "triton"):

    from m3analyst.kernels import msa
    msa.update_summaries(ksum, kmin, kmax, k_new, start_pos, block_size)
    idx = msa.select_blocks(q, ksum, seq_lens, block_size, top_k, sink_blocks, local_blocks)
    out = msa.sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale)

The engine's entry points over one layer's `LayerState` (bottom of this module): `update(state, k_new, pos)`,
`append(state, k, v, pos)`, `decode(q, state, seq_len, settings, scale)`, `dense_decode`. `decode` is the one
place that picks a route: CUDA -> cuda.py (Triton, linear scorers; the mass scorers flush and take the generic
path); CPU -> the C kernel where it takes the case, else eager.py (batch 1: the rerank reference, or the fast
select + decode), else the generic select + sparse decode. `selector(fn)` swaps the batch-1 selection for a
benchmark's own (explicitly; nothing is monkeypatched).

`backend_for(tensor)` picks "triton" for CUDA tensors when Triton imports, else "torch". The setting
engine.kernels.msa_backend (`configure`), or the `backend=` argument, forces one.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from typing import Callable, Iterator

import torch

from .state import LayerState

from .contract import (OPS, backend_for, backends, decode_step, register_backend, select_blocks,  # noqa: F401
                       sparse_decode, triton_available, update_summaries)  # the contract ops, re-exported

__all__ = ["OPS", "LINEAR_SCORERS", "LayerState", "append", "backend_for", "backends", "configure", "decode",
           "decode_step", "dense_decode", "register_backend", "select_blocks", "selector", "sparse_decode",
           "triton_available", "update", "update_summaries"]

def configure(kernels) -> None:
    """Take the switches of a `KernelSettings` (m3analyst/settings.py): the engine calls this when it loads."""
    cuda.ENGINE_MEAN_SUMMARY, cuda.ENGINE_FOLD = kernels.msa_means, kernels.msa_fold
    cuda.ENGINE_KV_FOLD = kernels.msa_kv_fold
    contract.BACKEND = None if kernels.msa_backend == "auto" else kernels.msa_backend
    contract.TUNING = kernels.triton
    if "triton" in contract._loaded:  # else taken when the Triton backend loads (importing it imports triton)
        from . import triton_common

        triton_common.tune(kernels.triton)


# ----------------------------------------------------------------------------------------------
# the engine's entry points over one layer: one dispatch by device and scorer
# ----------------------------------------------------------------------------------------------
LINEAR_SCORERS = ("mean", "minmax")  # the scorers every backend implements (naive.LINEAR_SCORERS)
SELECTOR: Callable | None = None  # a batch-1 selection swapped in by `selector` (benchmarks)


@contextmanager
def selector(fn: Callable) -> Iterator[None]:
    """Inside the block, CPU decode at batch 1 selects with fn(q, ksum, seq_len, block_size, top_k, sink_blocks,
    local_blocks, scorer, kmin, kmax) -> idx [1, Hkv, top_k] (the signature of eager.select_blocks_b1; the block
    holding seq_len-1 last or ascending) instead of its own selection, and attends with eager.sparse_decode_b1."""
    global SELECTOR
    saved, SELECTOR = SELECTOR, fn
    try:
        yield
    finally:
        SELECTOR = saved


def update(state: LayerState, k_new: torch.Tensor, start_pos: int) -> None:
    """Fold k_new [B, Hkv, T, D] (positions start_pos..) into the layer's block summaries."""
    if state.keys.is_cuda:
        cuda.engine_update(state, k_new, start_pos)
    else:
        eager.update_summaries(state.ksum, state.kmin, state.kmax, k_new, start_pos, state.block_size)


def append(state: LayerState, k: torch.Tensor, v: torch.Tensor, pos: int) -> bool:
    """A decode token's key/value written at pos and folded into the summaries in one call, where a kernel takes
    it (the C kernel; on CUDA deferred into the next decode launch). False: not taken, the caller writes it."""
    return (cuda.engine_append if state.keys.is_cuda else cpu.append_token)(state, k, v, pos)


def decode(q: torch.Tensor, state: LayerState, seq_len: int, s, scale: float):
    """One MSA decode step over a layer (s: attention settings, scorer resolved) -> (out [B, Hq, D] in q's dtype,
    idx int [B, Hkv, top_k])."""
    if q.is_cuda:
        if s.scorer in LINEAR_SCORERS:
            return cuda.engine_decode(q, state, seq_len, s, scale)
        cuda.engine_flush(state)  # the mass scorers read the summaries: apply what the launch would have folded
        return _generic_decode(q, state, seq_len, s, scale)
    return _cpu_decode(q, state, seq_len, s, scale)


def _cpu_decode(q, state: LayerState, seq_len: int, s, scale: float):
    """Batch 1: the fused C kernel when it takes the case; else the PyTorch batch-1 path (the two-stage rerank, or
    select_blocks_b1 + sparse_decode_b1); else (batches, unusual settings) the generic select + sparse decode."""
    bs = state.block_size
    sparse_b1 = q.shape[0] == 1 and -(-seq_len // bs) > s.top_k  # one sequence, more blocks than top_k
    swapped = SELECTOR is not None
    plan = None if swapped else cpu.plan_for(q, state, scale, s.top_k, s.sink_blocks, s.local_blocks, s.scorer,
                                             s.rerank)
    if plan is not None:
        return plan(q, seq_len)
    if not swapped and s.rerank > 1 and sparse_b1:
        idx = naive.select_rerank(q, state.keys, state.ksum, state.kmin, state.kmax, seq_len, bs, s.top_k,
                                  s.sink_blocks, s.local_blocks, s.scorer, s.rerank, scale)
    elif sparse_b1 and s.local_blocks >= 1 and (s.scorer in LINEAR_SCORERS or swapped):
        idx = (SELECTOR or eager.select_blocks_b1)(q, state.ksum, seq_len, bs, s.top_k, s.sink_blocks,
                                                    s.local_blocks, s.scorer, state.kmin, state.kmax)
    else:
        return _generic_decode(q, state, seq_len, s, scale)
    return eager.sparse_decode_b1(q, state.keys, state.values, idx, seq_len, bs, scale, kv=state.kv), idx


def _generic_decode(q, state: LayerState, seq_len: int, s, scale: float):
    """Select + sparse decode for any batch and settings: the linear scorers through the device's backend (eager
    on CPU), the estimated-mass scorers through their reference, row by row."""
    seq_lens = torch.full((q.shape[0],), seq_len, dtype=torch.int64, device=q.device)
    ops = eager if not q.is_cuda else SimpleNamespace(select_blocks=select_blocks, sparse_decode=sparse_decode)
    if s.scorer in LINEAR_SCORERS:
        idx = ops.select_blocks(q, state.ksum, seq_lens, state.block_size, s.top_k, s.sink_blocks, s.local_blocks,
                                s.scorer, state.kmin, state.kmax)
    else:
        idx = _mass_select(q, state, seq_len, s, scale)
    return ops.sparse_decode(q, state.keys, state.values, idx, seq_lens, state.block_size, scale), idx


def _mass_select(q, state: LayerState, seq_len: int, s, scale: float) -> torch.Tensor:
    """idx int32 [B, Hkv, top_k] for the estimated-mass scorers (naive.select_blocks_b1), row by row."""
    bs = state.block_size
    nb = -(-seq_len // bs)
    if nb <= s.top_k:  # every block fits: no scoring needed
        return eager.all_blocks(nb, s.top_k, q.shape[0], state.ksum.shape[1], q.device)
    rows = []
    for b in range(q.shape[0]):
        kmin = None if state.kmin is None else state.kmin[b : b + 1]
        kmax = None if state.kmax is None else state.kmax[b : b + 1]
        rows.append(naive.select_blocks_b1(q[b : b + 1], state.ksum[b : b + 1], seq_len, bs, s.top_k, s.sink_blocks,
                                           s.local_blocks, s.scorer, kmin, kmax, scale=scale))
    return torch.cat(rows).to(torch.int32)


def dense_decode(query, key, value, state: LayerState | None, seq_len: int, scale: float) -> torch.Tensor:
    """Exact attention of one new token over all seq_len cached ones: query [B,Hq,1,D] -> [B,Hq,1,D].
    On CPU at batch 1 the fused kernel with every block kept (reads the cache once, in place)."""
    q = query[:, :, 0]
    plan = None if state is None or q.is_cuda else cpu.plan_for(
        q, state, scale, state.capacity // state.block_size, 0, 0, "mean", slot="dense")  # top_k: every block held
    if plan is not None:
        return plan(q, seq_len)[0].unsqueeze(2)
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, scale=scale, enable_gqa=True)


from . import contract  # noqa: E402
from . import cpu, cuda, eager, naive  # noqa: E402

engine_update, engine_decode, engine_append, engine_flush = (cuda.engine_update, cuda.engine_decode, cuda.engine_append,
                                                             cuda.engine_flush)


def _configure_from_settings() -> None:
    from m3analyst.settings import current

    configure(current().engine.kernels)


_configure_from_settings()
