"""Triton stage 3, decode: `sparse_decode` over selected blocks, and the whole decode step in one launch
(`select_and_decode`, the engine's op; `decode_step`).

`_sparse_decode_kernel`: split-K flash decoding, one program per (batch·KV head, split of TUNING.decode_blocks_per_split
selected blocks); the group's query heads are the rows of one tile (padded to 16); K/V are read in place through
the cache's strides; online softmax in base 2; normalised partial output + log2-sum-exp per split; the last split
program merges them by LSE ("last program merges": every program publishes its part, bumps an arrival counter,
and the last to arrive for its (batch, KV head) merges and resets the counter).
`_step3_kernel`: select programs (triton_select._s3_program) publish each chunk's best K and raise a per-(batch,
KV head) counter; each of the K decode programs of a head merges the published lists itself, attends one selected
block and writes its slot of idx; the last merges the K partials. mean (fp32 sums / bf16 means, optional exact
rescoring) or minmax scorer; one launch or two (TUNING.step_launches). With k_new the token is folded into the
summaries, with v_new its key and value are written into the caches, by the same launch. Optional Hopper
programmatic dependent launch (TUNING.step_pdl). Long contexts: persistent select programs (_tiles_per_program).
Profiling only: with `triton_common.TIMELINE` set, programs store clock stamps at their phase boundaries.
No host synchronisation anywhere (no .item(), no data-dependent shapes): a decode step can be captured in a CUDA
graph."""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from . import naive as ref
from . import triton_common as C
from .triton_common import LOG2E, _HAS_GDC, _HAS_TOPK, _check_device, _chunk_plan, _compact_top, _counter, _pdl_wait, _ranks_mem, _seq_len_of, _stamp
from .triton_select import _launch_select, _s3_program
from .triton_summary import _launch_summary_update


@triton.jit
def _online_tile(q, k_base, v_base, pos, tmask, offs_d, dmask, sk_s, sk_d, sv_s, sv_d, qk_scale, m_i, l_i, acc,
                 FP32_DOT: tl.constexpr):
    """Fold one tile of keys (cache rows `pos`, valid where tmask) into the online softmax of the group's query
    rows q [ROWS, BLOCK_D]: scores in log2 units (qk_scale includes log2 e), exp2. Returns (m_i, l_i, acc)."""
    kv_mask = tmask[:, None] & dmask[None, :]
    k = tl.load(k_base + pos[:, None] * sk_s + offs_d[None, :] * sk_d, mask=kv_mask, other=0.0)
    v = tl.load(v_base + pos[:, None] * sv_s + offs_d[None, :] * sv_d, mask=kv_mask, other=0.0)
    if FP32_DOT:
        s = tl.dot(q, tl.trans(k.to(tl.float32)), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k.to(q.dtype)))
    s = tl.where(tmask[None, :], s * qk_scale, float("-inf"))  # [ROWS, BLOCK_T]
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])
    if FP32_DOT:
        pv = tl.dot(p, v.to(tl.float32), input_precision="ieee")
    else:
        pv = tl.dot(p.to(v.dtype), v)
    return m_new, l_i * alpha + tl.sum(p, axis=1), acc * alpha[:, None] + pv


@triton.jit
def _publish_and_merge(acc, m_i, l_i, part, n_parts, pid_bh, rows, offs_d, dmask, D, po_ptr, plse_ptr, count_ptr,
                       out_ptr, o_base, so_h, so_d, h,
                       G: tl.constexpr, G_PAD: tl.constexpr, SPLIT_PAD: tl.constexpr):
    """Store this program's partial attention (acc / l_i and its base-2 log-sum-exp) as part `part` of n_parts
    ([B*Hkv, n_parts, G_PAD, D] and [B*Hkv, n_parts, G_PAD] scratch); the last of the n_parts programs of this
    (batch, KV head) merges all parts by their LSE into the group's output rows and resets the counter.
    Returns whether this program was the last (it then owns the clean-up of any other per-head state)."""
    has = l_i > 0
    lse = tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))
    o = acc / tl.where(has, l_i, 1.0)[:, None]
    p_row = (pid_bh.to(tl.int64) * n_parts + part) * G_PAD + rows
    tl.store(po_ptr + p_row[:, None] * D + offs_d[None, :], o, mask=(rows < G_PAD)[:, None] & dmask[None, :])
    tl.store(plse_ptr + p_row, lse, mask=rows < G_PAD)
    tl.debug_barrier()
    done = tl.atomic_add(count_ptr + pid_bh, 1, sem="acq_rel")
    last = done == n_parts - 1
    if last:
        sp = tl.arange(0, SPLIT_PAD)
        gp = tl.arange(0, G_PAD)
        smask = sp < n_parts
        row3 = (pid_bh.to(tl.int64) * n_parts + sp)[:, None] * G_PAD + gp[None, :]  # [SPLIT_PAD, G_PAD]
        lse_all = tl.load(plse_ptr + row3, mask=smask[:, None], other=float("-inf"), cache_modifier=".cg")
        m = tl.max(lse_all, axis=0)
        m = tl.where(m == float("-inf"), 0.0, m)
        w = tl.exp2(lse_all - m[None, :])  # [SPLIT_PAD, G_PAD]
        parts = tl.load(po_ptr + row3[:, :, None] * D + offs_d[None, None, :],
                        mask=smask[:, None, None] & dmask[None, None, :], other=0.0, cache_modifier=".cg")
        denom = tl.sum(w, axis=0)
        merged = tl.sum(parts * w[:, :, None], axis=0) / tl.where(denom > 0, denom, 1.0)[:, None]
        tl.store(o_base + (h * G + gp).to(tl.int64)[:, None] * so_h + offs_d[None, :] * so_d,
                 merged.to(out_ptr.dtype.element_ty), mask=(gp < G)[:, None] & dmask[None, :])
        tl.store(count_ptr + pid_bh, 0)
    return last


