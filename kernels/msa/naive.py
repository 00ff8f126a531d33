"""Plain-PyTorch reference of the MSA decode ops (the "MSA ops contract" in the team's contracts).

Simple rather than fast: every op here is the ground truth that the backends of this folder -- the Triton
stages (triton_*.py), the fused C kernel (cpu.c) and the PyTorch ops of the engine's CPU path -- are tested
against. The contract ops (update_summaries, select_blocks with the linear scorers, sparse_decode) come first;
the estimated-mass scorers (hybrid and the rest), the two-stage rerank and the exact-mass oracle after them.

Notation (shapes):
    B      batch
    Hq     query heads;  Hkv  key/value heads;  G = Hq // Hkv query heads per KV group
           (query head i reads KV head i // G, the transformers `repeat_kv` convention)
    D      head dim
    S_cap  token capacity of the KV cache;  NB_cap block capacity of the summaries (>= ceil(S_cap / block))
    T      new tokens in one update

Tensors:
    k_cache, v_cache  [B, Hkv, S_cap, D]  any float dtype, may be strided views (transformers' layout)
    seq_lens          [B] int32/int64    valid tokens per sequence: tokens [0, seq_len) are real
    ksum              [B, Hkv, NB_cap, D] fp32, running per-block key sums (block mean = ksum / tokens in block)
    kmin, kmax        [B, Hkv, NB_cap, D] optional per-block elementwise key min / max (Quest-style bound)
    kmean             [B, Hkv, NB_cap, D] optional low-precision (bf16) block means ksum / tokens, kept
                      beside ksum by update_summaries(kmean=...); the GPU select may read these instead of
                      the fp32 sums (half the bytes). The reference always scores from the fp32 sums, so
                      the fast path equals it up to `mean_score_tolerance` (near ties may swap).

Block j holds tokens [j * block_size, (j + 1) * block_size). Block j is *valid* for a sequence when
j < ceil(seq_len / block_size); the last valid block may be partial (its mean divides by the tokens
it really holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

LINEAR_SCORERS = ("mean", "minmax")  # the scorers of the contract ops below, which every backend implements


# ----------------------------------------------------------------------------------------------
# validation helpers (shared with the Triton path)
# ----------------------------------------------------------------------------------------------
def check_cache(k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
    if k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache/v_cache must both be [B, Hkv, S, D]; got {tuple(k_cache.shape)} and {tuple(v_cache.shape)}")


def check_group(q: torch.Tensor, hkv: int) -> int:
    """Return G = Hq // Hkv after checking q is [B, Hq, D] with Hq a multiple of Hkv."""
    if q.dim() != 3:
        raise ValueError(f"q must be [B, Hq, D]; got {tuple(q.shape)}")
    if q.shape[1] % hkv:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of KV heads ({hkv})")
    return q.shape[1] // hkv


def check_select_args(top_k: int, sink_blocks: int, local_blocks: int, scorer: str, kmin, kmax) -> None:
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}")
    if sink_blocks < 0 or local_blocks < 0:
        raise ValueError("sink_blocks and local_blocks must be >= 0")
    if scorer not in LINEAR_SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; expected one of {LINEAR_SCORERS}")
    if scorer == "minmax" and (kmin is None or kmax is None):
        raise ValueError("scorer='minmax' needs kmin and kmax")


def block_counts(seq_lens: torch.Tensor, nb: int, block_size: int) -> torch.Tensor:
    """Tokens held by each block: [B, nb] int64 (0 for blocks past seq_len, < block_size for a partial last block)."""
    starts = torch.arange(nb, device=seq_lens.device, dtype=torch.int64) * block_size
    return (seq_lens.to(torch.int64)[:, None] - starts[None, :]).clamp(0, block_size)


