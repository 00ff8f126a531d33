"""Triton stage 2, block selection: `select_blocks` and the select programs of the one-launch step (`_s3_program`).

`_select_kernel`: one program per (batch·KV head, chunk of blocks): group-summed scores of the chunk's block
summaries, sink/local forced, padding masked, moved to a plain 1-D layout through a scratch row (_plain_layout);
the K-th best score of the chunk (bitonic tl.topk, or a sort) is a threshold, and the blocks above it (ties: lower
id first) are compacted in id order by a prefix sum; the last program of each group of TUNING.merge_group chunks
merges the group's candidates the same way, the last group merger writes the global top-K, already in ascending
block order, -1 padded. `_s3_program`: the step's select program: it publishes its chunk's best K (score, id),
first folding the new token into the summaries (and writing its key/value into the cache) where it owns them."""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from . import naive as ref
from . import triton_common as C
from .triton_common import _EXACT_TOL, _HAS_TOPK, _check_device, _chunk_plan, _counter, _group_query, _kth_largest, _pdl_wait, _plain_layout, _ranks, _ranks_mem, _seq_len_of, _stamp, _store_top, _write_selection


@triton.jit
def _quest_scores(kmin, kmax, q_base, sq_h, sq_d, offs_d, dmask, G: tl.constexpr, BLOCK_D: tl.constexpr):
    """Group-summed minmax (Quest) scores of a [N, BLOCK_D] pair of kmin/kmax tiles: sum over the group's heads
    g and dims d of max(kmin_d q_gd, kmax_d q_gd) = kmax_d q_gd (q_gd >= 0) or kmin_d q_gd (q_gd < 0), summed
    as kmax . sum_g max(q_g, 0) + kmin . sum_g min(q_g, 0): two products per element and one reduction
    instead of G of each (the same terms, summed in another order)."""
    q_pos, q_neg = _group_query(q_base, sq_h, sq_d, offs_d, dmask, G, BLOCK_D, True)
    return tl.sum(kmax * q_pos[None, :] + kmin * q_neg[None, :], axis=1)


@triton.jit
def _sub_scores(q_base, sq_h, sq_d, sum_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, offs_n, nmask, seq_len, D,
                fold_row, fold_blk,
                G: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_D: tl.constexpr, MINMAX: tl.constexpr,
                HAS_MEAN: tl.constexpr, FOLD: tl.constexpr):
    """Group-summed scores [SUB_N] of the blocks offs_n; the whole [SUB_N, D] summary tile in one load.
    sum_ptr holds block sums (divided by the block's token count here) or, with HAS_MEAN, block means.
    With FOLD the row of block fold_blk is replaced by fold_row (the summary just updated in registers)."""
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    m2 = nmask[:, None] & dmask[None, :]
    s_off = s_row + offs_n.to(tl.int64)[:, None] * ss_n + offs_d[None, :] * ss_d
    if MINMAX:
        kmin = tl.load(min_ptr + s_off, mask=m2, other=0.0).to(tl.float32)
        kmax = tl.load(max_ptr + s_off, mask=m2, other=0.0).to(tl.float32)
        score = _quest_scores(kmin, kmax, q_base, sq_h, sq_d, offs_d, dmask, G, BLOCK_D)
    else:
        ks = tl.load(sum_ptr + s_off, mask=m2, other=0.0).to(tl.float32)
        if FOLD:
            ks = tl.where(offs_n[:, None] == fold_blk, fold_row[None, :], ks)
        qsum = tl.zeros([BLOCK_D], dtype=tl.float32)
        for g in tl.static_range(G):
            qsum += tl.load(q_base + g * sq_h + offs_d * sq_d, mask=dmask, other=0.0).to(tl.float32)
        score = tl.sum(ks * qsum[None, :], axis=1)
        if not HAS_MEAN:
            count = tl.minimum(tl.maximum(seq_len - offs_n * BLOCK_SIZE, 1), BLOCK_SIZE)
            score = score / count.to(tl.float32)
    return score


