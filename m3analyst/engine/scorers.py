"""Block scorers for MSA decode at batch 1, and the exact-attention oracle they are measured against.

Each decode step, each KV-head group picks `top_k` blocks of `block_size` cached tokens (sink and local
blocks forced) by a score per block computed from small per-block key summaries (fp32, beside the cache):
ksum / kmin / kmax [1, Hkv, NB_cap, D] = per-block sum / per-dimension min / max of the keys.

Scorers (registry `SCORERS`, each: (qg [Hkv, G, D] fp32, summaries, scale) -> scores [Hkv, nb] fp32):
  mean         sum over the group's heads of q . (block mean key)
  minmax       sum over the group's heads of the Quest bound max_{k in block} q.k <= sum_d max(q_d kmin_d, q_d kmax_d)
  minmax-mass  estimated attention mass: per head, softmax over blocks of scale * bound, summed over the group's
               heads. Unlike the raw sum of bounds, one head with large logits cannot out-vote the others, and a
               block scores by how much of each head's softmax it would take (the attention mass it would carry).
  mean-mass    the same with mean-key logits.
  hybrid       the same with the midpoint of the mean-key logit and the Quest bound (interpA-mass with A = 0.5;
               interpA / interpA-mass for A in 0.25, 0.5, 0.75 are kept for the benchmarks). Measured best of
               these at equal budget (benchmarks/RESULTS.md, "Fidelity (round 2)").

`select_blocks_b1` has the signature of `m3analyst.engine.msa_ops.select_blocks_b1` (the engine's patch point)
plus `scale` (the attention scaling; default D ** -0.5). `select_rerank` is the two-stage selection: candidates
by a scorer, then exact attention mass over the candidates' keys (the recommended selection; needs the layer's
key cache). `block_mass` / `select_oracle` give the exact best blocks (true softmax mass over all keys) for
benchmarks and tests; they read the whole key cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from m3analyst.engine.msa_ops import _top  # k best, ties to the lower block id


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

    Needs nb > top_k (every slot valid). Ties go to the lower block id (stable sort), as in msa_ops.
    """
    nb = scores.shape[-1]
    scores = scores.clone()
    scores[:, :sink_blocks] = math.inf
    if local_blocks:
        scores[:, nb - local_blocks :] = math.inf
    return _top(scores, top_k)[1].sort(dim=-1).values.unsqueeze(0)


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