@triton.jit
def _decode_program(
    pid_bh, split, flag_ptr,
    q_ptr, sq_b, sq_h, sq_d,
    k_ptr, sk_b, sk_h, sk_s, sk_d,
    v_ptr, sv_b, sv_h, sv_s, sv_d,
    idx_ptr, si_b, si_h, si_k,
    lens_ptr, po_ptr, plse_ptr, count_ptr,
    out_ptr, so_b, so_h, so_d,
    HKV, S, D, n_sel, n_split, qk_scale,
    G: tl.constexpr, G_PAD: tl.constexpr, ROWS: tl.constexpr, BLOCK_SIZE: tl.constexpr, BPS: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, SPLIT_PAD: tl.constexpr, FP32_DOT: tl.constexpr,
    WAIT: tl.constexpr,
):
    """One decode program: (batch·KV head pid_bh, split of BPS selected blocks). WAIT: spin until
    flag_ptr[pid_bh] is raised by the select program of the same launch that writes this row of idx
    (the last split program lowers it again after the merge)."""
    b = pid_bh // HKV
    h = pid_bh % HKV
    seq_len = tl.minimum(tl.load(lens_ptr + b).to(tl.int32), S)

    rows = tl.arange(0, ROWS)
    rmask = rows < G
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    q_ptrs = q_ptr + b.to(tl.int64) * sq_b + (h * G + rows).to(tl.int64)[:, None] * sq_h + offs_d[None, :] * sq_d
    q = tl.load(q_ptrs, mask=rmask[:, None] & dmask[None, :], other=0.0)
    if FP32_DOT:
        q = q.to(tl.float32)

    if WAIT:  # q is loaded meanwhile; the selection of this (batch, KV head) is published with release
        # spin on plain volatile loads (no read-modify-write traffic on the flag), then one acquire
        # atomic orders the idx reads after the selector's release
        while tl.load(flag_ptr + pid_bh, volatile=True) == 0:
            pass
        tl.atomic_add(flag_ptr + pid_bh, 0, sem="acquire")

    # 1. this split's BPS blocks: online softmax (base 2) over their tokens, group heads as tile rows
    k_base = k_ptr + b.to(tl.int64) * sk_b + h.to(tl.int64) * sk_h
    v_base = v_ptr + b.to(tl.int64) * sv_b + h.to(tl.int64) * sv_h
    m_i = tl.full([ROWS], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([ROWS], dtype=tl.float32)
    acc = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    for j in range(split * BPS, tl.minimum(split * BPS + BPS, n_sel)):
        blk = tl.load(idx_ptr + b.to(tl.int64) * si_b + h.to(tl.int64) * si_h + j * si_k, cache_modifier=".cg").to(tl.int32)
        blk_start = blk * BLOCK_SIZE
        n_tok = tl.where(blk >= 0, tl.minimum(tl.maximum(seq_len - blk_start, 0), BLOCK_SIZE), 0)
        for t0 in range(0, n_tok, BLOCK_T):
            offs_t = t0 + tl.arange(0, BLOCK_T)
            m_i, l_i, acc = _online_tile(q, k_base, v_base, (blk_start + offs_t).to(tl.int64), offs_t < n_tok, offs_d,
                                         dmask, sk_s, sk_d, sv_s, sv_d, qk_scale, m_i, l_i, acc, FP32_DOT)

    # 2. publish this split's partial; the last split program of this (batch, KV head) merges them by their LSE
    last = _publish_and_merge(acc, m_i, l_i, split, n_split, pid_bh, rows, offs_d, dmask, D, po_ptr, plse_ptr,
                              count_ptr, out_ptr, out_ptr + b.to(tl.int64) * so_b, so_h, so_d, h, G, G_PAD, SPLIT_PAD)
    if WAIT:
        if last:
            tl.atomic_xchg(flag_ptr + pid_bh, 0, sem="relaxed")


@triton.jit
def _sparse_decode_kernel(
    q_ptr, sq_b, sq_h, sq_d,
    k_ptr, sk_b, sk_h, sk_s, sk_d,
    v_ptr, sv_b, sv_h, sv_s, sv_d,
    idx_ptr, si_b, si_h, si_k,
    lens_ptr, po_ptr, plse_ptr, count_ptr,
    out_ptr, so_b, so_h, so_d,
    HKV, S, D, n_sel, n_split, qk_scale,
    G: tl.constexpr, G_PAD: tl.constexpr, ROWS: tl.constexpr, BLOCK_SIZE: tl.constexpr, BPS: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, SPLIT_PAD: tl.constexpr, FP32_DOT: tl.constexpr,
):
    _decode_program(
        tl.program_id(0), tl.program_id(1), count_ptr,
        q_ptr, sq_b, sq_h, sq_d, k_ptr, sk_b, sk_h, sk_s, sk_d, v_ptr, sv_b, sv_h, sv_s, sv_d,
        idx_ptr, si_b, si_h, si_k, lens_ptr, po_ptr, plse_ptr, count_ptr, out_ptr, so_b, so_h, so_d,
        HKV, S, D, n_sel, n_split, qk_scale,
        G, G_PAD, ROWS, BLOCK_SIZE, BPS, BLOCK_T, BLOCK_D, SPLIT_PAD, FP32_DOT, False,
    )


@triton.jit
def _d3_program(
    pid_bh, split,
    q_ptr, sq_b, sq_h, sq_d,
    k_ptr, sk_b, sk_h, sk_s, sk_d,
    v_ptr, sv_b, sv_h, sv_s, sv_d,
    idx_ptr, si_b, si_h, si_k,
    lens_ptr, seq_len_arg, ls_ptr, li_ptr, n_lists, flag_ptr, po_ptr, plse_ptr, dcount_ptr,
    out_ptr, so_b, so_h, so_d,
    HKV, S, D, qk_scale,
    G: tl.constexpr, G_PAD: tl.constexpr, ROWS: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr, TOP_K: tl.constexpr, K_PAD: tl.constexpr, L_PAD: tl.constexpr, SPLIT_PAD: tl.constexpr,
    FP32_DOT: tl.constexpr, HAS_TOPK: tl.constexpr, LENS_SCALAR: tl.constexpr, RANKED: tl.constexpr, JC: tl.constexpr,
    PDL: tl.constexpr, tm_ptr, TIMING: tl.constexpr,
):
    """Decode program of the v3 step: (batch·KV head, slot `split` of the selection). Waits until all n_lists
    candidate lists of its (batch, KV head) are published, merges them (every slot program redundantly: no
    extra round trip), writes idx[slot] = the slot-th selected block in ascending order (-1 if none), attends
    over that one block (group heads as tile rows), publishes its normalised partial + log2-sum-exp; the last
    slot program merges the TOP_K partials and resets the flag. PDL: first waits for the previous kernel.
    TIMING: stamps at entry (0), lists visible (1), merged + idx written (2), block attended (3), partial published and
    (the last program) merged (4); slot 5 holds 1 in the program that merged."""
    _stamp(tm_ptr, 0, pid_bh, TIMING)
    _pdl_wait(PDL != 0, PDL == 1)
    b = pid_bh // HKV
    h = pid_bh % HKV
    seq_len = tl.minimum(_seq_len_of(lens_ptr, b, seq_len_arg, LENS_SCALAR), S)
    rows = tl.arange(0, ROWS)
    rmask = rows < G
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    q = tl.load(q_ptr + b.to(tl.int64) * sq_b + (h * G + rows).to(tl.int64)[:, None] * sq_h + offs_d[None, :] * sq_d,
                mask=rmask[:, None] & dmask[None, :], other=0.0)
    if FP32_DOT:
        q = q.to(tl.float32)
    while tl.load(flag_ptr + pid_bh, volatile=True) < n_lists:
        pass
    seen = tl.atomic_add(flag_ptr + pid_bh, 0, sem="acquire")
    _stamp(tm_ptr, 1, seen, TIMING)

    l_off = pid_bh.to(tl.int64) * n_lists * K_PAD
    if RANKED:  # this program attends the candidate of global rank `split`; idx keeps ascending block order
        sc, ic, rk = _ranks_mem(ls_ptr + l_off, li_ptr + l_off, n_lists * K_PAD, L_PAD * K_PAD, JC)
        live = sc > float("-inf")
        mine = live & (rk == split)
        has = tl.sum(mine.to(tl.int32), axis=0) > 0
        blk = tl.where(has, tl.sum(tl.where(mine, ic, 0), axis=0), -1)
        below = tl.sum((live & (rk < TOP_K) & (ic < blk)).to(tl.int32), axis=0)
        out_slot = tl.where(has, below, split)
    else:
        lanes = tl.arange(0, L_PAD * K_PAD)
        lm = lanes < n_lists * K_PAD
        sc = tl.load(ls_ptr + l_off + lanes, mask=lm, other=float("-inf"), cache_modifier=".cg")
        ic = tl.load(li_ptr + l_off + lanes, mask=lm, other=0, cache_modifier=".cg")
        picked, slot, count = _compact_top(sc, TOP_K, K_PAD, HAS_TOPK)
        blk = tl.sum(tl.where(picked & (slot == split), ic, 0), axis=0)
        blk = tl.where(split < count, blk, -1)
        out_slot = split
    tl.store(idx_ptr + b.to(tl.int64) * si_b + h.to(tl.int64) * si_h + out_slot * si_k, blk)
    _stamp(tm_ptr, 2, blk, TIMING)

    blk_start = blk * BLOCK_SIZE
    n_tok = tl.where(blk >= 0, tl.minimum(tl.maximum(seq_len - blk_start, 0), BLOCK_SIZE), 0)
    k_base = k_ptr + b.to(tl.int64) * sk_b + h.to(tl.int64) * sk_h
    v_base = v_ptr + b.to(tl.int64) * sv_b + h.to(tl.int64) * sv_h
    m_i = tl.full([ROWS], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([ROWS], dtype=tl.float32)
    acc = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    for t0 in tl.static_range(0, BLOCK_SIZE, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        m_i, l_i, acc = _online_tile(q, k_base, v_base, (blk_start + offs_t).to(tl.int64), offs_t < n_tok, offs_d, dmask,
                                     sk_s, sk_d, sv_s, sv_d, qk_scale, m_i, l_i, acc, FP32_DOT)
    if TIMING:
        _stamp(tm_ptr, 3, tl.sum(l_i, axis=0), TIMING)

    last = _publish_and_merge(acc, m_i, l_i, split, TOP_K, pid_bh, rows, offs_d, dmask, D, po_ptr, plse_ptr, dcount_ptr,
                              out_ptr, out_ptr + b.to(tl.int64) * so_b, so_h, so_d, h, G, G_PAD, SPLIT_PAD)
    if last:
        tl.atomic_xchg(flag_ptr + pid_bh, 0, sem="relaxed")
    if TIMING:
        _stamp(tm_ptr, 4, last, TIMING)
        tl.store(tm_ptr + 10 + tl.arange(0, 1), last.to(tl.int64) + tl.zeros([1], dtype=tl.int64))


@triton.jit
def _step3_kernel(
    q_ptr, sq_b, sq_h, sq_d,
    src_ptr, min_ptr, max_ptr, sum_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr, seq_len_arg, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, gcount_ptr, flag_ptr,
    kn_ptr, skn_b, skn_h, skn_d, pos,
    vn_ptr, svn_b, svn_h, svn_d,
    NB, n_chunks, n_groups, sink_blocks, local_blocks,
    k_ptr, sk_b, sk_h, sk_s, sk_d,
    v_ptr, sv_b, sv_h, sv_s, sv_d,
    idx_ptr, si_b, si_h, si_k,
    po_ptr, plse_ptr, dcount_ptr,
    out_ptr, so_b, so_h, so_d,
    HKV, S, D, qk_scale,
    G: tl.constexpr, TOP_K: tl.constexpr, K_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr, SUB_N: tl.constexpr,
    BLOCK_D: tl.constexpr, GROUP: tl.constexpr, L_PAD: tl.constexpr, MINMAX: tl.constexpr, HAS_MEAN: tl.constexpr,
    FOLD: tl.constexpr, EXACT: tl.constexpr, HAS_TOPK: tl.constexpr, LENS_SCALAR: tl.constexpr,
    G_PAD: tl.constexpr, ROWS: tl.constexpr, BLOCK_T: tl.constexpr, SPLIT_PAD: tl.constexpr, FP32_DOT: tl.constexpr,
    RANKED: tl.constexpr, JC_S: tl.constexpr, JC_D: tl.constexpr, PHASE: tl.constexpr, FOLD_MINMAX: tl.constexpr,
    TILES: tl.constexpr, PDL: tl.constexpr, PREFETCH: tl.constexpr, KV_WRITE: tl.constexpr,
    tm_ptr, TIMING: tl.constexpr = False,
):
    """A whole MSA decode step in ONE launch, v3 (1-D grid): programs [0, B·Hkv·n_chunks) select (and fold
    the new token when FOLD); the B·Hkv·TOP_K programs after them each merge their (batch, KV head)'s
    published candidate lists and attend over one selected block. Programs start in index order, so every
    select program is resident or done before a decode program spins. PHASE 1 / 2: the select / decode
    programs alone (two launches; the decode programs then find their flags already raised). TIMING (profiling
    builds only, `C.TIMELINE`): every program stores its phase stamps in tm_ptr[pid, 0:16] (int64)."""
    pid = tl.program_id(0)
    tm_row = tm_ptr + pid.to(tl.int64) * 16
    if PHASE == 0:  # both phases in this launch
        n_sel = tl.num_programs(0) // (n_chunks + TOP_K) * n_chunks
    elif PHASE == 1:  # select programs only (a decode launch follows)
        n_sel = tl.num_programs(0)
    else:  # decode programs only, after a select launch
        n_sel = 0
    if pid < n_sel:
        _s3_program(pid // n_chunks, pid % n_chunks,
                    q_ptr, sq_b, sq_h, sq_d, src_ptr, min_ptr, max_ptr, sum_ptr, ss_b, ss_h, ss_n, ss_d,
                    lens_ptr, seq_len_arg, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, gcount_ptr, flag_ptr,
                    kn_ptr, skn_b, skn_h, skn_d, pos,
                    vn_ptr, svn_b, svn_h, svn_d, k_ptr, sk_b, sk_h, sk_s, sk_d, v_ptr, sv_b, sv_h, sv_s, sv_d,
                    HKV, D, NB, n_chunks, n_groups, sink_blocks, local_blocks,
                    G, TOP_K, K_PAD, BLOCK_SIZE, SUB_N, BLOCK_D, GROUP, MINMAX, HAS_MEAN, FOLD, EXACT, HAS_TOPK, LENS_SCALAR,
                    RANKED, JC_S, FOLD_MINMAX, TILES, PDL, PREFETCH, KV_WRITE, tm_row, TIMING)
    else:
        p = pid - n_sel
        if GROUP > 1:
            ls_ptr, li_ptr, n_lists = gs_ptr, gi_ptr, n_groups
        else:
            ls_ptr, li_ptr, n_lists = cs_ptr, ci_ptr, n_chunks
        _d3_program(p // TOP_K, p % TOP_K,
                    q_ptr, sq_b, sq_h, sq_d, k_ptr, sk_b, sk_h, sk_s, sk_d, v_ptr, sv_b, sv_h, sv_s, sv_d,
                    idx_ptr, si_b, si_h, si_k, lens_ptr, seq_len_arg, ls_ptr, li_ptr, n_lists, flag_ptr,
                    po_ptr, plse_ptr, dcount_ptr, out_ptr, so_b, so_h, so_d, HKV, S, D, qk_scale,
                    G, G_PAD, ROWS, BLOCK_SIZE, BLOCK_T, BLOCK_D, TOP_K, K_PAD, L_PAD, SPLIT_PAD, FP32_DOT, HAS_TOPK,
                    LENS_SCALAR, RANKED, JC_D, PDL, tm_row, TIMING)


def _fp32_dot(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """Dot products in fp32 (IEEE) for fp32 inputs, and for bf16 under TRITON_INTERPRET=1, whose CPU
    interpreter mis-multiplies bf16 tiles in tl.dot (triton 3.9; fp16 and fp32 are right)."""
    if q.dtype == torch.float32 or k_cache.dtype == torch.float32:
        return True
    return os.environ.get("TRITON_INTERPRET") == "1" and torch.bfloat16 in (q.dtype, k_cache.dtype)


class _DecodePlan:
    """Scratch buffers and compile-time parameters of one split-K decode."""

    def __init__(self, q, k_cache, n_sel, block_size):
        B, hkv, S, D = k_cache.shape
        self.G = q.shape[1] // hkv
        self.g_pad = triton.next_power_of_2(self.G)
        bps = max(1, min(C.TUNING.decode_blocks_per_split, n_sel))
        self.bps, self.n_split = bps, triton.cdiv(n_sel, bps)
        self.part_o = C._empty((B * hkv, self.n_split, self.g_pad, D), device=q.device, dtype=torch.float32)
        self.part_lse = C._empty((B * hkv, self.n_split, self.g_pad), device=q.device, dtype=torch.float32)
        self.count = _counter(q.device, B * hkv, "decode")
        self.out = C._empty((B, q.shape[1], D), device=q.device, dtype=q.dtype)
        self.fp32 = _fp32_dot(q, k_cache)
        self.block_size, self.D = block_size, D

    def constexprs(self):
        return dict(G=self.G, G_PAD=self.g_pad, ROWS=max(16, self.g_pad), BLOCK_SIZE=self.block_size, BPS=self.bps,
                    BLOCK_T=max(16, min(64, triton.next_power_of_2(self.block_size))), BLOCK_D=triton.next_power_of_2(self.D),
                    SPLIT_PAD=triton.next_power_of_2(self.n_split), FP32_DOT=self.fp32)


def _launch_sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale):
    B, hkv, S, D = k_cache.shape
    n_sel = idx.shape[-1]
    plan = _DecodePlan(q, k_cache, n_sel, block_size)
    _sparse_decode_kernel[(B * hkv, plan.n_split)](
        q, *q.stride(),
        k_cache, *k_cache.stride(),
        v_cache, *v_cache.stride(),
        idx, *idx.stride(),
        seq_lens, plan.part_o, plan.part_lse, plan.count,
        plan.out, *plan.out.stride(),
        hkv, S, D, n_sel, plan.n_split, scale * LOG2E,
        **plan.constexprs(),
        num_warps=C.TUNING.decode_warps, num_stages=C.TUNING.decode_stages,
    )
    return plan.out


class _Step3Plan:
    """Scratch buffers, grid and compile-time parameters of one v3 step launch (`_step3_kernel`).

    Level-1 candidate lists: one per chunk when n_chunks·K_PAD <= C.TUNING.step_flat_lanes (the decode
    programs merge them directly), else one per group of GROUP chunks (merged by the group's last program), GROUP
    sized so that the decode programs merge about C.TUNING.step_merge_lanes lanes. Minmax tiles (two fp32
    tables) may be sized apart (C.TUNING.step_tile_bytes_minmax). A chunk is `tiles` tiles of SUB_N blocks:
    1, or (persistent style) a power of two up to C.TUNING.step_max_tiles chosen so that at most about
    C.TUNING.step_select_programs select programs run (0 / None: always 1), with tiles of
    C.TUNING.step_tile_bytes_persistent bytes (minmax: step_tile_bytes_persistent_minmax; None: as without)."""

    def __init__(self, q, src, k_cache, top_k, block_size, summary_bytes):
        B, hkv, nb, D = src.shape
        self.G = q.shape[1] // hkv
        self.k_pad = max(2, triton.next_power_of_2(top_k))
        tile = (summary_bytes == 8 and C.TUNING.step_tile_bytes_minmax) or C.TUNING.step_tile_bytes
        sub_n, _ = _chunk_plan(nb, D, summary_bytes, tile)
        self.sub_n = max(sub_n, self.k_pad)
        n_tiles = triton.cdiv(nb, self.sub_n)
        self.tiles = _tiles_per_program(n_tiles, B * hkv, self.k_pad)
        tile_p = (summary_bytes == 8 and C.TUNING.step_tile_bytes_persistent_minmax) or C.TUNING.step_tile_bytes_persistent
        if self.tiles > 1 and tile_p:  # persistent programs with their own tile size, if still persistent with it
            sub_p = max(_chunk_plan(nb, D, summary_bytes, tile_p)[0], self.k_pad)
            tiles_p = _tiles_per_program(triton.cdiv(nb, sub_p), B * hkv, self.k_pad)
            if tiles_p > 1:
                self.sub_n, n_tiles, self.tiles = sub_p, triton.cdiv(nb, sub_p), tiles_p
        self.n_chunks = triton.cdiv(n_tiles, self.tiles)
        lanes = C.TUNING.step_merge_lanes
        if self.n_chunks * self.k_pad <= max(lanes, C.TUNING.step_flat_lanes):
            self.group, self.n_groups = 1, 1
            n_lists = self.n_chunks
        else:
            self.group = triton.next_power_of_2(triton.cdiv(self.n_chunks * self.k_pad, lanes))
            self.n_groups = triton.cdiv(self.n_chunks, self.group)
            n_lists = self.n_groups
        self.l_pad = triton.next_power_of_2(n_lists)
        dev = q.device
        self.cs = C._empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.float32)
        self.ci = C._empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.int32)
        ng = self.n_groups if self.group > 1 else 1
        self.gs = C._empty((B * hkv, ng, self.k_pad), device=dev, dtype=torch.float32)
        self.gi = C._empty((B * hkv, ng, self.k_pad), device=dev, dtype=torch.int32)
        self.sc = C._empty((B * hkv, self.n_chunks * self.tiles * self.sub_n), device=dev, dtype=torch.float32)  # re-layout
        self.gcount = _counter(dev, B * hkv * ng, "s3_group")
        self.flag = _counter(dev, B * hkv, "s3_flag")
        self.dcount = _counter(dev, B * hkv, "s3_dcount")
        self.g_pad = triton.next_power_of_2(self.G)
        self.idx = C._empty((B, hkv, top_k), device=dev, dtype=torch.int32)
        self.part_o = C._empty((B * hkv, top_k, self.g_pad, D), device=dev, dtype=torch.float32)
        self.part_lse = C._empty((B * hkv, top_k, self.g_pad), device=dev, dtype=torch.float32)
        self.out = C._empty((B, q.shape[1], D), device=dev, dtype=q.dtype)
        self.grid = (B * hkv * (self.n_chunks + top_k),)
        self.constexprs = dict(
            G=self.G, TOP_K=top_k, K_PAD=self.k_pad, BLOCK_SIZE=block_size, SUB_N=self.sub_n,
            BLOCK_D=triton.next_power_of_2(D), GROUP=self.group, L_PAD=self.l_pad,
            HAS_TOPK=_HAS_TOPK if C.TUNING.use_topk is None else C.TUNING.use_topk,
            G_PAD=self.g_pad, ROWS=max(16, self.g_pad), BLOCK_T=max(16, min(64, triton.next_power_of_2(block_size))),
            SPLIT_PAD=triton.next_power_of_2(top_k), FP32_DOT=_fp32_dot(q, k_cache), RANKED=bool(C.TUNING.step_ranked),
            JC_S=max(1, min(self.group * self.k_pad, 8192 // (self.group * self.k_pad))),
            JC_D=max(1, min(self.l_pad * self.k_pad, 8192 // (self.l_pad * self.k_pad))), TILES=self.tiles)


def _tiles_per_program(n_tiles: int, n_heads: int, k_pad: int) -> int:
    """Tiles per select program of the v3 step (n_tiles per (batch, KV head), n_heads = B·Hkv of them): 1, or the
    power of two that keeps the select programs at C.TUNING.step_select_programs or fewer -- only where the one-tile
    plan needs a group merge level and the persistent one does not, with at most C.TUNING.step_max_tiles tiles a
    program. From the H100 runs of round 5: 2-8 tiles a program that removed the group level paid at B=1 (mean
    scorer 512K-1M, minmax 128K-512K: 0.5-5 us); 16 or more tiles, a group level left (minmax, 1M), or programs
    that were fewer without removing a level (B=8: 128K-1M, +3-12 us) cost time. Pairwise-rank variant: always 1."""
    target = C.TUNING.step_select_programs
    lanes = max(C.TUNING.step_merge_lanes, C.TUNING.step_flat_lanes)
    if not target or n_tiles * k_pad <= lanes or C.TUNING.step_ranked:  # one list level already
        return 1
    tiles = triton.next_power_of_2(triton.cdiv(n_tiles * n_heads, int(target)))
    flat = triton.cdiv(n_tiles, tiles) * k_pad <= lanes
    return tiles if flat and 1 < tiles <= C.TUNING.step_max_tiles else 1


def _pdl_on(q: torch.Tensor) -> bool:
    """Whether the step launches with programmatic dependent launch: C.TUNING.step_pdl, a Hopper-or-later GPU,
    a Triton with grid dependency control, not the interpreter."""
    if not (C.TUNING.step_pdl and _HAS_GDC and q.is_cuda) or os.environ.get("TRITON_INTERPRET") == "1":
        return False
    return torch.cuda.get_device_capability(q.device)[0] >= 9


def _launch_step3(q, k_cache, v_cache, *, ksum, kmean, kmin, kmax, scorer, seq_lens, seq_len, k_new, pos, block_size,
                  top_k, sink_blocks, local_blocks, scale, exact, v_new=None, prefetch=False):
    """One launch of `_step3_kernel`. Summaries: scorer "minmax" reads kmin/kmax (fp32); "mean" reads kmean
    (low precision; with exact=True rescoring near-threshold blocks from ksum) or, without kmean, ksum.
    Lengths: seq_lens [B] tensor, or seq_len (one int for every row; no tensor needed). k_new [B, Hkv, 1, D]:
    fold the token at pos into ksum (and kmean, and kmin/kmax when given) first, as update_summaries would;
    None: summaries already current. v_new (with k_new): also write k_new / v_new into the caches at pos.
    On Hopper (_pdl_on) the launch may start while the previous kernel ends; prefetch: the summary tiles may be
    read before that kernel has ended (only if it does not write them)."""
    B, hkv, S, D = k_cache.shape
    minmax = scorer == "minmax"
    use_mean = kmean is not None and not minmax
    src = kmin if minmax else (kmean if use_mean else ksum)
    for t in (kmean if use_mean else None, kmin, kmax):
        if t is not None and t.stride() != ksum.stride():
            raise ValueError("kmean / kmin / kmax must share ksum's shape and strides")
    summary_bytes = 8 if minmax else src.element_size()
    plan = _Step3Plan(q, src, k_cache, top_k, block_size, summary_bytes)
    kn = k_new if k_new is not None else q.view(B, hkv, -1, D)  # placeholder pointer when not folding
    if v_new is not None and (k_new is None or v_new.shape != k_new.shape):
        raise ValueError("v_new needs k_new of the same shape")
    vn = v_new if v_new is not None else kn
    lens = seq_lens if seq_lens is not None else plan.flag
    n_sel = B * hkv * plan.n_chunks
    # step_launches: 1 = one launch; 2 = select launch + decode launch; 0 = the select launch alone (a
    # benchmark probe: it leaves the flags raised, so zero _counters afterwards)
    phases = {1: [(0, plan.grid)], 2: [(1, (n_sel,)), (2, (plan.grid[0] - n_sel,))], 0: [(1, (n_sel,))]}[C.TUNING.step_launches]
    pdl = _pdl_on(q)
    for phase, grid in phases:
        _launch_step3_phase(phase, grid, plan, q, src, kmin, kmax, ksum, lens, seq_lens, seq_len, kn, pos, sink_blocks,
                            local_blocks, k_cache, v_cache, hkv, S, D, scale, minmax, use_mean, k_new is not None,
                            exact, kmin is not None and k_new is not None, vn, v_new is not None, pdl, prefetch)
    return plan.out, plan.idx


def _launch_step3_phase(phase, grid, plan, q, src, kmin, kmax, ksum, lens, seq_lens, seq_len, kn, pos, sink_blocks,
                        local_blocks, k_cache, v_cache, hkv, S, D, scale, minmax, use_mean, fold, exact, fold_minmax,
                        vn, kv_write, pdl, prefetch):
    _step3_kernel[grid](
        q, *q.stride(),
        src, kmin if kmin is not None else src, kmax if kmax is not None else src, ksum, *ksum.stride(),
        lens, 0 if seq_lens is not None else int(seq_len), plan.cs, plan.ci, plan.gs, plan.gi, plan.sc, plan.gcount,
        plan.flag,
        kn, kn.stride(0), kn.stride(1), kn.stride(3), pos,
        vn, vn.stride(0), vn.stride(1), vn.stride(3),
        src.shape[2], plan.n_chunks, plan.n_groups, sink_blocks, local_blocks,
        k_cache, *k_cache.stride(),
        v_cache, *v_cache.stride(),
        plan.idx, *plan.idx.stride(),
        plan.part_o, plan.part_lse, plan.dcount,
        plan.out, *plan.out.stride(),
        hkv, S, D, scale * LOG2E,
        tm_ptr=C.TIMELINE if C.TIMELINE is not None else plan.flag, TIMING=C.TIMELINE is not None,
        MINMAX=minmax, HAS_MEAN=use_mean, FOLD=fold, EXACT=bool(exact and use_mean),
        LENS_SCALAR=seq_lens is None, PHASE=phase, FOLD_MINMAX=fold_minmax, **plan.constexprs,
        PDL=(1 if C.TUNING.step_pdl_trigger else 2) if pdl else 0, PREFETCH=bool(prefetch and pdl), KV_WRITE=kv_write,  # no PDL: one compiled variant
        num_warps=C.TUNING.step_warps, num_stages=1, **({"launch_pdl": True} if pdl else {}),
    )


# What select_and_decode accepts beyond round 5's arguments (the engine hooks ask before passing them; an earlier
# kernels module, e.g. a benchmark's baseline, has none). "kmean_fold" (round 7): the engine relies on k_new being
# folded into the bf16 means (and the fp32 sums, min/max) in the launch, with or without v_new (tested).
FEATURES = frozenset({"v_new", "prefetch", "kmean_fold"})


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


def decode_step(
    q: torch.Tensor,
    k_new: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    ksum: torch.Tensor,
    seq_lens: torch.Tensor,
    pos: int,
    block_size: int,
    top_k: int,
    sink_blocks: int = 1,
    local_blocks: int = 1,
    scale: float | None = None,
    *,
    kmean: torch.Tensor | None = None,
    fused: bool = True,
    prefetch: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole MSA decode step of one new token (mean scorer): fold k_new [B, Hkv, 1, D] (position pos,
    already written into the caches) into ksum (fp32) and kmean (optional, low-precision means), select,
    and attend. Returns (out [B, Hq, D], idx [B, Hkv, top_k]).

    Same result as update_summaries(ksum, None, None, k_new, pos, block_size, seq_lens=seq_lens,
    kmean=kmean); select_blocks(..., kmean=kmean); sparse_decode(...). fused=True does it in ONE launch
    (`_step3_kernel`: select programs publish per-chunk candidates, decode programs merge them and attend one
    selected block each; with kmean and TUNING.step_exact the selection equals that of the fp32 sums);
    fused=False in three. prefetch (on Hopper, where the launch may overlap the end of the previous kernel on the stream): the
    summaries may be read before that kernel ends -- pass True only when it does not write ksum / kmean."""
    B, hkv, S, D = k_cache.shape
    if k_new.shape != (B, hkv, 1, D):
        raise ValueError(f"k_new must be [B, Hkv, 1, D] = [{B}, {hkv}, 1, {D}]; got {tuple(k_new.shape)}")
    if ksum.shape[:2] != (B, hkv) or ksum.shape[3] != D or (kmean is not None and kmean.shape != ksum.shape):
        raise ValueError(f"ksum {tuple(ksum.shape)} / kmean do not match the cache {tuple(k_cache.shape)}")
    ref.check_select_args(top_k, sink_blocks, local_blocks, "mean", None, None)
    ref.check_group(q, hkv)
    if pos // block_size >= ksum.shape[2]:
        raise ValueError(f"position {pos} needs more than the {ksum.shape[2]} blocks ksum holds")
    _check_device(q, k_new, k_cache, v_cache, ksum, kmean, seq_lens)
    scale = D**-0.5 if scale is None else scale
    if fused:
        return _launch_step3(q, k_cache, v_cache, ksum=ksum, kmean=kmean, kmin=None, kmax=None, scorer="mean",
                             seq_lens=seq_lens, seq_len=None, k_new=k_new, pos=pos, block_size=block_size, top_k=top_k,
                             sink_blocks=sink_blocks, local_blocks=local_blocks, scale=scale, exact=C.TUNING.step_exact,
                             prefetch=prefetch)
    _launch_summary_update(ksum, None, None, k_new, pos, block_size, seq_lens, kmean)
    idx = _launch_select(q, ksum, None, None, seq_lens, block_size, top_k, sink_blocks, local_blocks, False, kmean)
    return _launch_sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale), idx


def select_and_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    ksum: torch.Tensor,
    seq_len: int | torch.Tensor,
    block_size: int,
    top_k: int,
    sink_blocks: int = 1,
    local_blocks: int = 1,
    scale: float | None = None,
    scorer: str = "mean",
    kmin: torch.Tensor | None = None,
    kmax: torch.Tensor | None = None,
    *,
    kmean: torch.Tensor | None = None,
    exact: bool | None = None,
    k_new: torch.Tensor | None = None,
    pos: int | None = None,
    v_new: torch.Tensor | None = None,
    prefetch: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """select_blocks + sparse_decode in ONE launch (the engine's decode). seq_len: one int for all rows (no
    tensor, nothing to copy to the GPU) or seq_lens [B]. scorer "mean" reads kmean when given (picks equal the
    fp32 sums' up to the means' rounding; exact=True, default C.TUNING.step_exact = off, rescores near-threshold
    blocks from ksum so that they equal exactly), else ksum; "minmax" reads kmin/kmax.
    Summaries: already holding every token, or, with k_new [B, Hkv, 1, D] (the key at position pos, already
    in k_cache), everything but that token, which the launch folds into ksum, kmin/kmax (when given) and kmean
    first -- the same values as update_summaries(ksum, kmin, kmax, k_new, pos, block_size, kmean=kmean).
    v_new [B, Hkv, 1, D] (with k_new): the token's key and value are not in the caches yet; the launch writes them
    at pos (k_cache[:, :, pos] = k_new, v_cache[:, :, pos] = v_new) before any program reads them: the step's
    cache write costs no launch of its own. prefetch: see decode_step (the summaries may be read while the
    previous kernel on the stream ends; only if that kernel does not write them).
    Returns (out [B, Hq, D] in q's dtype, idx int32 [B, Hkv, top_k] ascending, -1 padded)."""
    ref.check_cache(k_cache, v_cache)
    ref.check_select_args(top_k, sink_blocks, local_blocks, scorer, kmin, kmax)
    B, hkv, S, D = k_cache.shape
    ref.check_group(q, hkv)
    if q.shape[0] != B or q.shape[2] != D or ksum.shape[:2] != (B, hkv) or ksum.shape[3] != D:
        raise ValueError(f"q {tuple(q.shape)} / ksum {tuple(ksum.shape)} do not match the cache {tuple(k_cache.shape)}")
    if kmean is not None and kmean.shape != ksum.shape:
        raise ValueError(f"kmean {tuple(kmean.shape)} must have ksum's shape {tuple(ksum.shape)}")
    lens = seq_len if isinstance(seq_len, torch.Tensor) else None
    _check_device(q, k_cache, v_cache, ksum, kmin, kmax, kmean, lens, k_new)
    if k_new is not None:
        if k_new.shape != (B, hkv, 1, D) or pos is None:
            raise ValueError(f"k_new must be [B, Hkv, 1, D] = [{B}, {hkv}, 1, {D}] with its position pos")
        if pos // block_size >= ksum.shape[2]:
            raise ValueError(f"position {pos} needs more than the {ksum.shape[2]} blocks ksum holds")
    if v_new is not None:
        _check_device(q, v_new)
        if k_new is None or v_new.shape != k_new.shape or not 0 <= pos < S:
            raise ValueError("v_new needs k_new of its shape and a position inside the cache")
    return _launch_step3(q, k_cache, v_cache, ksum=ksum, kmean=kmean, kmin=kmin, kmax=kmax, scorer=scorer,
                         seq_lens=lens, seq_len=None if lens is not None else int(seq_len), k_new=k_new,
                         pos=0 if pos is None else int(pos),
                         block_size=block_size, top_k=top_k, sink_blocks=sink_blocks, local_blocks=local_blocks,
                         scale=D**-0.5 if scale is None else scale,
                         exact=C.TUNING.step_exact if exact is None else exact, v_new=v_new, prefetch=prefetch)