@triton.jit
def _fold_token(kn_ptr, skn_b, skn_h, skn_d, sum_ptr, mean_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, b, h, pos,
                seq_len, c0, D, SUB_N: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_D: tl.constexpr,
                HAS_MEAN: tl.constexpr, HAS_MINMAX: tl.constexpr):
    """Fold the one new key (position pos) into its block's fp32 sum (and low-precision mean, and fp32 min/max
    with HAS_MINMAX: the same values as update_summaries of that one token); only the program whose chunk
    [c0, c0 + SUB_N) holds that block stores. Returns (row, fp32 sum, min, max, block): row = the updated summary
    as the mean scorer reads it (mean with HAS_MEAN, else sum), for the tile substitution."""
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    blk = pos // BLOCK_SIZE
    own = ((blk >= c0) & (blk < c0 + SUB_N) & (pos < seq_len)).to(tl.int32)  # int: scalar masks stay portable
    k_new = tl.load(kn_ptr + b.to(tl.int64) * skn_b + h.to(tl.int64) * skn_h + offs_d * skn_d,
                    mask=dmask, other=0.0).to(tl.float32)
    r_off = s_row + blk.to(tl.int64) * ss_n + offs_d * ss_d
    cont = ((pos % BLOCK_SIZE) != 0).to(tl.int32)  # the block already holds tokens (else it starts afresh)
    st_mask = dmask & (own + tl.zeros([BLOCK_D], dtype=tl.int32) != 0)
    old_mask = st_mask & (cont + tl.zeros([BLOCK_D], dtype=tl.int32) != 0)
    old = tl.load(sum_ptr + r_off, mask=old_mask, other=0.0).to(tl.float32)
    new_sum = old + k_new
    tl.store(sum_ptr + r_off, new_sum.to(sum_ptr.dtype.element_ty), mask=st_mask)
    if HAS_MINMAX:
        new_min = tl.minimum(tl.load(min_ptr + r_off, mask=old_mask, other=float("inf")).to(tl.float32), k_new)
        new_max = tl.maximum(tl.load(max_ptr + r_off, mask=old_mask, other=float("-inf")).to(tl.float32), k_new)
        tl.store(min_ptr + r_off, new_min.to(min_ptr.dtype.element_ty), mask=st_mask)
        tl.store(max_ptr + r_off, new_max.to(max_ptr.dtype.element_ty), mask=st_mask)
    else:
        new_min = new_sum
        new_max = new_sum
    row = new_sum
    if HAS_MEAN:
        row = new_sum / ((pos % BLOCK_SIZE) + 1).to(tl.float32)
        tl.store(mean_ptr + r_off, row.to(mean_ptr.dtype.element_ty), mask=st_mask)
        row = row.to(mean_ptr.dtype.element_ty).to(tl.float32)  # score what later steps will read
    return row, new_sum, new_min, new_max, tl.where(own != 0, blk, -1)


