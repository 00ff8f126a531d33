"""Triton kernels of the MSA decode ops, same contract and signatures as `msa_naive`.

Layering (as in flash-linear-attention): `@triton.jit` kernels → host launchers (`_launch_*`) →
public functions that document shapes and validate inputs. bf16/fp16/fp32 inputs, fp32 accumulation.
No host synchronisation anywhere in the decode path (no `.item()`, no data-dependent shapes), so
a decode step built from these ops can be captured in a CUDA graph.

Kernels:
    _summary_update_kernel   one program per (batch·KV head, touched block): sum / min / max of the
                             new keys of that block, fresh or folded into the running summary.
    _score_topk_kernel       one program per (batch·KV head, chunk of BLOCK_N blocks): group-summed
                             scores of the chunk's block summaries, sink/local forced, padding masked,
                             then the chunk's own top-K (K rounds of arg-max) written as candidates.
    _topk_merge_kernel       one program per (batch·KV head): top-K over all chunk candidates, sorted
                             ascending by block id, -1 for unused slots.
    _sparse_decode_kernel    split-K flash decoding: one program per (batch·KV head, selected block);
                             the group's query heads are the rows of one tile (padded to 16); K/V are
                             read in place from the [B, Hkv, S, D] cache through its strides (no gather
                             copy); online softmax in base 2 (exp2); writes a normalised partial output
                             and its log2-sum-exp.
    _merge_kernel            one program per (batch·query head): merges the partials by their LSE.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from . import msa_naive as ref

LOG2E = 1.4426950408889634
# Allocation hook for the launchers' scratch and outputs: tests swap in a NaN-filling version so that
# any read of memory a kernel did not write shows up as NaN / garbage.
_empty = torch.empty
_BIG = tl.constexpr(2147483647)  # sorts after every real block id


# ==============================================================================================
# kernels
# ==============================================================================================
@triton.jit
def _summary_update_kernel(
    k_ptr, sk_b, sk_h, sk_t, sk_d,
    sum_ptr, min_ptr, max_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr,
    start_pos, T, HKV, D,
    BLOCK_SIZE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_MINMAX: tl.constexpr, HAS_LENS: tl.constexpr,
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
    if HAS_MINMAX:
        old_min = tl.load(min_ptr + s_off, mask=dmask, other=0.0).to(tl.float32)
        old_max = tl.load(max_ptr + s_off, mask=dmask, other=0.0).to(tl.float32)
        new_min = tl.where(fresh, acc_min, tl.minimum(old_min, acc_min))
        new_max = tl.where(fresh, acc_max, tl.maximum(old_max, acc_max))
        tl.store(min_ptr + s_off, new_min.to(min_ptr.dtype.element_ty), mask=dmask)
        tl.store(max_ptr + s_off, new_max.to(max_ptr.dtype.element_ty), mask=dmask)


@triton.jit
def _score_topk_kernel(
    q_ptr, sq_b, sq_h, sq_d,
    sum_ptr, min_ptr, max_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr,
    cval_ptr, cidx_ptr,
    HKV, NB, D, n_chunks, sink_blocks, local_blocks,
    G: tl.constexpr, TOP_K: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, MINMAX: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    chunk = tl.program_id(1)
    b = pid_bh // HKV
    h = pid_bh % HKV
    seq_len = tl.load(lens_ptr + b).to(tl.int32)
    n_valid = (seq_len + BLOCK_SIZE - 1) // BLOCK_SIZE

    offs_n = chunk * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = offs_n < NB
    q_base = q_ptr + b.to(tl.int64) * sq_b + (h * G).to(tl.int64) * sq_h
    s_base = b.to(tl.int64) * ss_b + h.to(tl.int64) * ss_h + offs_n.to(tl.int64)[:, None] * ss_n
    score = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        dmask = offs_d < D
        m2 = nmask[:, None] & dmask[None, :]
        if MINMAX:
            kmin = tl.load(min_ptr + s_base + offs_d[None, :] * ss_d, mask=m2, other=0.0).to(tl.float32)
            kmax = tl.load(max_ptr + s_base + offs_d[None, :] * ss_d, mask=m2, other=0.0).to(tl.float32)
            for g in tl.static_range(G):
                qg = tl.load(q_base + g * sq_h + offs_d * sq_d, mask=dmask, other=0.0).to(tl.float32)
                bound = tl.maximum(kmin * qg[None, :], kmax * qg[None, :])
                score += tl.sum(tl.where(m2, bound, 0.0), axis=1)
        else:
            qsum = tl.zeros([BLOCK_D], dtype=tl.float32)
            for g in tl.static_range(G):
                qsum += tl.load(q_base + g * sq_h + offs_d * sq_d, mask=dmask, other=0.0).to(tl.float32)
            ks = tl.load(sum_ptr + s_base + offs_d[None, :] * ss_d, mask=m2, other=0.0).to(tl.float32)
            score += tl.sum(ks * qsum[None, :], axis=1)
    if not MINMAX:
        count = tl.minimum(tl.maximum(seq_len - offs_n * BLOCK_SIZE, 1), BLOCK_SIZE)
        score = score / count.to(tl.float32)

    valid = offs_n < n_valid
    forced = valid & ((offs_n < sink_blocks) | (offs_n >= n_valid - local_blocks))
    score = tl.where(forced, float("inf"), score)
    score = tl.where(valid, score, float("-inf"))

    c_base = (pid_bh.to(tl.int64) * n_chunks + chunk) * TOP_K
    lanes = tl.arange(0, BLOCK_N)
    for i in tl.static_range(TOP_K):
        best, arg = tl.max(score, axis=0, return_indices=True, return_indices_tie_break_left=True)
        tl.store(cval_ptr + c_base + i, best)
        tl.store(cidx_ptr + c_base + i, chunk * BLOCK_N + arg)
        score = tl.where(lanes == arg, float("-inf"), score)


@triton.jit
def _topk_merge_kernel(
    cval_ptr, cidx_ptr, out_ptr, so_b, so_h, so_k,
    HKV, n_cand,
    TOP_K: tl.constexpr, K_PAD: tl.constexpr, C_PAD: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    b = pid_bh // HKV
    h = pid_bh % HKV
    lanes = tl.arange(0, C_PAD)
    cmask = lanes < n_cand
    base = pid_bh.to(tl.int64) * n_cand
    vals = tl.load(cval_ptr + base + lanes, mask=cmask, other=float("-inf"))
    ids = tl.load(cidx_ptr + base + lanes, mask=cmask, other=0)
    kl = tl.arange(0, K_PAD)
    sel = tl.full([K_PAD], _BIG, dtype=tl.int32)
    for i in tl.static_range(TOP_K):
        best, arg = tl.max(vals, axis=0, return_indices=True, return_indices_tie_break_left=True)
        pick = tl.sum(tl.where(lanes == arg, ids, 0), axis=0)
        pick = tl.where(best == float("-inf"), _BIG, pick)
        sel = tl.where(kl == i, pick, sel)
        vals = tl.where(lanes == arg, float("-inf"), vals)
    # ascending order: rank of each pick among the picks (stable for the `big` fillers)
    before = (sel[None, :] < sel[:, None]) | ((sel[None, :] == sel[:, None]) & (kl[None, :] < kl[:, None]))
    rank = tl.sum(before.to(tl.int32), axis=1)
    out = tl.where(sel == _BIG, -1, sel)
    o_base = out_ptr + b.to(tl.int64) * so_b + h.to(tl.int64) * so_h
    tl.store(o_base + rank * so_k, out, mask=kl < TOP_K)


@triton.jit
def _sparse_decode_kernel(
    q_ptr, sq_b, sq_h, sq_d,
    k_ptr, sk_b, sk_h, sk_s, sk_d,
    v_ptr, sv_b, sv_h, sv_s, sv_d,
    idx_ptr, si_b, si_h, si_k,
    lens_ptr,
    po_ptr, plse_ptr,
    HKV, S, D, n_split, qk_scale,
    G: tl.constexpr, ROWS: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, FP32_DOT: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    split = tl.program_id(1)
    b = pid_bh // HKV
    h = pid_bh % HKV
    seq_len = tl.minimum(tl.load(lens_ptr + b).to(tl.int32), S)
    blk = tl.load(idx_ptr + b.to(tl.int64) * si_b + h.to(tl.int64) * si_h + split * si_k).to(tl.int32)
    blk_start = blk * BLOCK_SIZE
    n_tok = tl.where(blk >= 0, tl.minimum(tl.maximum(seq_len - blk_start, 0), BLOCK_SIZE), 0)

    rows = tl.arange(0, ROWS)
    rmask = rows < G
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    q_ptrs = q_ptr + b.to(tl.int64) * sq_b + (h * G + rows).to(tl.int64)[:, None] * sq_h + offs_d[None, :] * sq_d
    q = tl.load(q_ptrs, mask=rmask[:, None] & dmask[None, :], other=0.0)
    if FP32_DOT:
        q = q.to(tl.float32)

    k_base = k_ptr + b.to(tl.int64) * sk_b + h.to(tl.int64) * sk_h
    v_base = v_ptr + b.to(tl.int64) * sv_b + h.to(tl.int64) * sv_h
    m_i = tl.full([ROWS], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([ROWS], dtype=tl.float32)
    acc = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    for t0 in range(0, n_tok, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        tmask = offs_t < n_tok
        pos = (blk_start + offs_t).to(tl.int64)
        kv_mask = tmask[:, None] & dmask[None, :]
        k = tl.load(k_base + pos[:, None] * sk_s + offs_d[None, :] * sk_d, mask=kv_mask, other=0.0)
        v = tl.load(v_base + pos[:, None] * sv_s + offs_d[None, :] * sv_d, mask=kv_mask, other=0.0)
        if FP32_DOT:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k.to(q.dtype)))
        s = s * qk_scale  # [ROWS, BLOCK_T], log2 units
        s = tl.where(tmask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if FP32_DOT:
            pv = tl.dot(p, v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m_i = m_new

    has = l_i > 0
    lse = tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))
    out = acc / tl.where(has, l_i, 1.0)[:, None]
    head = (b * HKV + h) * G + rows  # flat (b, query head)
    p_off = (head.to(tl.int64) * n_split + split)
    tl.store(po_ptr + p_off[:, None] * D + offs_d[None, :], out, mask=rmask[:, None] & dmask[None, :])
    tl.store(plse_ptr + p_off, lse, mask=rmask)


@triton.jit
def _merge_kernel(
    po_ptr, plse_ptr, out_ptr, so_b, so_h, so_d,
    HQ, D, n_split,
    SPLIT_PAD: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)  # flat (b, query head)
    b = pid // HQ
    hq = pid % HQ
    offs_s = tl.arange(0, SPLIT_PAD)
    smask = offs_s < n_split
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    base = pid.to(tl.int64) * n_split
    lse = tl.load(plse_ptr + base + offs_s, mask=smask, other=float("-inf"))
    m = tl.max(lse, axis=0)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp2(lse - m_safe)
    parts = tl.load(po_ptr + (base + offs_s)[:, None] * D + offs_d[None, :], mask=smask[:, None] & dmask[None, :], other=0.0)
    denom = tl.sum(w, axis=0)
    out = tl.sum(parts * w[:, None], axis=0) / tl.where(denom > 0, denom, 1.0)
    o_ptrs = out_ptr + b.to(tl.int64) * so_b + hq.to(tl.int64) * so_h + offs_d * so_d
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=dmask)


# ==============================================================================================
# host launchers
# ==============================================================================================
def _launch_summary_update(ksum, kmin, kmax, k_new, start_pos, block_size, seq_lens):
    B, hkv, T, D = k_new.shape
    n_blocks = (start_pos + T - 1) // block_size - start_pos // block_size + 1
    has_minmax = kmin is not None
    if has_minmax and (kmin.stride() != ksum.stride() or kmax.stride() != ksum.stride()):
        raise ValueError("kmin/kmax must share ksum's strides")
    _summary_update_kernel[(B * hkv, n_blocks)](
        k_new, *k_new.stride(),
        ksum, kmin if has_minmax else ksum, kmax if has_minmax else ksum, *ksum.stride(),
        seq_lens if seq_lens is not None else ksum,
        start_pos, T, hkv, D,
        BLOCK_SIZE=block_size, BLOCK_T=min(64, triton.next_power_of_2(block_size)),
        BLOCK_D=triton.next_power_of_2(D),
        HAS_MINMAX=has_minmax, HAS_LENS=seq_lens is not None,
    )


def _chunk_size(nb: int, top_k: int) -> int:
    """Blocks scored per program: enough programs to fill the GPU, ~1-2K top-K candidates to merge."""
    want = triton.next_power_of_2(max(1, (nb * top_k) // 1024))
    return max(64, min(512, want))


def _launch_score_topk(q, ksum, kmin, kmax, seq_lens, block_size, top_k, sink_blocks, local_blocks, minmax):
    B, hkv, nb, D = ksum.shape
    G = q.shape[1] // hkv
    block_n = _chunk_size(nb, top_k)
    n_chunks = triton.cdiv(nb, block_n)
    cval = _empty((B * hkv, n_chunks, top_k), device=q.device, dtype=torch.float32)
    cidx = _empty((B * hkv, n_chunks, top_k), device=q.device, dtype=torch.int32)
    src_min, src_max = (kmin, kmax) if minmax else (ksum, ksum)
    if minmax and (kmin.stride() != ksum.stride() or kmax.stride() != ksum.stride()):
        raise ValueError("kmin/kmax must share ksum's strides")
    _score_topk_kernel[(B * hkv, n_chunks)](
        q, *q.stride(),
        ksum, src_min, src_max, *ksum.stride(),
        seq_lens, cval, cidx,
        hkv, nb, D, n_chunks, sink_blocks, local_blocks,
        G=G, TOP_K=top_k, BLOCK_SIZE=block_size, BLOCK_N=block_n,
        BLOCK_D=min(32, triton.next_power_of_2(D)), MINMAX=minmax,
        num_warps=4,
    )
    idx = _empty((B, hkv, top_k), device=q.device, dtype=torch.int32)
    n_cand = n_chunks * top_k
    _topk_merge_kernel[(B * hkv,)](
        cval, cidx, idx, *idx.stride(), hkv, n_cand,
        TOP_K=top_k, K_PAD=triton.next_power_of_2(top_k), C_PAD=triton.next_power_of_2(n_cand),
        num_warps=4,
    )
    return idx


def _fp32_dot(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """Dot products in fp32 (IEEE) for fp32 inputs, and for bf16 under TRITON_INTERPRET=1, whose CPU
    interpreter mis-multiplies bf16 tiles in tl.dot (triton 3.9; fp16 and fp32 are right)."""
    if q.dtype == torch.float32 or k_cache.dtype == torch.float32:
        return True
    return os.environ.get("TRITON_INTERPRET") == "1" and torch.bfloat16 in (q.dtype, k_cache.dtype)


def _launch_sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale):
    B, hkv, S, D = k_cache.shape
    hq = q.shape[1]
    G = hq // hkv
    n_split = idx.shape[-1]
    part_o = _empty((B * hq, n_split, D), device=q.device, dtype=torch.float32)
    part_lse = _empty((B * hq, n_split), device=q.device, dtype=torch.float32)
    block_d = triton.next_power_of_2(D)
    _sparse_decode_kernel[(B * hkv, n_split)](
        q, *q.stride(),
        k_cache, *k_cache.stride(),
        v_cache, *v_cache.stride(),
        idx, *idx.stride(),
        seq_lens, part_o, part_lse,
        hkv, S, D, n_split, scale * LOG2E,
        G=G, ROWS=max(16, triton.next_power_of_2(G)), BLOCK_SIZE=block_size,
        BLOCK_T=max(16, min(64, triton.next_power_of_2(block_size))), BLOCK_D=block_d,
        FP32_DOT=_fp32_dot(q, k_cache),
        num_warps=4, num_stages=2,
    )
    out = _empty((B, hq, D), device=q.device, dtype=q.dtype)
    _merge_kernel[(B * hq,)](
        part_o, part_lse, out, *out.stride(), hq, D, n_split,
        SPLIT_PAD=triton.next_power_of_2(n_split), BLOCK_D=block_d,
        num_warps=4,
    )
    return out


# ==============================================================================================
# public functions (contract signatures; see msa_naive for the exact semantics)
# ==============================================================================================
def _check_device(*tensors: torch.Tensor | None) -> None:
    devs = {t.device for t in tensors if t is not None}
    if len(devs) != 1:
        raise ValueError(f"all tensors must be on one device; got {sorted(map(str, devs))}")


def update_summaries(
    ksum: torch.Tensor,
    kmin: torch.Tensor | None,
    kmax: torch.Tensor | None,
    k_new: torch.Tensor,
    start_pos: int,
    block_size: int,
    *,
    seq_lens: torch.Tensor | None = None,
) -> None:
    """In place: fold k_new [B, Hkv, T, D] (tokens start_pos .. start_pos+T-1) into the block summaries
    ksum (fp32) and, if given, kmin/kmax [B, Hkv, NB_cap, D]. A block whose first token is new starts
    afresh. Optional seq_lens [B] ignores tokens past each sequence's length. One launch."""
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
    _launch_summary_update(ksum, kmin, kmax, k_new, start_pos, block_size, seq_lens)