# ----------------------------------------------------------------------------------------------
# update_summaries
# ----------------------------------------------------------------------------------------------
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
    """Fold new keys into the per-block summaries, in place, touching only their blocks.

    k_new [B, Hkv, T, D] are the keys of tokens start_pos .. start_pos + T - 1 (same positions for
    every sequence of the batch, as in transformers' padded cache). A block whose first token is
    among the new ones starts afresh (sum 0, min +inf, max -inf) — so a reused buffer needs no
    clearing; a block already begun accumulates. kmin/kmax may be None (then only ksum is kept).
    seq_lens [B] (optional, keyword): tokens at positions >= seq_len of a sequence are ignored
    (right-padded ragged batches). Sums are accumulated in fp32. kmean (optional, keyword): the touched
    blocks' means ksum / tokens-in-block are written there in kmean's dtype.
    """
    if k_new.dim() != 4 or k_new.shape[:2] != ksum.shape[:2] or k_new.shape[3] != ksum.shape[3]:
        raise ValueError(f"k_new {tuple(k_new.shape)} does not match ksum {tuple(ksum.shape)}")
    T = k_new.shape[2]
    if T == 0:
        return
    end = start_pos + T
    if math.ceil(end / block_size) > ksum.shape[2]:
        raise ValueError(f"tokens up to {end} need {math.ceil(end / block_size)} blocks; ksum holds {ksum.shape[2]}")
    B = k_new.shape[0]
    valid = torch.ones(B, T, dtype=torch.bool, device=k_new.device)
    if seq_lens is not None:
        pos = torch.arange(start_pos, end, device=k_new.device)
        valid = pos[None, :] < seq_lens.to(k_new.device)[:, None]
    for blk in range(start_pos // block_size, (end - 1) // block_size + 1):
        b0, b1 = blk * block_size, (blk + 1) * block_size
        lo, hi = max(b0, start_pos) - start_pos, min(b1, end) - start_pos
        keys = k_new[:, :, lo:hi].float()  # [B, Hkv, n, D]
        m = valid[:, None, lo:hi, None]  # [B, 1, n, 1]
        fresh = b0 >= start_pos
        part_sum = torch.where(m, keys, 0.0).sum(2)
        ksum[:, :, blk] = part_sum if fresh else ksum[:, :, blk] + part_sum
        if kmean is not None:
            last = torch.full((B,), min(b1, end), dtype=torch.int64, device=k_new.device)
            if seq_lens is not None:
                last = torch.minimum(last, seq_lens.to(k_new.device).to(torch.int64))
            n_in = (last - b0).clamp(min=1).to(torch.float32)  # tokens the block holds now
            mean = (ksum[:, :, blk] / n_in[:, None, None]).to(kmean.dtype)
            kmean[:, :, blk] = torch.where((last > b0)[:, None, None], mean, kmean[:, :, blk])  # past seq_len: left alone
        if kmin is not None:
            part_min = torch.where(m, keys, math.inf).amin(2).to(kmin.dtype)
            kmin[:, :, blk] = part_min if fresh else torch.minimum(kmin[:, :, blk], part_min)
        if kmax is not None:
            part_max = torch.where(m, keys, -math.inf).amax(2).to(kmax.dtype)
            kmax[:, :, blk] = part_max if fresh else torch.maximum(kmax[:, :, blk], part_max)


# ----------------------------------------------------------------------------------------------
# select_blocks
# ----------------------------------------------------------------------------------------------
def block_scores(
    q: torch.Tensor,
    ksum: torch.Tensor,
    seq_lens: torch.Tensor,
    block_size: int,
    scorer: str = "mean",
    kmin: torch.Tensor | None = None,
    kmax: torch.Tensor | None = None,
) -> torch.Tensor:
    """Group block scores [B, Hkv, NB_cap] fp32, before forcing and masking.

    mean:   sum over the group's heads h of  q_h · (ksum_j / count_j)
    minmax: sum over the group's heads h of  sum_d max(q_hd * kmin_jd, q_hd * kmax_jd)  (an upper bound of q_h · k)
    Blocks past seq_len get count 0; their score is meaningless (masked by select_blocks).
    """
    B, hkv, nb, D = ksum.shape
    G = check_group(q, hkv)
    qg = q.float().view(B, hkv, G, D)
    if scorer == "mean":
        counts = block_counts(seq_lens, nb, block_size).clamp(min=1).to(torch.float32)  # [B, nb]
        mean = ksum.float() / counts[:, None, :, None]
        per_head = torch.einsum("bhgd,bhnd->bhgn", qg, mean)
    else:
        lo = qg[:, :, :, None, :] * kmin.float()[:, :, None, :, :]
        hi = qg[:, :, :, None, :] * kmax.float()[:, :, None, :, :]
        per_head = torch.maximum(lo, hi).sum(-1)
    return per_head.sum(2)


def forced_and_valid(seq_lens: torch.Tensor, nb: int, block_size: int, sink_blocks: int, local_blocks: int):
    """(forced [B, nb] bool, valid [B, nb] bool): sink blocks and the last local_blocks valid blocks are forced."""
    n_valid = (seq_lens.to(torch.int64) + block_size - 1) // block_size  # [B]
    j = torch.arange(nb, device=seq_lens.device)[None, :]
    valid = j < n_valid[:, None]
    forced = valid & ((j < sink_blocks) | (j >= n_valid[:, None] - local_blocks))
    return forced, valid


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
    """Pick each KV group's top-K blocks for one decode step.

    q [B, Hq, D] (any float dtype), ksum [B, Hkv, NB_cap, D] fp32, seq_lens [B].
    Returns idx int32 [B, Hkv, top_k]: block ids in ascending order, padded with -1 when the
    sequence has fewer than top_k valid blocks. Sink blocks (0 .. sink_blocks-1) and the last
    local_blocks valid blocks are always selected; blocks past seq_len never are. The rest are
    ranked by `block_scores` (group-summed); equal scores go to the lower block id, so when more
    blocks are forced than top_k allows, the lowest forced ids win. kmean is accepted for signature
    parity with the kernels and ignored: the reference scores from the fp32 sums.
    """
    check_select_args(top_k, sink_blocks, local_blocks, scorer, kmin, kmax)
    return select_from_scores(block_scores(q, ksum, seq_lens, block_size, scorer, kmin, kmax), seq_lens, block_size,
                              top_k, sink_blocks, local_blocks)


def means_scores(q: torch.Tensor, kmean: torch.Tensor) -> torch.Tensor:
    """Group block scores [B, Hkv, NB_cap] fp32 of the mean scorer computed from given block means kmean
    [B, Hkv, NB_cap, D] (any dtype, e.g. the kernels' bf16 means) instead of ksum / counts: what the kernels'
    fast select scores, for checking it against the same rounded inputs."""
    B, hkv, nb, D = kmean.shape
    G = check_group(q, hkv)
    return torch.einsum("bhgd,bhnd->bhn", q.float().view(B, hkv, G, D), kmean.float())


def means_tie_tolerance(q: torch.Tensor, kmean: torch.Tensor, rel: float = 1e-5) -> torch.Tensor:
    """[B, Hkv, NB_cap] fp32: how far two means_scores may differ and still be a tie of fp32 reassociation
    (rel * sum_d |sum_g q_gd| * |mean_d|): a kernel and this reference may order such blocks either way."""
    B, hkv, nb, D = kmean.shape
    qa = q.float().view(B, hkv, -1, D).sum(2).abs()
    return rel * torch.einsum("bhd,bhnd->bhn", qa, kmean.float().abs())


def select_from_scores(scores: torch.Tensor, seq_lens: torch.Tensor, block_size: int, top_k: int, sink_blocks: int = 1,
                       local_blocks: int = 1) -> torch.Tensor:
    """select_blocks' rule over given group scores [B, Hkv, NB_cap]: forced / masked blocks, top-K, ties to the
    lower id, ascending, -1 padded -> idx int32 [B, Hkv, top_k]."""
    B, hkv, nb = scores.shape
    forced, valid = forced_and_valid(seq_lens, nb, block_size, sink_blocks, local_blocks)
    scores = scores.masked_fill(forced[:, None], math.inf).masked_fill(~valid[:, None], -math.inf)
    k = min(top_k, nb)
    vals, idx = top_stable(scores, k)  # equal scores: lower block id first
    idx = torch.where(vals == -math.inf, nb, idx)  # unused slots sort last
    idx = idx.sort(dim=-1).values
    idx = torch.where(idx == nb, -1, idx)
    if k < top_k:
        idx = torch.cat([idx, idx.new_full((B, hkv, top_k - k), -1)], dim=-1)
    return idx.to(torch.int32)


def compare_selections(idx_k: torch.Tensor, idx_r: torch.Tensor, scores: torch.Tensor, tol: torch.Tensor,
                       seq_lens: torch.Tensor, block_size: int, sink_blocks: int, local_blocks: int) -> dict:
    """How a selection idx_k differs from a reference selection idx_r (both [B, Hkv, top_k], ascending, -1 padded)
    under the group scores [B, Hkv, NB_cap] that the reference ranked (before forcing / masking) with a per-block
    tolerance tol [B, Hkv, NB_cap] on them. Returns rows (B·Hkv), rows_differ, swaps (kernel-only picks) and
    ties_within_tol: every row differs only by swaps the tolerance explains (the worst kernel-only pick's score +
    its tol >= the best reference-only pick's score - its tol) and both rows hold as many picks."""
    nb = scores.shape[-1]
    forced, valid = forced_and_valid(seq_lens, nb, block_size, sink_blocks, local_blocks)
    sc = scores.masked_fill(forced[:, None], math.inf).masked_fill(~valid[:, None], -math.inf)
    def picked(idx):  # [B, Hkv, NB_cap] bool; -1 slots pick nothing
        return torch.zeros(sc.shape, dtype=torch.int32, device=sc.device).scatter_add_(
            -1, idx.long().clamp(min=0), (idx >= 0).to(torch.int32)) > 0

    sel_k, sel_r = picked(idx_k), picked(idx_r)
    lo_k = torch.where(sel_k & ~sel_r, sc + tol, math.inf).amin(-1)
    hi_r = torch.where(sel_r & ~sel_k, sc - tol, -math.inf).amax(-1)
    same_n = ((idx_k >= 0).sum(-1) == (idx_r >= 0).sum(-1)).all()
    return dict(rows=idx_k.shape[0] * idx_k.shape[1], rows_differ=int((idx_k != idx_r).any(-1).sum().item()),
                swaps=int((sel_k & ~sel_r).sum().item()), ties_within_tol=bool(same_n.item() and (lo_k >= hi_r).all().item()))


def mean_score_tolerance(q: torch.Tensor, ksum: torch.Tensor, seq_lens: torch.Tensor, block_size: int,
                         mean_dtype: torch.dtype) -> torch.Tensor:
    """[B, Hkv, NB_cap] fp32 bound on |score from kmean - reference score| for the mean scorer.

    Each mean element is rounded once to mean_dtype (relative error <= u = its unit roundoff, 2^-8 for
    bf16, 2^-11 for fp16), so the group score sum_h q_h . mean_j moves by at most
    u * sum_h sum_d |q_hd| |mean_jd|; 1e-5 of the same sum is added for fp32 reassociation.
    """
    B, hkv, nb, D = ksum.shape
    G = check_group(q, hkv)
    u = torch.finfo(mean_dtype).eps / 2 if mean_dtype != torch.float32 else 0.0
    counts = block_counts(seq_lens, nb, block_size).clamp(min=1).to(torch.float32)
    mean = (ksum.float() / counts[:, None, :, None]).abs()
    qa = q.float().abs().view(B, hkv, G, D).sum(2)  # sum_h |q_hd|
    return (u + 1e-5) * torch.einsum("bhd,bhnd->bhn", qa, mean)


# ----------------------------------------------------------------------------------------------
# sparse_decode
# ----------------------------------------------------------------------------------------------
def sparse_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    idx: torch.Tensor,
    seq_lens: torch.Tensor,
    block_size: int,
    scale: float,
) -> torch.Tensor:
    """Exact softmax attention of one new token over the selected blocks only.

    q [B, Hq, D]; k_cache, v_cache [B, Hkv, S_cap, D]; idx [B, Hkv, top_k] block ids (-1 = unused);
    seq_lens [B]. Each query head attends to the tokens of its KV group's selected blocks,
    tokens >= seq_len masked, logits = scale * q·k, softmax in fp32. A head with no token to
    attend to (seq_len 0) gets zeros. Returns out [B, Hq, D] in q's dtype.
    """
    check_cache(k_cache, v_cache)
    B, hkv, S, D = k_cache.shape
    G = check_group(q, hkv)
    pos = idx.to(torch.int64)[..., None] * block_size + torch.arange(block_size, device=q.device)  # [B,Hkv,K,bs]
    pos = pos.flatten(-2)  # [B, Hkv, K*bs]
    ok = (idx.to(torch.int64)[..., None] >= 0).expand(-1, -1, -1, block_size).flatten(-2)
    ok = ok & (pos < seq_lens.to(torch.int64)[:, None, None]) & (pos < S)
    safe = torch.where(ok, pos, 0)[..., None].expand(-1, -1, -1, D)
    ks = torch.gather(k_cache, 2, safe).float()  # [B, Hkv, K*bs, D]
    vs = torch.gather(v_cache, 2, safe).float()
    qg = q.float().view(B, hkv, G, D)
    logits = torch.einsum("bhgd,bhtd->bhgt", qg, ks) * scale
    logits = logits.masked_fill(~ok[:, :, None, :], -math.inf)
    probs = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # all-masked rows -> 0
    out = torch.einsum("bhgt,bhtd->bhgd", probs, vs)
    return out.reshape(B, hkv * G, D).to(q.dtype)