@triton.jit
def _select_program(
    pid_bh, chunk,
    q_ptr, sq_b, sq_h, sq_d,
    src_ptr, min_ptr, max_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, count_ptr,
    out_ptr, so_b, so_h, so_k,
    kn_ptr, skn_b, skn_h, skn_d, sum_ptr, pos, flag_ptr,
    HKV, NB, D, n_chunks, sink_blocks, local_blocks,
    G: tl.constexpr, TOP_K: tl.constexpr, K_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    SUB_N: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr, NG_PAD: tl.constexpr,
    MINMAX: tl.constexpr, HAS_TOPK: tl.constexpr, HAS_MEAN: tl.constexpr, FOLD: tl.constexpr,
    SIGNAL: tl.constexpr,
):
    """One select program: (batch·KV head pid_bh, chunk of SUB_N blocks). src_ptr holds the summaries the
    scorer reads (fp32 sums, or means with HAS_MEAN). FOLD: first fold the new token at `pos` into
    sum_ptr (fp32 sums) and src_ptr (means). SIGNAL: the program that writes idx then raises
    flag_ptr[pid_bh] (release), for decode programs of the same launch waiting on it."""
    b = pid_bh // HKV
    h = pid_bh % HKV
    seq_len = tl.load(lens_ptr + b).to(tl.int32)
    n_valid = (seq_len + BLOCK_SIZE - 1) // BLOCK_SIZE
    q_base = q_ptr + b.to(tl.int64) * sq_b + (h * G).to(tl.int64) * sq_h
    s_row = b.to(tl.int64) * ss_b + h.to(tl.int64) * ss_h

    # 1. scores of the chunk's SUB_N blocks (one tile load); sink/local forced (+inf), blocks past
    #    seq_len dropped (-inf); the chunk's best TOP_K kept as (score, id) in ascending id order
    offs_n = chunk * SUB_N + tl.arange(0, SUB_N)
    nmask = offs_n < NB
    if FOLD:
        fold_row, _, _, _, fold_blk = _fold_token(kn_ptr, skn_b, skn_h, skn_d, sum_ptr, src_ptr, src_ptr, src_ptr, s_row,
                                                  ss_n, ss_d, b, h, pos, seq_len, chunk * SUB_N, D, SUB_N, BLOCK_SIZE,
                                                  BLOCK_D, HAS_MEAN, False)
    else:
        fold_row = tl.zeros([BLOCK_D], dtype=tl.float32)
        fold_blk = -1
    score = _sub_scores(q_base, sq_h, sq_d, src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, offs_n, nmask,
                        seq_len, D, fold_row, fold_blk, G, BLOCK_SIZE, BLOCK_D, MINMAX, HAS_MEAN, FOLD)
    valid = offs_n < n_valid
    forced = valid & ((offs_n < sink_blocks) | (offs_n >= n_valid - local_blocks))
    score = tl.where(forced, float("inf"), tl.where(valid, score, float("-inf")))
    score = _plain_layout(score, sc_ptr + (pid_bh.to(tl.int64) * n_chunks + chunk) * SUB_N, SUB_N)
    c_off = (pid_bh.to(tl.int64) * n_chunks + chunk) * K_PAD
    _store_top(score, chunk * SUB_N + tl.arange(0, SUB_N), cs_ptr + c_off, ci_ptr + c_off, TOP_K, K_PAD, HAS_TOPK)

    # 2. two-level merge without another launch: the last program to finish in a group of GROUP
    #    chunks merges the group's candidates; the last group merger merges the groups and writes
    #    idx. Candidates stay in ascending block order at every level, so no final sort is needed.
    group = chunk // GROUP
    n_groups = (n_chunks + GROUP - 1) // GROUP
    members = tl.minimum(n_chunks - group * GROUP, GROUP)
    cnt_base = count_ptr + pid_bh.to(tl.int64) * (n_groups + 1)
    o_base = out_ptr + b.to(tl.int64) * so_b + h.to(tl.int64) * so_h
    tl.debug_barrier()
    done = tl.atomic_add(cnt_base + 1 + group, 1, sem="acq_rel")
    if done == members - 1:
        lanes1 = tl.arange(0, GROUP * K_PAD)
        g_off = (pid_bh.to(tl.int64) * n_chunks + group * GROUP) * K_PAD
        m1 = lanes1 < members * K_PAD
        sc = tl.load(cs_ptr + g_off + lanes1, mask=m1, other=float("-inf"), cache_modifier=".cg")
        ic = tl.load(ci_ptr + g_off + lanes1, mask=m1, other=0, cache_modifier=".cg")
        tl.store(cnt_base + 1 + group, 0)  # ready for the next call (and CUDA-graph replays)
        if NG_PAD == 1:  # one group: its merger writes the answer
            _write_selection(sc, ic, o_base, so_k, TOP_K, K_PAD, HAS_TOPK)
            if SIGNAL:
                tl.debug_barrier()
                tl.atomic_xchg(flag_ptr + pid_bh, 1, sem="release")
        else:
            gg = (pid_bh.to(tl.int64) * n_groups + group) * K_PAD
            _store_top(sc, ic, gs_ptr + gg, gi_ptr + gg, TOP_K, K_PAD, HAS_TOPK)
            tl.debug_barrier()
            done2 = tl.atomic_add(cnt_base, 1, sem="acq_rel")
            if done2 == n_groups - 1:
                lanes2 = tl.arange(0, NG_PAD * K_PAD)
                m2 = lanes2 < n_groups * K_PAD
                base2 = pid_bh.to(tl.int64) * n_groups * K_PAD
                sg = tl.load(gs_ptr + base2 + lanes2, mask=m2, other=float("-inf"), cache_modifier=".cg")
                ig = tl.load(gi_ptr + base2 + lanes2, mask=m2, other=0, cache_modifier=".cg")
                _write_selection(sg, ig, o_base, so_k, TOP_K, K_PAD, HAS_TOPK)
                tl.store(cnt_base, 0)
                if SIGNAL:
                    tl.debug_barrier()
                    tl.atomic_xchg(flag_ptr + pid_bh, 1, sem="release")


@triton.jit
def _select_kernel(
    q_ptr, sq_b, sq_h, sq_d,
    sum_ptr, min_ptr, max_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, count_ptr,
    out_ptr, so_b, so_h, so_k,
    HKV, NB, D, n_chunks, sink_blocks, local_blocks,
    G: tl.constexpr, TOP_K: tl.constexpr, K_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    SUB_N: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr, NG_PAD: tl.constexpr,
    MINMAX: tl.constexpr, HAS_TOPK: tl.constexpr, HAS_MEAN: tl.constexpr,
):
    _select_program(
        tl.program_id(0), tl.program_id(1),
        q_ptr, sq_b, sq_h, sq_d, sum_ptr, min_ptr, max_ptr, ss_b, ss_h, ss_n, ss_d,
        lens_ptr, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, count_ptr, out_ptr, so_b, so_h, so_k,
        q_ptr, 0, 0, 0, sum_ptr, 0, count_ptr,
        HKV, NB, D, n_chunks, sink_blocks, local_blocks,
        G, TOP_K, K_PAD, BLOCK_SIZE, SUB_N, BLOCK_D, GROUP, NG_PAD, MINMAX, HAS_TOPK, HAS_MEAN, False, False,
    )


