"""Block scorers (m3analyst.engine.scorers) against a plain per-head, per-block loop reference on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from m3analyst.kernels.msa import naive as scorers

HKV, G, D, BS = 2, 3, 8, 4


def _case(seq_len: int, seed: int, nb_cap: int = 16):
    """q [1, Hkv*G, D]; keys [1, Hkv, nb_cap*BS, D] (zeros past seq_len); summaries built by plain loops."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, HKV * G, D, generator=g) * 2
    keys = torch.zeros(1, HKV, nb_cap * BS, D)
    keys[:, :, :seq_len] = torch.randn(1, HKV, seq_len, D, generator=g) * 2
    ksum, kmin, kmax = (torch.zeros(1, HKV, nb_cap, D) for _ in range(3))
    for h in range(HKV):
        for b in range(-(-seq_len // BS)):
            blk = keys[0, h, b * BS : min((b + 1) * BS, seq_len)]
            ksum[0, h, b], kmin[0, h, b], kmax[0, h, b] = blk.sum(0), blk.amin(0), blk.amax(0)
    return q, keys, ksum, kmin, kmax


def _ref_logits(q, keys, seq_len, h, j, b, scorer):
    """One head's block logit: the Quest bound (minmax) or q . mean key (mean), from the raw keys."""
    blk = keys[0, h, b * BS : min((b + 1) * BS, seq_len)]
    qh = q[0, h * G + j]
    bound = sum(max(float(qh[d] * blk[:, d].min()), float(qh[d] * blk[:, d].max())) for d in range(D))
    mean = float(qh @ blk.mean(0))
    scorer = "interp0.5-mass" if scorer == "hybrid" else scorer
    if scorer.startswith("interp"):
        alpha = float(scorer.removeprefix("interp").removesuffix("-mass"))
        return mean + alpha * (bound - mean)
    return bound if scorer.startswith("minmax") else mean


def _ref_scores(q, keys, seq_len, scorer, scale):
    nb = -(-seq_len // BS)
    out = torch.zeros(HKV, nb, dtype=torch.float64)
    for h in range(HKV):
        for j in range(G):
            row = torch.tensor([_ref_logits(q, keys, seq_len, h, j, b, scorer) for b in range(nb)], dtype=torch.float64)
            out[h] += torch.softmax(row * scale, 0) if scorer.endswith("-mass") or scorer == "hybrid" else row
    return out


def _ref_pick(scores, top_k, sink, local):
    """Forced blocks, then the best remaining by score (lower id on ties), ascending."""
    nb = scores.shape[-1]
    rows = []
    for h in range(scores.shape[0]):
        forced = [b for b in range(nb) if b < sink or b >= nb - local]
        rest = sorted((b for b in range(nb) if b not in forced), key=lambda b: (-float(scores[h, b]), b))
        rows.append(sorted(forced + rest[: top_k - len(forced)]))
    return torch.tensor(rows).unsqueeze(0)


@pytest.mark.parametrize("scorer", sorted(scorers.SCORERS))
@pytest.mark.parametrize("seq_len,seed", [(37, 0), (40, 1), (61, 2)])
def test_select_matches_reference(scorer, seq_len, seed):
    q, keys, ksum, kmin, kmax = _case(seq_len, seed)
    scale = D ** -0.5
    got = scorers.select_blocks_b1(q, ksum, seq_len, BS, 6, 1, 2, scorer, kmin, kmax)
    ref_scores = _ref_scores(q, keys, seq_len, scorer, scale)
    assert torch.allclose(scorers.SCORERS[scorer](q[0].view(HKV, G, D), scorers.summaries(ksum, kmin, kmax, seq_len, BS),
                                                  scale).double(), ref_scores, rtol=1e-4, atol=1e-5)
    assert got.shape == (1, HKV, 6) and got.dtype == torch.int64
    assert torch.equal(got, _ref_pick(ref_scores, 6, 1, 2))


def test_bound_is_an_upper_bound_and_tight_for_one_token():
    seq_len = 45
    q, keys, ksum, kmin, kmax = _case(seq_len, 3)
    s = scorers.summaries(ksum, kmin, kmax, seq_len, BS)
    bound = scorers.bound_logits(q[0].view(HKV, G, D), s)  # [Hkv, G, nb]
    logits = torch.einsum("hgd,hsd->hgs", q[0].view(HKV, G, D), keys[0, :, :seq_len])
    nb = -(-seq_len // BS)
    true_max = torch.stack([logits[..., b * BS : (b + 1) * BS].amax(-1) for b in range(nb)], -1)
    assert (bound >= true_max - 1e-4).all()
    assert torch.allclose(bound[..., -1], true_max[..., -1], atol=1e-4)  # last block holds one token (45 = 11*4+1)


def test_oracle_mass_and_selection():
    seq_len, scale = 50, D ** -0.5
    q, keys, *_ = _case(seq_len, 4)
    mass = scorers.block_mass(q, keys, seq_len, BS, scale)
    assert mass.shape == (HKV, 13)
    assert torch.allclose(mass.sum(-1), torch.full((HKV,), float(G)), atol=1e-5)  # each head's softmax sums to 1
    ref = torch.zeros(HKV, 13, dtype=torch.float64)
    for h in range(HKV):
        for j in range(G):
            p = torch.softmax(q[0, h * G + j].double() @ keys[0, h, :seq_len].double().T * scale, 0)
            for b in range(13):
                ref[h, b] += p[b * BS : (b + 1) * BS].sum()
    assert torch.allclose(mass.double(), ref, atol=1e-5)
    got = scorers.select_oracle(q, keys, seq_len, BS, 5, 1, 1, scale)
    assert torch.equal(got, _ref_pick(ref, 5, 1, 1))


def test_mass_scorer_is_not_dominated_by_one_head():
    """One-token blocks (bound = q.k). Head 0 has large logits and prefers block 1 by 10; heads 1-2 prefer block 2
    by 4 each: the raw sum of bounds follows head 0 (110 vs 108), the mass estimate the two heads that would lose
    almost all their attention without block 2."""
    q = torch.tensor([[[50.0, 0.0], [0.0, 4.0], [0.0, 4.0]]])  # [1, Hq=3, D=2], one KV group
    keys = torch.tensor([[0.0, 0.0], [2.2, 0.0], [2.0, 1.0], [0.0, 0.0]]).view(1, 1, 4, 2)
    args = (q, keys.clone(), 4, 1, 3, 1, 1)
    raw = scorers.select_blocks_b1(*args, "minmax", keys.clone(), keys.clone(), scale=1.0)
    mass = scorers.select_blocks_b1(*args, "minmax-mass", keys.clone(), keys.clone(), scale=1.0)
    assert raw[0, 0].tolist() == [0, 1, 3]
    assert mass[0, 0].tolist() == [0, 2, 3]


def test_rerank_reduces_to_its_stages():
    """All blocks as candidates -> the oracle; as many candidates as top_k -> the base scorer's selection."""
    seq_len, scale = 50, D ** -0.5
    q, keys, ksum, kmin, kmax = _case(seq_len, 5)
    every = scorers.select_rerank(q, keys, ksum, kmin, kmax, seq_len, BS, 5, 1, 1, "minmax", candidates=3, scale=scale)
    assert torch.equal(every, scorers.select_oracle(q, keys, seq_len, BS, 5, 1, 1, scale))
    same = scorers.select_rerank(q, keys, ksum, kmin, kmax, seq_len, BS, 5, 1, 1, "minmax", candidates=1, scale=scale)
    assert torch.equal(same, scorers.select_blocks_b1(q, ksum, seq_len, BS, 5, 1, 1, "minmax", kmin, kmax))


def test_rerank_matches_reference():
    """Candidates = top 2k by the base scorer; among them, exact mass with each head's softmax over the candidates."""
    seq_len, scale, k = 61, D ** -0.5, 5
    q, keys, ksum, kmin, kmax = _case(seq_len, 6)
    cand = _ref_pick(_ref_scores(q, keys, seq_len, "interp0.5-mass", scale), 2 * k, 1, 2)[0]
    scores = torch.full((HKV, 16), -math.inf, dtype=torch.float64)
    for h in range(HKV):
        toks = [t for b in cand[h].tolist() for t in range(b * BS, min((b + 1) * BS, seq_len))]
        for j in range(G):
            p = torch.softmax(q[0, h * G + j].double() @ keys[0, h, toks].double().T * scale, 0)
            for b in cand[h].tolist():
                sel = [i for i, t in enumerate(toks) if t // BS == b]
                scores[h, b] = (0 if j == 0 else scores[h, b]) + p[sel].sum()
    got = scorers.select_rerank(q, keys, ksum, kmin, kmax, seq_len, BS, k, 1, 2, "interp0.5-mass", 2, scale)
    assert torch.equal(got, _ref_pick(scores, k, 1, 2))