def dense_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """Full attention over tokens [0, seq_len): the K >= #blocks limit of sparse_decode. out [B, Hq, D]."""
    B, hkv, S, D = k_cache.shape
    G = check_group(q, hkv)
    qg = q.float().view(B, hkv, G, D)
    logits = torch.einsum("bhgd,bhtd->bhgt", qg, k_cache.float()) * scale
    mask = torch.arange(S, device=q.device)[None, :] < seq_lens.to(q.device)[:, None]
    logits = logits.masked_fill(~mask[:, None, None, :], -math.inf)
    probs = torch.softmax(logits, dim=-1).nan_to_num(0.0)
    out = torch.einsum("bhgt,bhtd->bhgd", probs, v_cache.float())
    return out.reshape(B, hkv * G, D).to(q.dtype)


def decode_step(q, k_new, k_cache, v_cache, ksum, seq_lens, pos: int, block_size: int, top_k: int,
                sink_blocks: int = 1, local_blocks: int = 1, scale: float | None = None, *,
                kmean: torch.Tensor | None = None, fused: bool = True):
    """One whole decode step (mean scorer): update_summaries of the new key k_new [B, Hkv, 1, D] at
    position pos, select_blocks, sparse_decode. Returns (out [B, Hq, D], idx [B, Hkv, top_k]).
    `fused` is accepted for signature parity with the kernels (the reference has nothing to fuse)."""
    update_summaries(ksum, None, None, k_new, pos, block_size, seq_lens=seq_lens, kmean=kmean)
    idx = select_blocks(q, ksum, seq_lens, block_size, top_k, sink_blocks, local_blocks)
    scale = k_cache.shape[-1] ** -0.5 if scale is None else scale
    return sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale), idx