@triton.jit
def _tile_load(src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, offs_n, n_valid, sink_blocks, local_blocks, D,
               BLOCK_D: tl.constexpr, MINMAX: tl.constexpr, F32: tl.constexpr):
    """The summary tile(s) [SUB_N, BLOCK_D] of the blocks offs_n that a score needs: (kmin, kmax) with MINMAX, else
    (src, src); in fp32 with F32, else in their stored dtype (a prefetched tile: half the registers for bf16 means).
    Forced blocks and blocks past n_valid read no bytes (0)."""
    offs_d = tl.arange(0, BLOCK_D)
    valid = offs_n < n_valid
    forced = valid & ((offs_n < sink_blocks) | (offs_n >= n_valid - local_blocks))
    m2 = (valid & ~forced)[:, None] & (offs_d < D)[None, :]
    s_off = s_row + offs_n.to(tl.int64)[:, None] * ss_n + offs_d[None, :] * ss_d
    if MINMAX:
        ta = tl.load(min_ptr + s_off, mask=m2, other=0.0)
        tb = tl.load(max_ptr + s_off, mask=m2, other=0.0)
    else:
        ta = tl.load(src_ptr + s_off, mask=m2, other=0.0)
        tb = ta
    if F32:
        ta = ta.to(tl.float32)
        tb = tb.to(tl.float32)
    return ta, tb


@triton.jit
def _fold_rows(kn_ptr, skn_b, skn_h, skn_d, exact_ptr, src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, b, h, pos,
               seq_len, c0, D, N: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_D: tl.constexpr,
               MINMAX: tl.constexpr, HAS_MEAN: tl.constexpr, FOLD_MINMAX: tl.constexpr):
    """_fold_token for the blocks [c0, c0 + N) of a select program, for its scorer: returns (row, fp32 sum, min,
    max, block) -- row = what the mean scorer reads; block = -1 if the token is not in the range."""
    return _fold_token(kn_ptr, skn_b, skn_h, skn_d, exact_ptr, src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, b, h, pos,
                       seq_len, c0, D, N, BLOCK_SIZE, BLOCK_D, HAS_MEAN and not MINMAX, MINMAX or FOLD_MINMAX)