def select_blocks(
    q: torch.Tensor,
    ksum: torch.Tensor,
    seq_lens: torch.Tensor,
    block_size: int,
    top_k: int,
    sink_blocks: int = 1,
    local_blocks: int = 1,
    scorer: str = "mean",
    kmin: torch.Tensor | None = None,
    kmax: torch.Tensor | None = None,
) -> torch.Tensor:
    """q [B, Hq, D], ksum [B, Hkv, NB_cap, D], seq_lens [B] -> idx int32 [B, Hkv, top_k]: each KV group's
    top-K blocks by group-summed score, sink/local forced, blocks past seq_len excluded, ascending,
    -1 padded. Two launches (score + chunk top-K, then merge); scans all NB_cap blocks (no sync)."""
    ref.check_select_args(top_k, sink_blocks, local_blocks, scorer, kmin, kmax)
    ref.check_group(q, ksum.shape[1])
    if q.shape[0] != ksum.shape[0] or q.shape[2] != ksum.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} does not match ksum {tuple(ksum.shape)}")
    _check_device(q, ksum, seq_lens, kmin, kmax)
    return _launch_score_topk(q, ksum, kmin, kmax, seq_lens, block_size, top_k, sink_blocks, local_blocks, scorer == "minmax")


def sparse_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    idx: torch.Tensor,
    seq_lens: torch.Tensor,
    block_size: int,
    scale: float,
) -> torch.Tensor:
    """q [B, Hq, D], k_cache/v_cache [B, Hkv, S_cap, D] (strided views fine), idx [B, Hkv, top_k]
    (-1 = unused), seq_lens [B] -> out [B, Hq, D] in q's dtype: exact softmax attention over the
    selected blocks' tokens (< seq_len). Split-K: one program per selected block, then an LSE merge."""
    ref.check_cache(k_cache, v_cache)
    B, hkv, S, D = k_cache.shape
    ref.check_group(q, hkv)
    if q.shape[0] != B or q.shape[2] != D:
        raise ValueError(f"q {tuple(q.shape)} does not match the cache {tuple(k_cache.shape)}")
    if idx.shape[:2] != (B, hkv):
        raise ValueError(f"idx must be [B, Hkv, top_k] = [{B}, {hkv}, K]; got {tuple(idx.shape)}")
    _check_device(q, k_cache, v_cache, idx, seq_lens)
    return _launch_sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale)