# ----------------------------------------------------------------------------------------------
# the scorer family at batch 1
# ----------------------------------------------------------------------------------------------
# Block scorers for MSA decode at batch 1, and the exact-attention oracle they are measured against.
#
# Each decode step, each KV-head group picks `top_k` blocks of `block_size` cached tokens (sink and local
# blocks forced) by a score per block computed from small per-block key summaries (fp32, beside the cache):
# ksum / kmin / kmax [1, Hkv, NB_cap, D] = per-block sum / per-dimension min / max of the keys.
#
# Scorers (registry `SCORERS`, each: (qg [Hkv, G, D] fp32, summaries, scale) -> scores [Hkv, nb] fp32):
#   mean         sum over the group's heads of q . (block mean key)
#   minmax       sum over the group's heads of the Quest bound max_{k in block} q.k <= sum_d max(q_d kmin_d, q_d kmax_d)
#   minmax-mass  estimated attention mass: per head, softmax over blocks of scale * bound, summed over the group's
#                heads. Unlike the raw sum of bounds, one head with large logits cannot out-vote the others, and a
#                block scores by how much of each head's softmax it would take (the attention mass it would carry).
#   mean-mass    the same with mean-key logits.
#   hybrid       the same with the midpoint of the mean-key logit and the Quest bound (interpA-mass with A = 0.5;
#                interpA / interpA-mass for A in 0.25, 0.5, 0.75 are kept for the benchmarks). Measured best of
#                these at equal budget (benchmarks/RESULTS.md, "Fidelity (round 2)").
#
# `select_blocks_b1` has the signature of the engine's batch-1 selection (m3analyst.kernels.msa.eager.select_blocks_b1)
# plus `scale` (the attention scaling; default D ** -0.5). `select_rerank` is the two-stage selection: candidates
# by a scorer, then exact attention mass over the candidates' keys (the recommended selection; needs the layer's
# key cache). `block_mass` / `select_oracle` give the exact best blocks (true softmax mass over all keys) for
# benchmarks and tests; they read the whole key cache.