@triton.jit
def _tile_scores(ta, tb, qa, qb, exact_ptr, s_row, ss_n, ss_d, offs_n, seq_len, n_valid,
                 sink_blocks, local_blocks, D, fold_row, fold_sum, fold_min, fold_max, fold_blk,
                 TOP_K: tl.constexpr, K_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                 BLOCK_D: tl.constexpr, MINMAX: tl.constexpr, HAS_MEAN: tl.constexpr, FOLD: tl.constexpr,
                 EXACT: tl.constexpr, HAS_TOPK: tl.constexpr, RANKED: tl.constexpr):
    """Final scores [SUB_N] of the blocks offs_n from their loaded tile(s) (ta, tb) = _tile_load's and the group's
    query terms (qa, qb) = _group_query's (loaded before the tile and the fold: a load issued after the fold's
    store waits for it; at B=8 that cost 2-11 us in round 5's first runs): forced blocks
    +inf, blocks past seq_len -inf (never read). MINMAX: Quest bound from fp32 kmin/kmax. Else the mean scorer,
    from fp32 sums (divided by the block's tokens) or, with HAS_MEAN, low-precision means. EXACT (with HAS_MEAN):
    the means only bound the scores (|error| <= tol); every block that can still be in the tile's exact top-K (its
    upper bound >= the K-th best lower bound) is rescored from its fp32 sum in exact_ptr, the rest drop out, so the
    tile's picks equal those of the fp32 sums. FOLD: the row of block fold_blk (if in the tile) is replaced by the
    folded one (_fold_rows) in registers."""
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    valid = offs_n < n_valid
    forced = valid & ((offs_n < sink_blocks) | (offs_n >= n_valid - local_blocks))
    count = tl.minimum(tl.maximum(seq_len - offs_n * BLOCK_SIZE, 1), BLOCK_SIZE).to(tl.float32)
    if MINMAX:
        kmin = ta.to(tl.float32)
        kmax = tb.to(tl.float32)
        if FOLD:
            kmin = tl.where(offs_n[:, None] == fold_blk, fold_min[None, :], kmin)
            kmax = tl.where(offs_n[:, None] == fold_blk, fold_max[None, :], kmax)
        score = tl.sum(kmax * qa[None, :] + kmin * qb[None, :], axis=1)
    else:
        qsum = qa
        ks = ta.to(tl.float32)
        if FOLD:
            ks = tl.where(offs_n[:, None] == fold_blk, fold_row[None, :], ks)
        score = tl.sum(ks * qsum[None, :], axis=1)
        if HAS_MEAN:
            if EXACT:
                tol = _EXACT_TOL * tl.sum(tl.abs(ks) * tl.abs(qsum)[None, :], axis=1)
                lo = tl.where(forced, float("inf"), tl.where(valid, score - tol, float("-inf")))
                hi = tl.where(forced, float("inf"), tl.where(valid, score + tol, float("-inf")))
                if RANKED:
                    thr = tl.max(tl.where(_ranks(lo, offs_n) == TOP_K - 1, lo, float("-inf")), axis=0)
                else:
                    thr = _kth_largest(lo, TOP_K, K_PAD, HAS_TOPK)
                cand = valid & ~forced & (hi >= thr)
                s_off = s_row + offs_n.to(tl.int64)[:, None] * ss_n + offs_d[None, :] * ss_d
                ex = tl.load(exact_ptr + s_off, mask=cand[:, None] & dmask[None, :], other=0.0)
                if FOLD:
                    ex = tl.where(offs_n[:, None] == fold_blk, fold_sum[None, :], ex)
                score = tl.where(cand, tl.sum(ex * qsum[None, :], axis=1) / count, float("-inf"))
        else:
            score = score / count
    return tl.where(forced, float("inf"), tl.where(valid, score, float("-inf")))


@triton.jit
def _write_token_kv(kn_ptr, skn_b, skn_h, skn_d, vn_ptr, svn_b, svn_h, svn_d, k_ptr, sk_b, sk_h, sk_s, sk_d,
                    v_ptr, sv_b, sv_h, sv_s, sv_d, b, h, pos, own, offs_d, D):
    """The new token's key / value rows (kn / vn [B, Hkv, 1, D]) stored into the caches at position pos, by the one
    program that owns the token (own): the cache write of the step, folded into its launch."""
    m = (offs_d < D) & ((own.to(tl.int32) + tl.zeros_like(offs_d)) != 0)
    b64, h64 = b.to(tl.int64), h.to(tl.int64)
    kn = tl.load(kn_ptr + b64 * skn_b + h64 * skn_h + offs_d * skn_d, mask=m, other=0.0)
    vn = tl.load(vn_ptr + b64 * svn_b + h64 * svn_h + offs_d * svn_d, mask=m, other=0.0)
    p64 = tl.zeros_like(offs_d).to(tl.int64) + pos
    tl.store(k_ptr + b64 * sk_b + h64 * sk_h + p64 * sk_s + offs_d * sk_d, kn.to(k_ptr.dtype.element_ty), mask=m)
    tl.store(v_ptr + b64 * sv_b + h64 * sv_h + p64 * sv_s + offs_d * sv_d, vn.to(v_ptr.dtype.element_ty), mask=m)


