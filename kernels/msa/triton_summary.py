"""Triton stage 1, the block summaries: `update_summaries` folds new keys into the per-block fp32 sums, min/max
and (optionally) the bf16 means. `_summary_update_kernel`: one program per (batch·KV head, touched block): sum /
min / max of the new keys of that block, fresh or folded into the running summary."""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .triton_common import _check_device


@triton.jit
def _summary_update_kernel(
    k_ptr, sk_b, sk_h, sk_t, sk_d,
    sum_ptr, min_ptr, max_ptr, ss_b, ss_h, ss_n, ss_d,
    mean_ptr, lens_ptr,
    start_pos, T, HKV, D,
    BLOCK_SIZE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_MINMAX: tl.constexpr, HAS_LENS: tl.constexpr, HAS_MEAN: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    b = pid_bh // HKV
    h = pid_bh % HKV
    blk = start_pos // BLOCK_SIZE + tl.program_id(1)
    blk_start = blk * BLOCK_SIZE
    lo = tl.maximum(blk_start, start_pos)
    hi = tl.minimum(blk_start + BLOCK_SIZE, start_pos + T)
    if HAS_LENS:
        hi = tl.minimum(hi, tl.load(lens_ptr + b).to(tl.int32))
    fresh = blk_start >= start_pos

    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    acc_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
    acc_min = tl.full([BLOCK_D], float("inf"), dtype=tl.float32)
    acc_max = tl.full([BLOCK_D], float("-inf"), dtype=tl.float32)
    k_base = k_ptr + b.to(tl.int64) * sk_b + h.to(tl.int64) * sk_h
    for p0 in range(lo, hi, BLOCK_T):
        pos = p0 + tl.arange(0, BLOCK_T)
        tmask = pos < hi
        m2 = tmask[:, None] & dmask[None, :]
        ptrs = k_base + (pos - start_pos).to(tl.int64)[:, None] * sk_t + offs_d[None, :] * sk_d
        keys = tl.load(ptrs, mask=m2, other=0.0).to(tl.float32)
        acc_sum += tl.sum(keys, axis=0)
        if HAS_MINMAX:
            acc_min = tl.minimum(acc_min, tl.min(tl.where(m2, keys, float("inf")), axis=0))
            acc_max = tl.maximum(acc_max, tl.max(tl.where(m2, keys, float("-inf")), axis=0))

    s_off = b.to(tl.int64) * ss_b + h.to(tl.int64) * ss_h + blk.to(tl.int64) * ss_n + offs_d * ss_d
    old_sum = tl.load(sum_ptr + s_off, mask=dmask, other=0.0).to(tl.float32)
    new_sum = tl.where(fresh, acc_sum, old_sum + acc_sum)
    tl.store(sum_ptr + s_off, new_sum.to(sum_ptr.dtype.element_ty), mask=dmask)
    if HAS_MEAN:  # low-precision block mean beside the fp32 sum (what the fast select reads)
        n_in_block = tl.maximum(hi - blk_start, 1).to(tl.float32)  # blocks past seq_len: left alone
        tl.store(mean_ptr + s_off, (new_sum / n_in_block).to(mean_ptr.dtype.element_ty), mask=dmask & (tl.zeros([BLOCK_D], dtype=tl.int32) + hi > blk_start))
    if HAS_MINMAX:
        old_min = tl.load(min_ptr + s_off, mask=dmask, other=0.0).to(tl.float32)
        old_max = tl.load(max_ptr + s_off, mask=dmask, other=0.0).to(tl.float32)
        new_min = tl.where(fresh, acc_min, tl.minimum(old_min, acc_min))
        new_max = tl.where(fresh, acc_max, tl.maximum(old_max, acc_max))
        tl.store(min_ptr + s_off, new_min.to(min_ptr.dtype.element_ty), mask=dmask)
        tl.store(max_ptr + s_off, new_max.to(max_ptr.dtype.element_ty), mask=dmask)


def _launch_summary_update(ksum, kmin, kmax, k_new, start_pos, block_size, seq_lens, kmean=None):
    B, hkv, T, D = k_new.shape
    n_blocks = (start_pos + T - 1) // block_size - start_pos // block_size + 1
    has_minmax = kmin is not None
    if has_minmax and (kmin.stride() != ksum.stride() or kmax.stride() != ksum.stride()):
        raise ValueError("kmin/kmax must share ksum's strides")
    if kmean is not None and (kmean.shape != ksum.shape or kmean.stride() != ksum.stride()):
        raise ValueError("kmean must have ksum's shape and strides")
    _summary_update_kernel[(B * hkv, n_blocks)](
        k_new, *k_new.stride(),
        ksum, kmin if has_minmax else ksum, kmax if has_minmax else ksum, *ksum.stride(),
        kmean if kmean is not None else ksum, seq_lens if seq_lens is not None else ksum,
        start_pos, T, hkv, D,
        BLOCK_SIZE=block_size, BLOCK_T=min(64, triton.next_power_of_2(block_size)),
        BLOCK_D=triton.next_power_of_2(D),
        HAS_MINMAX=has_minmax, HAS_LENS=seq_lens is not None, HAS_MEAN=kmean is not None,
    )


def update_summaries(
    ksum: torch.Tensor,
    kmin: torch.Tensor | None,
    kmax: torch.Tensor | None,
    k_new: torch.Tensor,
    start_pos: int,
    block_size: int,
    *,
    seq_lens: torch.Tensor | None = None,
    kmean: torch.Tensor | None = None,
) -> None:
    """In place: fold k_new [B, Hkv, T, D] (tokens start_pos .. start_pos+T-1) into the block summaries
    ksum (fp32) and, if given, kmin/kmax [B, Hkv, NB_cap, D]. A block whose first token is new starts
    afresh. Optional seq_lens [B] ignores tokens past each sequence's length. Optional kmean (same
    shape and strides as ksum, typically bf16): the touched blocks' means ksum / tokens, rounded to
    kmean's dtype, for `select_blocks(..., kmean=kmean)`. One launch."""
    if k_new.dim() != 4 or k_new.shape[:2] != ksum.shape[:2] or k_new.shape[3] != ksum.shape[3]:
        raise ValueError(f"k_new {tuple(k_new.shape)} does not match ksum {tuple(ksum.shape)}")
    if (kmin is None) != (kmax is None):
        raise ValueError("pass both kmin and kmax, or neither")
    _check_device(ksum, kmin, kmax, k_new, seq_lens)
    T = k_new.shape[2]
    if T == 0:
        return
    if math.ceil((start_pos + T) / block_size) > ksum.shape[2]:
        raise ValueError(f"tokens up to {start_pos + T} need more than the {ksum.shape[2]} blocks ksum holds")
    _check_device(ksum, kmean)
    _launch_summary_update(ksum, kmin, kmax, k_new, start_pos, block_size, seq_lens, kmean)
