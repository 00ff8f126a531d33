"""Shared pieces of the Triton MSA kernels (triton_summary.py, triton_select.py, triton_decode.py): constants,
the small `@triton.jit` helpers more than one stage calls, scratch counters, the allocation hook and the launch
parameters (`TUNING`, the setting engine.kernels.triton; `configure` of the package sets it)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from m3analyst.settings import TritonTuning

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
_HAS_TOPK = hasattr(tl, "topk")
# Launch parameters: the fields of TritonTuning (m3analyst/settings.py), updated in place by `tune`.
TUNING = TritonTuning()
# Profiling only (benchmarks/bench_gpu_msa.py --part timeline): an int64 CUDA tensor of at least grid x 16 elements;
# while set, v3 step launches are compiled with TIMING and every program writes its phase stamps there (_stamp).
TIMELINE: torch.Tensor | None = None
_counters: dict[tuple[torch.device, str], torch.Tensor] = {}
_retired: list[torch.Tensor] = []


def tune(tuning: TritonTuning) -> None:
    """Take the launch parameters of `tuning` (in place: modules holding TUNING see them)."""
    for name in TritonTuning.model_fields:
        setattr(TUNING, name, getattr(tuning, name))


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
    tile_bytes = tile_bytes or TUNING.select_tile_bytes
    sub_n = TUNING.select_block_n or max(16, tile_bytes // (triton.next_power_of_2(d) * elem_bytes))
    sub_n = max(sub_n, triton.next_power_of_2(triton.cdiv(nb, TUNING.select_max_chunks)))
    return sub_n, triton.cdiv(nb, sub_n)


def _check_device(*tensors: torch.Tensor | None) -> None:
    devs = {t.device for t in tensors if t is not None}
    if len(devs) != 1:
        raise ValueError(f"all tensors must be on one device; got {sorted(map(str, devs))}")


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