@triton.jit
def _s3_program(
    pid_bh, chunk,
    q_ptr, sq_b, sq_h, sq_d,
    src_ptr, min_ptr, max_ptr, sum_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr, seq_len_arg, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, gcount_ptr, flag_ptr,
    kn_ptr, skn_b, skn_h, skn_d, pos,
    vn_ptr, svn_b, svn_h, svn_d, k_ptr, sk_b, sk_h, sk_s, sk_d, v_ptr, sv_b, sv_h, sv_s, sv_d,
    HKV, D, NB, n_chunks, n_groups, sink_blocks, local_blocks,
    G: tl.constexpr, TOP_K: tl.constexpr, K_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr, SUB_N: tl.constexpr,
    BLOCK_D: tl.constexpr, GROUP: tl.constexpr, MINMAX: tl.constexpr, HAS_MEAN: tl.constexpr, FOLD: tl.constexpr,
    EXACT: tl.constexpr, HAS_TOPK: tl.constexpr, LENS_SCALAR: tl.constexpr, RANKED: tl.constexpr, JC: tl.constexpr,
    FOLD_MINMAX: tl.constexpr, TILES: tl.constexpr, PDL: tl.constexpr, PREFETCH: tl.constexpr, KV_WRITE: tl.constexpr,
    tm_ptr, TIMING: tl.constexpr,
):
    """Select program of the v3 step: (batch·KV head, chunk = TILES tiles of SUB_N blocks) -> the chunk's best K
    (score, id), ascending ids, published in cs/ci; with GROUP > 1 the last of GROUP chunks to finish merges them
    into gs/gi. Each published list raises flag[pid_bh] by one (release); the decode programs merge the lists.
    TILES > 1 (persistent style, for long contexts): the program loops over its tiles with the next tile's load
    in flight while the current one is scored; the scores go to the program's scratch row, and one top-K over
    all of them (plain layout, id order) gives the chunk's list.
    PDL: the launch may start before the previous kernel ends (_pdl_wait); with PREFETCH the first tile's load is
    issued before that wait (the caller vouches that the previous kernel does not write the summaries; the
    blocks are bounded by NB when the lengths are a tensor, which the previous kernel may write). KV_WRITE (with
    FOLD): the program owning the token's block also writes its key and value (vn_ptr) into the caches at pos
    (before it publishes, so the decode programs see them). TIMING: stamps (_stamp) at entry (0), scores in the plain
    layout (1), list stored (2), list published (3)."""
    _stamp(tm_ptr, 0, pid_bh, TIMING)
    b = pid_bh // HKV
    h = pid_bh % HKV
    s_row = b.to(tl.int64) * ss_b + h.to(tl.int64) * ss_h
    prog = pid_bh.to(tl.int64) * n_chunks + chunk
    c0 = chunk * (TILES * SUB_N)
    offs_n = c0 + tl.arange(0, SUB_N)
    offs_d = tl.arange(0, BLOCK_D)
    q_base = q_ptr + b.to(tl.int64) * sq_b + (h * G).to(tl.int64) * sq_h
    if PDL != 0 and PREFETCH:  # the first tile's load in flight across the wait for the previous kernel
        if LENS_SCALAR:
            n_pre = (seq_len_arg + BLOCK_SIZE - 1) // BLOCK_SIZE
        else:
            n_pre = NB
        ta, tb = _tile_load(src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, offs_n, n_pre, sink_blocks, local_blocks, D,
                            BLOCK_D, MINMAX, TILES == 1)
        _pdl_wait(PDL != 0, PDL == 1)
        seq_len = _seq_len_of(lens_ptr, b, seq_len_arg, LENS_SCALAR)
        n_valid = (seq_len + BLOCK_SIZE - 1) // BLOCK_SIZE
        qa, qb = _group_query(q_base, sq_h, sq_d, offs_d, offs_d < D, G, BLOCK_D, MINMAX)
    else:
        _pdl_wait(PDL != 0, PDL == 1)
        seq_len = _seq_len_of(lens_ptr, b, seq_len_arg, LENS_SCALAR)
        n_valid = (seq_len + BLOCK_SIZE - 1) // BLOCK_SIZE
        qa, qb = _group_query(q_base, sq_h, sq_d, offs_d, offs_d < D, G, BLOCK_D, MINMAX)
        ta, tb = _tile_load(src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, offs_n, n_valid, sink_blocks, local_blocks, D,
                            BLOCK_D, MINMAX, TILES == 1)
    if FOLD:  # after the first tile's load is issued (the fold's store would otherwise hold that load back)
        f_row, f_sum, f_min, f_max, f_blk = _fold_rows(kn_ptr, skn_b, skn_h, skn_d, sum_ptr, src_ptr, min_ptr, max_ptr,
                                                       s_row, ss_n, ss_d, b, h, pos, seq_len, c0, D, TILES * SUB_N,
                                                       BLOCK_SIZE, BLOCK_D, MINMAX, HAS_MEAN, FOLD_MINMAX)
        if KV_WRITE:
            _write_token_kv(kn_ptr, skn_b, skn_h, skn_d, vn_ptr, svn_b, svn_h, svn_d, k_ptr, sk_b, sk_h, sk_s, sk_d,
                            v_ptr, sv_b, sv_h, sv_s, sv_d, b, h, pos, f_blk >= 0, offs_d, D)
    else:
        f_row = tl.zeros([BLOCK_D], dtype=tl.float32)
        f_sum, f_min, f_max, f_blk = f_row, f_row, f_row, -1
    c_off = prog * K_PAD
    if TILES == 1:
        score = _tile_scores(ta, tb, qa, qb, sum_ptr, s_row, ss_n, ss_d, offs_n, seq_len, n_valid,
                             sink_blocks, local_blocks, D, f_row, f_sum, f_min, f_max, f_blk, TOP_K, K_PAD,
                             BLOCK_SIZE, BLOCK_D, MINMAX, HAS_MEAN, FOLD, EXACT, HAS_TOPK, RANKED)
        score = _plain_layout(score, sc_ptr + prog * SUB_N, SUB_N)
        _stamp(tm_ptr, 1, chunk, TIMING)
        if RANKED:  # the chunk's K_PAD best, each at its rank (ranks are distinct: every slot written)
            rank = _ranks(score, offs_n)
            tl.store(cs_ptr + c_off + rank, score, mask=rank < K_PAD)
            tl.store(ci_ptr + c_off + rank, offs_n, mask=rank < K_PAD)
        else:
            _store_top(score, offs_n, cs_ptr + c_off, ci_ptr + c_off, TOP_K, K_PAD, HAS_TOPK)
    else:
        n_t = tl.minimum(TILES, (n_valid - c0 + SUB_N - 1) // SUB_N)  # tiles holding valid blocks
        sc_row = sc_ptr + prog * (TILES * SUB_N)
        for t in range(0, n_t):
            offs_n = c0 + t * SUB_N + tl.arange(0, SUB_N)
            na, nb = _tile_load(src_ptr, min_ptr, max_ptr, s_row, ss_n, ss_d, offs_n + SUB_N,
                                tl.where(t + 1 < n_t, n_valid, 0), sink_blocks, local_blocks, D, BLOCK_D, MINMAX, False)
            score = _tile_scores(ta, tb, qa, qb, sum_ptr, s_row, ss_n, ss_d, offs_n, seq_len, n_valid,
                                 sink_blocks, local_blocks, D, f_row, f_sum, f_min, f_max, f_blk, TOP_K, K_PAD,
                                 BLOCK_SIZE, BLOCK_D, MINMAX, HAS_MEAN, FOLD, EXACT, HAS_TOPK, RANKED)
            tl.store(sc_row + t * SUB_N + tl.arange(0, SUB_N), score)
            ta, tb = na, nb
        tl.debug_barrier()
        t_lanes = tl.arange(0, TILES * SUB_N)
        score = tl.load(sc_row + t_lanes, mask=t_lanes < n_t * SUB_N, other=float("-inf"))
        _stamp(tm_ptr, 1, chunk, TIMING)
        _store_top(score, c0 + t_lanes, cs_ptr + c_off, ci_ptr + c_off, TOP_K, K_PAD, HAS_TOPK)
    tl.debug_barrier()
    _stamp(tm_ptr, 2, chunk, TIMING)
    if GROUP > 1:
        group = chunk // GROUP
        members = tl.minimum(n_chunks - group * GROUP, GROUP)
        cnt = gcount_ptr + pid_bh.to(tl.int64) * n_groups + group
        done = tl.atomic_add(cnt, 1, sem="acq_rel")
        if done == members - 1:
            g_off = (pid_bh.to(tl.int64) * n_chunks + group * GROUP) * K_PAD
            gg = (pid_bh.to(tl.int64) * n_groups + group) * K_PAD
            tl.store(cnt, 0)  # ready for the next launch / graph replay
            if RANKED:
                sc, ic, rk = _ranks_mem(cs_ptr + g_off, ci_ptr + g_off, members * K_PAD, GROUP * K_PAD, JC)
                tl.store(gs_ptr + gg + rk, sc, mask=rk < K_PAD)
                tl.store(gi_ptr + gg + rk, ic, mask=rk < K_PAD)
            else:
                lanes = tl.arange(0, GROUP * K_PAD)
                lm = lanes < members * K_PAD
                sc = tl.load(cs_ptr + g_off + lanes, mask=lm, other=float("-inf"), cache_modifier=".cg")
                ic = tl.load(ci_ptr + g_off + lanes, mask=lm, other=0, cache_modifier=".cg")
                _store_top(sc, ic, gs_ptr + gg, gi_ptr + gg, TOP_K, K_PAD, HAS_TOPK)
            tl.debug_barrier()
            old = tl.atomic_add(flag_ptr + pid_bh, 1, sem="release")
            _stamp(tm_ptr, 3, old, TIMING)
        else:
            _stamp(tm_ptr, 3, done, TIMING)
    else:
        old = tl.atomic_add(flag_ptr + pid_bh, 1, sem="release")
        _stamp(tm_ptr, 3, old, TIMING)


class _SelectPlan:
    """Scratch buffers and compile-time parameters of one select launch."""

    def __init__(self, q, src, top_k):
        B, hkv, nb, D = src.shape
        self.G = q.shape[1] // hkv
        self.k_pad = max(2, triton.next_power_of_2(top_k))
        sub_n, _ = _chunk_plan(nb, D, src.element_size())
        self.sub_n = max(sub_n, self.k_pad)
        self.n_chunks = triton.cdiv(nb, self.sub_n)
        # chunks merged per group (first merge level); no wider than the chunks there are (fewer lanes to rank)
        self.group = min(C.TUNING.merge_group, max(2, triton.next_power_of_2(self.n_chunks)))
        self.n_groups = triton.cdiv(self.n_chunks, self.group)
        dev = q.device
        self.cs = C._empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.float32)
        self.ci = C._empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.int32)
        self.gs = C._empty((B * hkv, self.n_groups, self.k_pad), device=dev, dtype=torch.float32)
        self.gi = C._empty((B * hkv, self.n_groups, self.k_pad), device=dev, dtype=torch.int32)
        self.sc = C._empty((B * hkv, self.n_chunks * self.sub_n), device=dev, dtype=torch.float32)  # scores' re-layout
        self.count = _counter(dev, B * hkv * (self.n_groups + 1), "select")
        self.idx = C._empty((B, hkv, top_k), device=dev, dtype=torch.int32)

    def constexprs(self, top_k, block_size, D):
        return dict(G=self.G, TOP_K=top_k, K_PAD=self.k_pad, BLOCK_SIZE=block_size, SUB_N=self.sub_n,
                    BLOCK_D=triton.next_power_of_2(D), GROUP=self.group, NG_PAD=triton.next_power_of_2(self.n_groups),
                    HAS_TOPK=_HAS_TOPK if C.TUNING.use_topk is None else C.TUNING.use_topk)

    def warps(self):
        return C.TUNING.select_warps if self.sub_n <= 64 else C.TUNING.select_warps_big