def top_stable(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best of scores [..., nb] along the last dim; equal scores go to the lower block id (so when more
    blocks are forced (+inf) than k, the lowest forced ids win, as in select_blocks and the kernels).
    topk alone leaves ties unspecified; a stable descending sort does not (nb is small: at most S/block_size)."""
    vals, idx = scores.sort(dim=-1, descending=True, stable=True)
    return vals[..., :k], idx[..., :k]




@dataclass(frozen=True)
class Summaries:
    """Per-block key summaries of one sequence's valid blocks: [Hkv, nb, D] fp32 (kmin/kmax may be None)."""

    ksum: torch.Tensor
    kmin: torch.Tensor | None
    kmax: torch.Tensor | None
    counts: torch.Tensor  # [nb] tokens per block (the last block may be partial)


def bound_logits(qg: torch.Tensor, s: Summaries) -> torch.Tensor:
    """Quest upper bound of q.k over each block, per head: [Hkv, G, nb]."""
    lo = torch.matmul(qg.clamp(max=0), s.kmin.transpose(1, 2))  # [Hkv, G, nb]
    hi = torch.matmul(qg.clamp(min=0), s.kmax.transpose(1, 2))
    return lo + hi


def mean_logits(qg: torch.Tensor, s: Summaries) -> torch.Tensor:
    """q . (mean key of each block), per head: [Hkv, G, nb]."""
    return torch.matmul(qg, s.ksum.transpose(1, 2)) / s.counts


def _mass(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-head softmax over blocks of scale * logits, summed over the group's heads: [Hkv, nb]."""
    return torch.softmax(logits * scale, dim=-1).sum(1)


def interp_logits(qg: torch.Tensor, s: Summaries, alpha: float) -> torch.Tensor:
    """mean logit + alpha * (Quest bound - mean logit), per head: [Hkv, G, nb]."""
    m = mean_logits(qg, s)
    return m + alpha * (bound_logits(qg, s) - m)


SCORERS: dict[str, Callable[[torch.Tensor, Summaries, float], torch.Tensor]] = {
    "mean": lambda qg, s, scale: mean_logits(qg, s).sum(1),
    "minmax": lambda qg, s, scale: bound_logits(qg, s).sum(1),
    "minmax-mass": lambda qg, s, scale: _mass(bound_logits(qg, s), scale),
    "mean-mass": lambda qg, s, scale: _mass(mean_logits(qg, s), scale),
}
SCORERS["hybrid"] = lambda qg, s, scale: _mass(interp_logits(qg, s, 0.5), scale)  # = "interp0.5-mass"
for _a in (0.25, 0.5, 0.75):  # the family hybrid belongs to (kept for the benchmarks)
    SCORERS[f"interp{_a}-mass"] = lambda qg, s, scale, a=_a: _mass(interp_logits(qg, s, a), scale)
    SCORERS[f"interp{_a}"] = lambda qg, s, scale, a=_a: interp_logits(qg, s, a).sum(1)


def pick_blocks(scores: torch.Tensor, top_k: int, sink_blocks: int, local_blocks: int) -> torch.Tensor:
    """Top-k block ids per group from scores [Hkv, nb] with sink/local forced: idx [1, Hkv, top_k] ascending int64.

    Needs nb > top_k (every slot valid). Ties go to the lower block id (top_stable), as in select_blocks.
    """
    nb = scores.shape[-1]
    scores = scores.clone()
    scores[:, :sink_blocks] = math.inf
    if local_blocks:
        scores[:, nb - local_blocks :] = math.inf
    return top_stable(scores, top_k)[1].sort(dim=-1).values.unsqueeze(0)


def summaries(ksum, kmin, kmax, seq_len: int, block_size: int) -> Summaries:
    """The valid blocks' summaries of batch row 0 (views, fp32)."""
    nb = -(-seq_len // block_size)
    counts = torch.full((nb,), float(block_size))
    counts[-1] = seq_len - (nb - 1) * block_size
    cut = lambda t: None if t is None else t[0, :, :nb].float()  # noqa: E731
    return Summaries(cut(ksum), cut(kmin), cut(kmax), counts.to(ksum.device))


def select_blocks_b1(q, ksum, seq_len: int, block_size: int, top_k: int, sink_blocks: int, local_blocks: int,
                     scorer: str = "minmax-mass", kmin=None, kmax=None, scale: float | None = None) -> torch.Tensor:
    """idx [1, Hkv, top_k] int64 ascending for one sequence with more than top_k valid blocks.

    q [1, Hq, D] (any float dtype); ksum/kmin/kmax [1, Hkv, NB_cap, D] fp32; scale: the attention scaling
    (only the *-mass scorers use it; default D ** -0.5).
    """
    hkv, D = ksum.shape[1], ksum.shape[3]
    qg = q[0].float().view(hkv, -1, D)
    scores = SCORERS[scorer](qg, summaries(ksum, kmin, kmax, seq_len, block_size), D ** -0.5 if scale is None else scale)
    return pick_blocks(scores, top_k, sink_blocks, local_blocks)


# ----------------------------------------------------------------------------------------------
# oracle (reads all keys: for measurement only)
# ----------------------------------------------------------------------------------------------
def block_mass(q, keys, seq_len: int, block_size: int, scale: float) -> torch.Tensor:
    """True attention mass per block, summed over each group's heads: [Hkv, nb] fp32 (each head's row sums to 1).

    q [1, Hq, D]; keys [1, Hkv, S_cap, D] (positions >= seq_len ignored).
    """
    hkv, D = keys.shape[1], keys.shape[3]
    nb = -(-seq_len // block_size)
    qg = q[0].float().view(hkv, -1, D)
    probs = torch.softmax(torch.matmul(qg, keys[0, :, :seq_len].float().transpose(1, 2)) * scale, dim=-1)  # [Hkv,G,S]
    probs = torch.nn.functional.pad(probs, (0, nb * block_size - seq_len))
    return probs.view(hkv, -1, nb, block_size).sum((1, 3))


def select_oracle(q, keys, seq_len: int, block_size: int, top_k: int, sink_blocks: int, local_blocks: int,
                  scale: float) -> torch.Tensor:
    """The top_k blocks by true attention mass (sink/local forced): idx [1, Hkv, top_k] ascending."""
    return pick_blocks(block_mass(q, keys, seq_len, block_size, scale), top_k, sink_blocks, local_blocks)


# ----------------------------------------------------------------------------------------------
# two-stage selection: summaries pick candidates, exact logits over the candidates' keys pick the blocks
# ----------------------------------------------------------------------------------------------
def select_rerank(q, keys, ksum, kmin, kmax, seq_len: int, block_size: int, top_k: int, sink_blocks: int,
                  local_blocks: int, scorer: str = "interp0.5-mass", candidates: int = 2,
                  scale: float | None = None) -> torch.Tensor:
    """idx [1, Hkv, top_k] ascending: the top `candidates * top_k` blocks by `scorer` (sink/local forced), then
    the top_k of those by exact attention mass over the candidates (per head softmax of scale * q.k over the
    candidates' tokens, summed over the block and the group's heads).

    keys [1, Hkv, S_cap, D] (any S_cap >= seq_len). Reads the keys of the candidate blocks only; an engine
    can keep the candidates' logits and attend with the chosen blocks' slice of them (no second q.k).
    """
    hkv, D = ksum.shape[1], ksum.shape[3]
    scale = D ** -0.5 if scale is None else scale
    nb = -(-seq_len // block_size)
    n_cand = min(candidates * top_k, nb)
    if n_cand >= nb:
        cand = torch.arange(nb).expand(hkv, nb)
    else:
        cand = select_blocks_b1(q, ksum, seq_len, block_size, n_cand, sink_blocks, local_blocks, scorer, kmin, kmax,
                                scale=scale)[0]
    S_cap = keys.shape[2]
    nblk = -(-S_cap // block_size)
    if nblk * block_size != S_cap:  # the engine's buffers are block multiples; pad anything else once
        keys = torch.nn.functional.pad(keys, (0, 0, 0, nblk * block_size - S_cap))
    rows = (cand + torch.arange(0, hkv * nblk, nblk)[:, None]).flatten()  # candidate block rows, all groups
    kc = keys.reshape(hkv * nblk, block_size * D).index_select(0, rows).view(hkv, n_cand * block_size, D)
    qg = q[0].view(hkv, -1, D).to(kc.dtype)
    logits = torch.matmul(qg, kc.transpose(1, 2)).float().mul_(scale)  # [Hkv, G, C*bs]
    pos = (cand[..., None] * block_size + torch.arange(block_size)).flatten(1)  # [Hkv, C*bs]
    logits.masked_fill_((pos >= seq_len)[:, None, :], -math.inf)
    mass = torch.softmax(logits, -1).view(hkv, qg.shape[1], n_cand, block_size).sum((1, 3))  # [Hkv, C]
    scores = torch.full((hkv, nb), -math.inf).scatter_(1, cand, mass)
    return pick_blocks(scores, top_k, sink_blocks, local_blocks)
