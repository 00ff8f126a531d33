"""Triton kernels of the MSA decode ops, same contract and signatures as `msa_naive`.

Layering (as in flash-linear-attention): `@triton.jit` kernels → host launchers (`_launch_*`) →
public functions that document shapes and validate inputs. bf16/fp16/fp32 inputs, fp32 accumulation.
No host synchronisation anywhere in the decode path (no `.item()`, no data-dependent shapes), so
a decode step built from these ops can be captured in a CUDA graph.

Kernels (each op is ONE launch; the "last program merges" pattern replaces a second kernel: every
program publishes its partial result, bumps an arrival counter, and the program that arrives last
for its (batch, KV head) merges and resets the counter):
    _summary_update_kernel   one program per (batch·KV head, touched block): sum / min / max of the
                             new keys of that block, fresh or folded into the running summary.
    _select_kernel           one program per (batch·KV head, chunk of blocks): group-summed scores of
                             the chunk's block summaries, sink/local forced, padding masked, moved to a
                             plain 1-D layout through a scratch row (_plain_layout); the K-th
                             best score of the chunk (bitonic tl.topk, or a sort) is a threshold, and
                             the blocks above it (ties: lower id first) are compacted in id order by a
                             prefix sum; the last program of each group of 32 chunks merges the
                             group's candidates the same way, the last group merger writes the global
                             top-K, already in ascending block order, -1 padded.
    _sparse_decode_kernel    split-K flash decoding: one program per (batch·KV head, split of BPS
                             selected blocks, default 1);
                             the group's query heads are the rows of one tile (padded to 16); K/V are
                             read in place from the [B, Hkv, S, D] cache through its strides (no gather
                             copy); online softmax in base 2 (exp2); normalised partial output + log2-
                             sum-exp per split; the last split program merges them by LSE.
    _step_kernel             a whole decode step (`decode_step`) in ONE launch: the select programs (the one
                             owning the new token's block first folds it into the fp32 sum and the bf16
                             mean) and, after them in the same 1-D grid, the decode programs, which wait on
                             a per-(batch, KV head) flag raised (release) by the program writing the
                             selection. Optional bf16 block means (`kmean`) halve the bytes select reads.
    _step3_kernel            the v3 step (default of `decode_step`, and `select_and_decode`, the engine's op):
                             select programs publish each chunk's best K (score, id) and raise a per-(batch,
                             KV head) counter; each of the K decode programs of a head merges the published
                             lists itself (no select-side merge), attends one selected block and writes its
                             slot of idx; the last merges the K partials. mean (fp32 sums / bf16 means, with
                             optional exact rescoring) or minmax scorer; one launch or two (TUNING). With k_new
                             the select program owning the token's block first folds it into the summaries
                             (sum, min/max, mean), and with v_new writes the token's key and value into the
                             caches: the engine's decode thus needs no update or copy launch. Optional Hopper
                             programmatic dependent launch (TUNING step_pdl, off by default). Where one
                             tile per select program would need a group merge level (long contexts, B=1), each
                             program loops over 2-8 tiles with the next one's load in flight (_tiles_per_program).
                             Profiling only: with `TIMELINE` set (an int64 CUDA tensor) the launch is compiled with
                             TIMING and every program stores clock / globaltimer stamps at its phase boundaries
                             (`_stamp`; benchmarks/bench_gpu_msa.py --part timeline).
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from . import msa_naive as ref

try:  # Hopper programmatic dependent launch (grid dependency control); absent in old Triton builds
    from triton.language.extra.cuda import gdc_launch_dependents as _gdc_launch_dependents  # noqa: F401
    from triton.language.extra.cuda import gdc_wait as _gdc_wait  # noqa: F401

    _HAS_GDC = True
except ImportError:  # pragma: no cover - depends on the Triton build
    _HAS_GDC = False

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


@triton.jit
def _kth_largest(x, K: tl.constexpr, K_PAD: tl.constexpr, HAS_TOPK: tl.constexpr):
    """The K-th largest value of the 1-D fp32 tensor x (bitonic tl.topk where it exists, else a sort)."""
    if HAS_TOPK:
        top = tl.topk(x, K_PAD)
        lanes = tl.arange(0, K_PAD)
    else:
        top = tl.sort(x, descending=True)
        lanes = tl.arange(0, x.shape[0])
    return tl.sum(tl.where(lanes == K - 1, top, 0.0), axis=0)


@triton.jit
def _compact_top(score, K: tl.constexpr, K_PAD: tl.constexpr, HAS_TOPK: tl.constexpr):
    """Pick the K best lanes of score (-inf = not a candidate); equal scores go to the earlier lane.
    Returns (picked, slot, count): slot = rank of a picked lane among the picked, in lane order.
    One prefix sum and one reduction: the lanes above the K-th best score and the lanes tied with it are
    counted in the low and high 16 bits of one int32 (lists are far shorter than 2^15 lanes)."""
    thr = _kth_largest(score, K, K_PAD, HAS_TOPK)
    above = score > thr
    tie = (score == thr) & (score > float("-inf"))
    packed = above.to(tl.int32) + (tie.to(tl.int32) << 16)
    incl = tl.cumsum(packed, axis=0)
    total = tl.sum(packed, axis=0)
    need = K - (total & 0xFFFF)  # tied lanes still to take, in lane order
    tie_incl = tl.minimum(incl >> 16, need)
    picked = above | (tie & ((incl >> 16) <= need))
    slot = (incl & 0xFFFF) + tie_incl - 1
    return picked, slot, (total & 0xFFFF) + tl.minimum(total >> 16, need)


@triton.jit
def _plain_layout(score, sc_ptr, N: tl.constexpr):
    """score [N] (the row sums of a summary tile, in the tile's row layout: every value spread over the threads
    of its row) -> the same values in a plain 1-D layout, through a scratch row of N floats at sc_ptr (the
    program's own; a store, a CTA barrier, a load that L1 serves). The top-K network that follows is several
    times shorter on the plain layout (sm_90: ~190 instead of ~1170 instructions and 6 instead of 48
    barriers for 64 lanes)."""
    lanes = tl.arange(0, N)
    tl.store(sc_ptr + lanes, score)
    tl.debug_barrier()
    return tl.load(sc_ptr + lanes)


@triton.jit
def _store_top(score, ids, s_ptr, i_ptr, K: tl.constexpr, K_PAD: tl.constexpr, HAS_TOPK: tl.constexpr):
    """Write the K best (score, id) of a lane-ordered candidate list to K_PAD slots, in lane order,
    -inf in the unused slots."""
    picked, slot, count = _compact_top(score, K, K_PAD, HAS_TOPK)
    tl.store(s_ptr + slot, score, mask=picked)
    tl.store(i_ptr + slot, ids, mask=picked)
    k_lane = tl.arange(0, K_PAD)
    tl.store(s_ptr + k_lane, tl.full([K_PAD], float("-inf"), tl.float32), mask=k_lane >= count)


@triton.jit
def _write_selection(score, ids, o_base, so_k, K: tl.constexpr, K_PAD: tl.constexpr, HAS_TOPK: tl.constexpr):
    """Final pick: the K best block ids of a candidate list kept in ascending id order -> idx row, -1 padded."""
    picked, slot, count = _compact_top(score, K, K_PAD, HAS_TOPK)
    tl.store(o_base + slot * so_k, ids, mask=picked)
    k_lane = tl.arange(0, K_PAD)
    tl.store(o_base + k_lane * so_k, tl.full([K_PAD], -1, tl.int32), mask=(k_lane >= count) & (k_lane < K))


@triton.jit
def _quest_scores(kmin, kmax, q_base, sq_h, sq_d, offs_d, dmask, G: tl.constexpr, BLOCK_D: tl.constexpr):
    """Group-summed minmax (Quest) scores of a [N, BLOCK_D] pair of kmin/kmax tiles: sum over the group's heads
    g and dims d of max(kmin_d q_gd, kmax_d q_gd) = kmax_d q_gd (q_gd >= 0) or kmin_d q_gd (q_gd < 0), summed
    as kmax . sum_g max(q_g, 0) + kmin . sum_g min(q_g, 0): two products per element and one reduction
    instead of G of each (the same terms, summed in another order)."""
    q_pos, q_neg = _group_query(q_base, sq_h, sq_d, offs_d, dmask, G, BLOCK_D, True)
    return tl.sum(kmax * q_pos[None, :] + kmin * q_neg[None, :], axis=1)


@triton.jit
def _group_query(q_base, sq_h, sq_d, offs_d, dmask, G: tl.constexpr, BLOCK_D: tl.constexpr, MINMAX: tl.constexpr):
    """The group's query terms [BLOCK_D] fp32 a scorer needs: MINMAX (sum_g max(q_g, 0), sum_g min(q_g, 0)), else
    (sum_g q_g, the same)."""
    qa = tl.zeros([BLOCK_D], dtype=tl.float32)
    qb = tl.zeros([BLOCK_D], dtype=tl.float32)
    for g in tl.static_range(G):
        qg = tl.load(q_base + g * sq_h + offs_d * sq_d, mask=dmask, other=0.0).to(tl.float32)
        if MINMAX:
            qa += tl.maximum(qg, 0.0)
            qb += tl.minimum(qg, 0.0)
        else:
            qa += qg
    if not MINMAX:
        qb = qa
    return qa, qb


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
def _step_kernel(
    # select (with the new token folded in)
    q_ptr, sq_b, sq_h, sq_d,
    src_ptr, ss_b, ss_h, ss_n, ss_d,
    lens_ptr, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, scount_ptr,
    idx_ptr, si_b, si_h, si_k,
    kn_ptr, skn_b, skn_h, skn_d, sum_ptr, pos, flag_ptr,
    NB, n_chunks, sink_blocks, local_blocks,
    # decode
    k_ptr, sk_b, sk_h, sk_s, sk_d,
    v_ptr, sv_b, sv_h, sv_s, sv_d,
    po_ptr, plse_ptr, dcount_ptr,
    out_ptr, so_b, so_h, so_d,
    HKV, S, D, n_sel, n_split, qk_scale,
    G: tl.constexpr, TOP_K: tl.constexpr, K_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    SUB_N: tl.constexpr, BLOCK_D: tl.constexpr, GROUP: tl.constexpr, NG_PAD: tl.constexpr,
    HAS_TOPK: tl.constexpr, HAS_MEAN: tl.constexpr, FOLD: tl.constexpr,
    G_PAD: tl.constexpr, ROWS: tl.constexpr, BPS: tl.constexpr, BLOCK_T: tl.constexpr,
    SPLIT_PAD: tl.constexpr, FP32_DOT: tl.constexpr,
):
    """A whole MSA decode step in ONE launch (1-D grid): programs [0, B·Hkv·n_chunks) fold the new token
    into the summaries and select (as _select_kernel); the B·Hkv·n_split programs after them decode,
    each waiting for its (batch, KV head)'s selection. Programs start in index order, so every select
    program is resident or done before any decode program spins: no deadlock."""
    pid = tl.program_id(0)
    n_sel_prog = tl.num_programs(0) - (tl.num_programs(0) // (n_chunks + n_split)) * n_split
    if pid < n_sel_prog:
        _select_program(
            pid // n_chunks, pid % n_chunks,
            q_ptr, sq_b, sq_h, sq_d, src_ptr, src_ptr, src_ptr, ss_b, ss_h, ss_n, ss_d,
            lens_ptr, cs_ptr, ci_ptr, gs_ptr, gi_ptr, sc_ptr, scount_ptr, idx_ptr, si_b, si_h, si_k,
            kn_ptr, skn_b, skn_h, skn_d, sum_ptr, pos, flag_ptr,
            HKV, NB, D, n_chunks, sink_blocks, local_blocks,
            G, TOP_K, K_PAD, BLOCK_SIZE, SUB_N, BLOCK_D, GROUP, NG_PAD, False, HAS_TOPK, HAS_MEAN, FOLD, True,
        )
    else:
        p = pid - n_sel_prog
        _decode_program(
            p // n_split, p % n_split, flag_ptr,
            q_ptr, sq_b, sq_h, sq_d, k_ptr, sk_b, sk_h, sk_s, sk_d, v_ptr, sv_b, sv_h, sv_s, sv_d,
            idx_ptr, si_b, si_h, si_k, lens_ptr, po_ptr, plse_ptr, dcount_ptr, out_ptr, so_b, so_h, so_d,
            HKV, S, D, n_sel, n_split, qk_scale,
            G, G_PAD, ROWS, BLOCK_SIZE, BPS, BLOCK_T, BLOCK_D, SPLIT_PAD, FP32_DOT, True,
        )


# ----------------------------------------------------------------------------------------------
# one-launch step, v3: the final top-K merge moved into the decode programs
# ----------------------------------------------------------------------------------------------
# Bound on |score from bf16 means - score from fp32 sums| relative to sum_d |qsum_d| |mean_jd|: bf16
# rounds each mean element by at most 2^-8 of itself; twice that, plus fp32 reassociation slack.
_EXACT_TOL = tl.constexpr(2.0**-7 + 1e-5)


@triton.jit
def _seq_len_of(lens_ptr, b, seq_len_arg, LENS_SCALAR: tl.constexpr):
    """The sequence length of batch row b: the scalar argument (one length for all rows) or lens_ptr[b]."""
    if LENS_SCALAR:
        n = seq_len_arg + b * 0
    else:
        n = tl.load(lens_ptr + b).to(tl.int32)
    return n


@triton.jit
def _pdl_wait(PDL: tl.constexpr, TRIGGER: tl.constexpr = True):
    """With PDL (the launch carries Hopper's programmatic-dependent-launch attribute, so this grid may start
    while the previous kernel on the stream still runs): wait until that kernel has finished and its writes
    are visible, then let the next PDL launch start its own prologue. Nothing a program does before this
    may read what the previous kernel writes, or write anything. TRIGGER off: the next launch starts only as
    this grid's programs exit."""
    if PDL:
        _gdc_wait()
        if TRIGGER:
            _gdc_launch_dependents()


@triton.jit
def _stamp(tm_ptr, slot: tl.constexpr, dep, TIMING: tl.constexpr):
    """TIMING (a profiling build, CUDA only): store (SM clock64, globaltimer ns) into tm_ptr[2 slot], tm_ptr[2 slot + 1],
    read once `dep` (a scalar) is computed -- the asm takes it as an input, so the stamp waits for it."""
    if TIMING:
        d = tl.zeros([1], dtype=tl.int32) + dep.to(tl.int32)
        c = tl.inline_asm_elementwise("mov.u64 $0, %clock64;", "=l,r", [d], dtype=tl.int64, is_pure=False, pack=1)
        g = tl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l,r", [d], dtype=tl.int64, is_pure=False, pack=1)
        one = tl.arange(0, 1)
        tl.store(tm_ptr + 2 * slot + one, c)
        tl.store(tm_ptr + 2 * slot + 1 + one, g)


@triton.jit
def _ranks(s, ids):
    """Rank of every lane of s [N] (0 = best): the lanes with a higher score, or an equal score and a lower id.
    Pairwise [N, N] compare in registers: one layout change and one reduction, no sorting network."""
    beats = (s[None, :] > s[:, None]) | ((s[None, :] == s[:, None]) & (ids[None, :] < ids[:, None]))
    return tl.sum(beats.to(tl.int32), axis=1)


@triton.jit
def _ranks_mem(s_ptr, i_ptr, n, LANES: tl.constexpr, JC: tl.constexpr):
    """(scores, ids, ranks) of the n candidates stored at s_ptr / i_ptr (ids distinct; padding lanes -inf).
    The pairwise compare runs over JC-wide column chunks reloaded from memory (L2), so registers stay small."""
    lanes = tl.arange(0, LANES)
    m = lanes < n
    s = tl.load(s_ptr + lanes, mask=m, other=float("-inf"), cache_modifier=".cg")
    ids = tl.load(i_ptr + lanes, mask=m, other=_BIG, cache_modifier=".cg")
    rank = tl.zeros([LANES], dtype=tl.int32)
    for j0 in tl.static_range(0, LANES, JC):
        jl = j0 + tl.arange(0, JC)
        mj = jl < n
        sj = tl.load(s_ptr + jl, mask=mj, other=float("-inf"), cache_modifier=".cg")
        ij = tl.load(i_ptr + jl, mask=mj, other=_BIG, cache_modifier=".cg")
        beats = (sj[None, :] > s[:, None]) | ((sj[None, :] == s[:, None]) & (ij[None, :] < ids[:, None]))
        rank += tl.sum(beats.to(tl.int32), axis=1)
    return s, ids, rank


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
    builds only, `TIMELINE`): every program stores its phase stamps in tm_ptr[pid, 0:16] (int64)."""
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


# ==============================================================================================
# host launchers
# ==============================================================================================
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


_HAS_TOPK = hasattr(tl, "topk")
# Launch parameters (benchmarks/bench_gpu_msa.py --part sweep varies them); None = the default rule.
# select_tile_bytes: bytes of summaries one select program scores in one tile load (sets SUB_N blocks).
# Defaults from the H100 sweeps of 2026-11-26 (RESULTS.md): 4 warps everywhere; 8 warps in the one-launch
# step cost 3-6 us (the decode programs run with the launch's warp count too). v3 step (round 3): tl.topk
# selection (the pairwise-rank variant, step_ranked, was 20-40% slower), 32 KB select tiles; exact rescoring
# of bf16 means (step_exact) costs more than reading the fp32 sums outright, so it is off by default.
# Round 5: persistent select programs (step_select_programs, step_max_tiles, step_tile_bytes_persistent[_minmax];
# rule in _tiles_per_program); a decode-side threshold merge was measured and dropped (0.3-0.7 us slower).
# Round 6: step_pdl -- the v3 step launches with programmatic dependent launch on Hopper (_pdl_on); its programs
# let the next such launch start right after their own wait (step_pdl_trigger; off: only as they exit). Off by
# default: inside the whole 8B-shaped decode step (H100) it cost 0.6-1.3 us/layer on the engine path, though step
# launches back to back alone gained 1.4-2.5 us (<= 128K, and bf16 means) and lost 1.1-2.7 (fp32 sums, >= 512K)
# (RESULTS.md, round 6).
TUNING: dict[str, int | bool | str | None] = dict(select_block_n=None, select_tile_bytes=32768, select_max_chunks=1024, merge_group=32,
                                            select_warps=4, select_warps_big=4, use_topk=None,
                                            decode_warps=4, decode_stages=2, decode_blocks_per_split=1, step_warps=4,
                                            step_impl="v3", step_merge_lanes=256, step_flat_lanes=512, step_exact=False,
                                            step_ranked=False, step_tile_bytes=32768, step_tile_bytes_minmax=None,
                                            step_launches=1, step_select_programs=256, step_max_tiles=8,
                                            step_tile_bytes_persistent=None, step_tile_bytes_persistent_minmax=16384,
                                            step_pdl=False, step_pdl_trigger=True)
# What select_and_decode accepts beyond round 5's arguments (the engine hooks ask before passing them; an earlier
# kernels module, e.g. a benchmark's baseline, has none). "kmean_fold" (round 7): the engine relies on k_new being
# folded into the bf16 means (and the fp32 sums, min/max) in the launch, with or without v_new (tested).
FEATURES = frozenset({"v_new", "prefetch", "kmean_fold"})
# Profiling only (benchmarks/bench_gpu_msa.py --part timeline): an int64 CUDA tensor of at least grid x 16 elements;
# while set, v3 step launches are compiled with TIMING and every program writes its phase stamps there (_stamp).
TIMELINE: torch.Tensor | None = None
_counters: dict[tuple[torch.device, str], torch.Tensor] = {}
_retired: list[torch.Tensor] = []


def _counter(device: torch.device, n: int, slot: str) -> torch.Tensor:
    """Zeroed int32 arrival counters / flags, one per (batch, KV head), reset to 0 by the kernel that
    used them. Kept per device and grown on demand, so a captured CUDA graph keeps valid counters
    (allocate them with one eager call before capturing). One stream at a time."""
    buf = _counters.get((device, slot))
    if buf is None or buf.numel() < n:
        if buf is not None:
            _retired.append(buf)  # a captured graph may still point at it: never free it
        buf = torch.zeros(max(n, 1024), dtype=torch.int32, device=device)
        _counters[(device, slot)] = buf
    return buf


def _chunk_plan(nb: int, d: int, elem_bytes: int = 4, tile_bytes: int | None = None) -> tuple[int, int]:
    """(SUB_N, n_chunks): each program scores SUB_N blocks with one [SUB_N, D] tile load (~32 KB by
    default: 64 blocks of fp32 sums or 128 of bf16 means at D=128); SUB_N grows only when that would
    make more than `select_max_chunks` chunks."""
    tile_bytes = tile_bytes or TUNING["select_tile_bytes"]
    sub_n = TUNING["select_block_n"] or max(16, tile_bytes // (triton.next_power_of_2(d) * elem_bytes))
    sub_n = max(sub_n, triton.next_power_of_2(triton.cdiv(nb, TUNING["select_max_chunks"])))
    return sub_n, triton.cdiv(nb, sub_n)


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
        self.group = min(TUNING["merge_group"], max(2, triton.next_power_of_2(self.n_chunks)))
        self.n_groups = triton.cdiv(self.n_chunks, self.group)
        dev = q.device
        self.cs = _empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.float32)
        self.ci = _empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.int32)
        self.gs = _empty((B * hkv, self.n_groups, self.k_pad), device=dev, dtype=torch.float32)
        self.gi = _empty((B * hkv, self.n_groups, self.k_pad), device=dev, dtype=torch.int32)
        self.sc = _empty((B * hkv, self.n_chunks * self.sub_n), device=dev, dtype=torch.float32)  # scores' re-layout
        self.count = _counter(dev, B * hkv * (self.n_groups + 1), "select")
        self.idx = _empty((B, hkv, top_k), device=dev, dtype=torch.int32)

    def constexprs(self, top_k, block_size, D):
        return dict(G=self.G, TOP_K=top_k, K_PAD=self.k_pad, BLOCK_SIZE=block_size, SUB_N=self.sub_n,
                    BLOCK_D=triton.next_power_of_2(D), GROUP=self.group, NG_PAD=triton.next_power_of_2(self.n_groups),
                    HAS_TOPK=_HAS_TOPK if TUNING["use_topk"] is None else TUNING["use_topk"])

    def warps(self):
        return TUNING["select_warps"] if self.sub_n <= 64 else TUNING["select_warps_big"]


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
        bps = max(1, min(TUNING["decode_blocks_per_split"], n_sel))
        self.bps, self.n_split = bps, triton.cdiv(n_sel, bps)
        self.part_o = _empty((B * hkv, self.n_split, self.g_pad, D), device=q.device, dtype=torch.float32)
        self.part_lse = _empty((B * hkv, self.n_split, self.g_pad), device=q.device, dtype=torch.float32)
        self.count = _counter(q.device, B * hkv, "decode")
        self.out = _empty((B, q.shape[1], D), device=q.device, dtype=q.dtype)
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
        num_warps=TUNING["decode_warps"], num_stages=TUNING["decode_stages"],
    )
    return plan.out


def _launch_step(q, k_new, k_cache, v_cache, ksum, kmean, seq_lens, pos, block_size, top_k, sink_blocks, local_blocks, scale):
    B, hkv, S, D = k_cache.shape
    nb = ksum.shape[2]
    src = kmean if kmean is not None else ksum
    if src.stride() != ksum.stride():
        raise ValueError("kmean must have ksum's shape and strides")
    sel = _SelectPlan(q, src, top_k)
    dec = _DecodePlan(q, k_cache, top_k, block_size)
    flags = _counter(q.device, B * hkv, "step_flag")
    idx = sel.idx
    sc = sel.constexprs(top_k, block_size, D)
    sc.update(dec.constexprs())
    _step_kernel[(B * hkv * (sel.n_chunks + dec.n_split),)](
        q, *q.stride(),
        src, *src.stride(),
        seq_lens, sel.cs, sel.ci, sel.gs, sel.gi, sel.sc, sel.count,
        idx, *idx.stride(),
        k_new, k_new.stride(0), k_new.stride(1), k_new.stride(3), ksum, pos, flags,
        nb, sel.n_chunks, sink_blocks, local_blocks,
        k_cache, *k_cache.stride(),
        v_cache, *v_cache.stride(),
        dec.part_o, dec.part_lse, dec.count,
        dec.out, *dec.out.stride(),
        hkv, S, D, top_k, dec.n_split, scale * LOG2E,
        HAS_MEAN=kmean is not None, FOLD=True, **sc,
        num_warps=TUNING["step_warps"], num_stages=TUNING["decode_stages"],
    )
    return dec.out, idx


class _Step3Plan:
    """Scratch buffers, grid and compile-time parameters of one v3 step launch (`_step3_kernel`).

    Level-1 candidate lists: one per chunk when n_chunks·K_PAD <= TUNING["step_flat_lanes"] (the decode
    programs merge them directly), else one per group of GROUP chunks (merged by the group's last program), GROUP
    sized so that the decode programs merge about TUNING["step_merge_lanes"] lanes. Minmax tiles (two fp32
    tables) may be sized apart (TUNING["step_tile_bytes_minmax"]). A chunk is `tiles` tiles of SUB_N blocks:
    1, or (persistent style) a power of two up to TUNING["step_max_tiles"] chosen so that at most about
    TUNING["step_select_programs"] select programs run (0 / None: always 1), with tiles of
    TUNING["step_tile_bytes_persistent"] bytes (minmax: step_tile_bytes_persistent_minmax; None: as without)."""

    def __init__(self, q, src, k_cache, top_k, block_size, summary_bytes):
        B, hkv, nb, D = src.shape
        self.G = q.shape[1] // hkv
        self.k_pad = max(2, triton.next_power_of_2(top_k))
        tile = (summary_bytes == 8 and TUNING["step_tile_bytes_minmax"]) or TUNING["step_tile_bytes"]
        sub_n, _ = _chunk_plan(nb, D, summary_bytes, tile)
        self.sub_n = max(sub_n, self.k_pad)
        n_tiles = triton.cdiv(nb, self.sub_n)
        self.tiles = _tiles_per_program(n_tiles, B * hkv, self.k_pad)
        tile_p = (summary_bytes == 8 and TUNING["step_tile_bytes_persistent_minmax"]) or TUNING["step_tile_bytes_persistent"]
        if self.tiles > 1 and tile_p:  # persistent programs with their own tile size, if still persistent with it
            sub_p = max(_chunk_plan(nb, D, summary_bytes, tile_p)[0], self.k_pad)
            tiles_p = _tiles_per_program(triton.cdiv(nb, sub_p), B * hkv, self.k_pad)
            if tiles_p > 1:
                self.sub_n, n_tiles, self.tiles = sub_p, triton.cdiv(nb, sub_p), tiles_p
        self.n_chunks = triton.cdiv(n_tiles, self.tiles)
        lanes = TUNING["step_merge_lanes"]
        if self.n_chunks * self.k_pad <= max(lanes, TUNING["step_flat_lanes"]):
            self.group, self.n_groups = 1, 1
            n_lists = self.n_chunks
        else:
            self.group = triton.next_power_of_2(triton.cdiv(self.n_chunks * self.k_pad, lanes))
            self.n_groups = triton.cdiv(self.n_chunks, self.group)
            n_lists = self.n_groups
        self.l_pad = triton.next_power_of_2(n_lists)
        dev = q.device
        self.cs = _empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.float32)
        self.ci = _empty((B * hkv, self.n_chunks, self.k_pad), device=dev, dtype=torch.int32)
        ng = self.n_groups if self.group > 1 else 1
        self.gs = _empty((B * hkv, ng, self.k_pad), device=dev, dtype=torch.float32)
        self.gi = _empty((B * hkv, ng, self.k_pad), device=dev, dtype=torch.int32)
        self.sc = _empty((B * hkv, self.n_chunks * self.tiles * self.sub_n), device=dev, dtype=torch.float32)  # re-layout
        self.gcount = _counter(dev, B * hkv * ng, "s3_group")
        self.flag = _counter(dev, B * hkv, "s3_flag")
        self.dcount = _counter(dev, B * hkv, "s3_dcount")
        self.g_pad = triton.next_power_of_2(self.G)
        self.idx = _empty((B, hkv, top_k), device=dev, dtype=torch.int32)
        self.part_o = _empty((B * hkv, top_k, self.g_pad, D), device=dev, dtype=torch.float32)
        self.part_lse = _empty((B * hkv, top_k, self.g_pad), device=dev, dtype=torch.float32)
        self.out = _empty((B, q.shape[1], D), device=dev, dtype=q.dtype)
        self.grid = (B * hkv * (self.n_chunks + top_k),)
        self.constexprs = dict(
            G=self.G, TOP_K=top_k, K_PAD=self.k_pad, BLOCK_SIZE=block_size, SUB_N=self.sub_n,
            BLOCK_D=triton.next_power_of_2(D), GROUP=self.group, L_PAD=self.l_pad,
            HAS_TOPK=_HAS_TOPK if TUNING["use_topk"] is None else TUNING["use_topk"],
            G_PAD=self.g_pad, ROWS=max(16, self.g_pad), BLOCK_T=max(16, min(64, triton.next_power_of_2(block_size))),
            SPLIT_PAD=triton.next_power_of_2(top_k), FP32_DOT=_fp32_dot(q, k_cache), RANKED=bool(TUNING["step_ranked"]),
            JC_S=max(1, min(self.group * self.k_pad, 8192 // (self.group * self.k_pad))),
            JC_D=max(1, min(self.l_pad * self.k_pad, 8192 // (self.l_pad * self.k_pad))), TILES=self.tiles)


def _tiles_per_program(n_tiles: int, n_heads: int, k_pad: int) -> int:
    """Tiles per select program of the v3 step (n_tiles per (batch, KV head), n_heads = B·Hkv of them): 1, or the
    power of two that keeps the select programs at TUNING["step_select_programs"] or fewer -- only where the one-tile
    plan needs a group merge level and the persistent one does not, with at most TUNING["step_max_tiles"] tiles a
    program. From the H100 runs of round 5: 2-8 tiles a program that removed the group level paid at B=1 (mean
    scorer 512K-1M, minmax 128K-512K: 0.5-5 us); 16 or more tiles, a group level left (minmax, 1M), or programs
    that were fewer without removing a level (B=8: 128K-1M, +3-12 us) cost time. Pairwise-rank variant: always 1."""
    target = TUNING["step_select_programs"]
    lanes = max(TUNING["step_merge_lanes"], TUNING["step_flat_lanes"])
    if not target or n_tiles * k_pad <= lanes or TUNING["step_ranked"]:  # one list level already
        return 1
    tiles = triton.next_power_of_2(triton.cdiv(n_tiles * n_heads, int(target)))
    flat = triton.cdiv(n_tiles, tiles) * k_pad <= lanes
    return tiles if flat and 1 < tiles <= TUNING["step_max_tiles"] else 1


def _pdl_on(q: torch.Tensor) -> bool:
    """Whether the step launches with programmatic dependent launch: TUNING["step_pdl"], a Hopper-or-later GPU,
    a Triton with grid dependency control, not the interpreter."""
    if not (TUNING["step_pdl"] and _HAS_GDC and q.is_cuda) or os.environ.get("TRITON_INTERPRET") == "1":
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
    phases = {1: [(0, plan.grid)], 2: [(1, (n_sel,)), (2, (plan.grid[0] - n_sel,))], 0: [(1, (n_sel,))]}[TUNING["step_launches"]]
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
        tm_ptr=TIMELINE if TIMELINE is not None else plan.flag, TIMING=TIMELINE is not None,
        MINMAX=minmax, HAS_MEAN=use_mean, FOLD=fold, EXACT=bool(exact and use_mean),
        LENS_SCALAR=seq_lens is None, PHASE=phase, FOLD_MINMAX=fold_minmax, **plan.constexprs,
        PDL=(1 if TUNING["step_pdl_trigger"] else 2) if pdl else 0, PREFETCH=bool(prefetch and pdl), KV_WRITE=kv_write,  # no PDL: one compiled variant
        num_warps=TUNING["step_warps"], num_stages=1, **({"launch_pdl": True} if pdl else {}),
    )


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
    (TUNING["step_impl"] "v3": `_step3_kernel`, select programs publish per-chunk candidates, decode programs
    merge them and attend one selected block each; with kmean and TUNING["step_exact"] the selection equals
    that of the fp32 sums; "v2": `_step_kernel`, the selection merged on the select side); fused=False in three.
    prefetch (v3 on Hopper, where the launch may overlap the end of the previous kernel on the stream): the
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
    if fused and TUNING["step_impl"] == "v3":
        return _launch_step3(q, k_cache, v_cache, ksum=ksum, kmean=kmean, kmin=None, kmax=None, scorer="mean",
                             seq_lens=seq_lens, seq_len=None, k_new=k_new, pos=pos, block_size=block_size, top_k=top_k,
                             sink_blocks=sink_blocks, local_blocks=local_blocks, scale=scale, exact=TUNING["step_exact"],
                             prefetch=prefetch)
    if fused:
        return _launch_step(q, k_new, k_cache, v_cache, ksum, kmean, seq_lens, pos, block_size, top_k,
                            sink_blocks, local_blocks, scale)
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
    fp32 sums' up to the means' rounding; exact=True, default TUNING["step_exact"] = off, rescores near-threshold
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
                         exact=TUNING["step_exact"] if exact is None else exact, v_new=v_new, prefetch=prefetch)