def _launch_select(q, ksum, kmin, kmax, seq_lens, block_size, top_k, sink_blocks, local_blocks, minmax, kmean=None):
    B, hkv, nb, D = ksum.shape
    use_mean = kmean is not None and not minmax
    src = kmean if use_mean else ksum
    plan = _SelectPlan(q, src, top_k)
    if minmax and (kmin.stride() != ksum.stride() or kmax.stride() != ksum.stride()):
        raise ValueError("kmin/kmax must share ksum's strides")
    src_min, src_max = (kmin, kmax) if minmax else (src, src)
    _select_kernel[(B * hkv, plan.n_chunks)](
        q, *q.stride(),
        src, src_min, src_max, *src.stride(),
        seq_lens, plan.cs, plan.ci, plan.gs, plan.gi, plan.sc, plan.count,
        plan.idx, *plan.idx.stride(),
        hkv, nb, D, plan.n_chunks, sink_blocks, local_blocks,
        MINMAX=minmax, HAS_MEAN=use_mean, **plan.constexprs(top_k, block_size, D),
        num_warps=plan.warps(),
    )
    return plan.idx


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
    *,
    kmean: torch.Tensor | None = None,
) -> torch.Tensor:
    """q [B, Hq, D], ksum [B, Hkv, NB_cap, D], seq_lens [B] -> idx int32 [B, Hkv, top_k]: each KV group's
    top-K blocks by group-summed score, sink/local forced, blocks past seq_len excluded, ascending,
    -1 padded. One launch; scans all NB_cap blocks (no sync). With kmean (block means kept by
    update_summaries(kmean=...), e.g. bf16) the mean scorer reads those instead of the fp32 sums:
    half the bytes; scores then differ from the reference by the rounding of the means, so picks may
    differ in near ties (see `mean_score_tolerance`)."""
    ref.check_select_args(top_k, sink_blocks, local_blocks, scorer, kmin, kmax)
    ref.check_group(q, ksum.shape[1])
    if q.shape[0] != ksum.shape[0] or q.shape[2] != ksum.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} does not match ksum {tuple(ksum.shape)}")
    _check_device(q, ksum, seq_lens, kmin, kmax, kmean)
    if kmean is not None and kmean.shape != ksum.shape:
        raise ValueError(f"kmean {tuple(kmean.shape)} must have ksum's shape {tuple(ksum.shape)}")
    return _launch_select(q, ksum, kmin, kmax, seq_lens, block_size, top_k, sink_blocks, local_blocks, scorer == "minmax", kmean)
