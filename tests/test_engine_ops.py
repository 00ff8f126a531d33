"""MSA decode ops: the engine's CPU path against the plain reference (m3analyst.kernels.msa.naive)."""

from __future__ import annotations

import math

import pytest
import torch

from m3analyst.engine import msa_ops as cpu
from m3analyst.kernels.msa import eager
from m3analyst.engine.kv_cache import MSACache
from m3analyst.kernels.msa import naive as ref

SHAPES = {  # id: (B, Hkv, G, D, block_size)
    "b1-gqa3": (1, 3, 3, 16, 8),
    "b2-mha": (2, 4, 1, 8, 4),
    "b2-gqa2": (2, 2, 2, 32, 16),
}


def _nan_filled(*shape):
    """Like torch.empty, but NaN: reads of never-written memory show up."""
    return torch.full(shape, math.nan)


def _summaries(ops, keys, chunks, block_size, nb_cap):
    B, H, _, D = keys.shape
    ksum, kmin, kmax = (_nan_filled(B, H, nb_cap, D) for _ in range(3))
    pos = 0
    for c in chunks:
        ops.update_summaries(ksum, kmin, kmax, keys[:, :, pos : pos + c], pos, block_size)
        pos += c
    return ksum, kmin, kmax


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_incremental_summaries_equal_recomputed(shape):
    B, H, G, D, bs = shape
    keys = torch.randn(B, H, 7 * bs + 3, D)
    n_valid = math.ceil(keys.shape[2] / bs)
    whole = _summaries(ref, keys, [keys.shape[2]], bs, 8)
    chunks = [bs + 1, 1, 1, 2 * bs - 1, 1] + [1] * (keys.shape[2] - 3 * bs - 3)
    assert sum(chunks) == keys.shape[2]
    inc = _summaries(eager, keys, chunks, bs, 8)
    for a, b in zip(whole, inc):
        torch.testing.assert_close(b[:, :, :n_valid], a[:, :, :n_valid], rtol=1e-5, atol=1e-5)
    mean_last = whole[0][:, :, n_valid - 1] / 3  # partial last block: 3 tokens
    torch.testing.assert_close(mean_last, keys[:, :, -3:].mean(2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scorer", ["mean", "minmax"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_select_and_decode_match_reference_ragged(shape, scorer):
    B, H, G, D, bs = shape
    torch.manual_seed(1)
    S = 9 * bs
    k, v = torch.randn(B, H, S, D), torch.randn(B, H, S, D)
    seq_lens = torch.tensor([S - 5, 3 * bs + 1][:B])  # ragged, partial last blocks
    ksum, kmin, kmax = _summaries(ref, k, [S], bs, 9)
    q = torch.randn(B, H * G, D)
    a = ref.select_blocks(q, ksum, seq_lens, bs, 5, 1, 2, scorer, kmin, kmax)
    b = eager.select_blocks(q, ksum, seq_lens, bs, 5, 1, 2, scorer, kmin, kmax)
    assert torch.equal(a, b)
    out_ref = ref.sparse_decode(q, k, v, a, seq_lens, bs, D**-0.5)
    out = eager.sparse_decode(q, k, v, b, seq_lens, bs, D**-0.5)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_top_k_covering_all_blocks_equals_dense(shape):
    B, H, G, D, bs = shape
    S = 6 * bs - 2
    k, v = torch.randn(B, H, S + 2, D), torch.randn(B, H, S + 2, D)
    seq_lens = torch.tensor([S, S - bs][:B])
    ksum, kmin, kmax = _summaries(eager, k, [S], bs, 6)
    q = torch.randn(B, H * G, D)
    idx = eager.select_blocks(q, ksum, seq_lens, bs, 8, 1, 1)
    assert (idx[..., 6:] == -1).all()
    out = eager.sparse_decode(q, k, v, idx, seq_lens, bs, 0.3)
    torch.testing.assert_close(out, ref.dense_decode(q, k, v, seq_lens, 0.3), rtol=1e-5, atol=1e-5)


def test_sink_and_local_always_selected():
    B, H, G, D, bs = 1, 2, 2, 8, 4
    S = 12 * bs
    k = torch.randn(B, H, S, D)
    k[:, :, :bs] = -5.0  # sink block: lowest scores for a positive query
    k[:, :, -2 * bs :] = -5.0  # the two local blocks too
    k[:, :, 5 * bs : 6 * bs] = 5.0  # one strong middle block
    ksum, kmin, kmax = _summaries(eager, k, [S], bs, 12)
    q = torch.ones(B, H * G, D)
    for scorer in ("mean", "minmax"):
        idx = eager.select_blocks(q, ksum, torch.tensor([S]), bs, 4, 1, 2, scorer, kmin, kmax)[0]
        for group in idx.tolist():
            assert group == sorted(group)
            assert {0, 5, 10, 11} == set(group)


def test_gqa_group_shares_one_selection():
    """All G query heads of a group read the same blocks: each head's output equals dense attention of
    that head over exactly the group's selected tokens."""
    B, H, G, D, bs = 1, 2, 3, 8, 4
    S = 10 * bs
    k, v = torch.randn(B, H, S, D), torch.randn(B, H, S, D)
    ksum, _, _ = _summaries(eager, k, [S], bs, 10)
    q = torch.randn(B, H * G, D)
    idx = eager.select_blocks(q, ksum, torch.tensor([S]), bs, 3, 1, 1)
    out = eager.sparse_decode(q, k, v, idx, torch.tensor([S]), bs, 1.0)
    for h in range(H * G):
        blocks = idx[0, h // G].tolist()
        tok = torch.cat([torch.arange(b * bs, (b + 1) * bs) for b in blocks])
        ks, vs = k[0, h // G, tok], v[0, h // G, tok]
        expect = torch.softmax(ks @ q[0, h], 0) @ vs
        torch.testing.assert_close(out[0, h], expect, rtol=1e-5, atol=1e-5)


def test_cache_summaries_incremental_and_truncate():
    """MSACache folds keys in as they are appended; truncate + re-append equals never having appended."""
    bs, D = 4, 8
    cache = MSACache(num_layers=1, capacity=8, block_size=bs)  # grows past its first capacity
    keys = torch.randn(1, 2, 30, D)
    with torch.inference_mode():
        cache.layers[0].update(keys[:, :, :13], keys[:, :, :13])
        for t in range(13, 30):
            cache.layers[0].update(keys[:, :, t : t + 1], keys[:, :, t : t + 1])
        layer = cache.layers[0]
        ksum, kmin, kmax = _summaries(ref, keys, [30], bs, 8)
        torch.testing.assert_close(layer.ksum[:, :, :8], ksum, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layer.kmax[:, :, :8], kmax)
        cache.truncate(18)
        other = torch.randn(1, 2, 5, D)
        layer.update(other, other)
        expect = _summaries(ref, torch.cat([keys[:, :, :18], other], 2), [23], bs, 6)
    torch.testing.assert_close(layer.ksum[:, :, :6], expect[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.kmin[:, :, :6], expect[1])
    assert layer.length == 23 and torch.equal(layer.keys[:, :, 18:23], other)


@pytest.mark.parametrize("scorer", ["mean", "minmax"])
@pytest.mark.parametrize("local", [1, 2])
@pytest.mark.parametrize("seq_len", [141, 144])  # partial and full last block
def test_single_sequence_fast_path_matches_reference(scorer, local, seq_len):
    hkv, G, D, bs, cap = 3, 3, 16, 8, 160
    k, v = torch.randn(1, hkv, cap, D), torch.randn(1, hkv, cap, D)
    ksum, kmin, kmax = _summaries(eager, k, [seq_len], bs, cap // bs)
    q = torch.randn(1, hkv * G, D)
    sl = torch.tensor([seq_len])
    expect = ref.select_blocks(q, ksum, sl, bs, 6, 1, local, scorer, kmin, kmax)
    idx = eager.select_blocks_b1(q, ksum, seq_len, bs, 6, 1, local, scorer, kmin, kmax)
    assert torch.equal(idx.sort(-1).values.int(), expect)  # the fast path's order: chosen, then forced
    assert (idx[..., -1] == (seq_len - 1) // bs).all()  # the block holding the newest token comes last
    out = eager.sparse_decode_b1(q, k, v, idx, seq_len, bs, 0.25)
    torch.testing.assert_close(out, ref.sparse_decode(q, k, v, expect, sl, bs, 0.25), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seq_len", [37, 34, 20])  # at capacity, inside the partial last block, before it
def test_sparse_decode_capacity_not_a_block_multiple(seq_len):
    """S_cap = k*block_size + r: the partial last block is read where it is (not clamped to the block before)."""
    B, H, G, D, bs = 2, 2, 2, 8, 8
    cap = 4 * bs + 5  # 37 tokens: 4 full blocks + a partial one
    k, v = torch.randn(B, H, cap + 3, D)[:, :, :cap], torch.randn(B, H, cap, D)  # strided view too
    seq_lens = torch.tensor([seq_len, 3 * bs + 2])
    q = torch.randn(B, H * G, D)
    idx = torch.tensor([[0, 2, 4], [1, 3, 4]], dtype=torch.int32).expand(B, H, 3).contiguous()
    idx[1, 0, 2] = -1
    out = eager.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5)
    torch.testing.assert_close(out, ref.sparse_decode(q, k, v, idx, seq_lens, bs, D**-0.5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scorer", ["mean", "minmax"])
@pytest.mark.parametrize("sink, local, top_k", [(3, 3, 4), (5, 1, 3), (1, 6, 5), (4, 4, 8)])
def test_forced_blocks_over_top_k_keep_the_lowest_ids(scorer, sink, local, top_k):
    """More sink + local blocks than top_k: the lowest forced block ids win (ties -> lower id), as the reference."""
    B, H, G, D, bs = 2, 2, 2, 8, 4
    S = 12 * bs
    k = torch.randn(B, H, S, D)
    ksum, kmin, kmax = _summaries(ref, k, [S], bs, 12)
    q = torch.randn(B, H * G, D)
    seq_lens = torch.tensor([S, 9 * bs + 1])
    expect = ref.select_blocks(q, ksum, seq_lens, bs, top_k, sink, local, scorer, kmin, kmax)
    assert torch.equal(eager.select_blocks(q, ksum, seq_lens, bs, top_k, sink, local, scorer, kmin, kmax), expect)
    one = torch.tensor([S])
    expect1 = ref.select_blocks(q[:1], ksum[:1], one, bs, top_k, sink, local, scorer, kmin[:1], kmax[:1])
    got1 = eager.select_blocks_b1(q[:1], ksum[:1], S, bs, top_k, sink, local, scorer, kmin[:1], kmax[:1])
    assert torch.equal(got1.sort(-1).values.int(), expect1)


def test_equal_scores_go_to_the_lower_block_id():
    B, H, G, D, bs = 1, 1, 2, 4, 4
    k = torch.zeros(B, H, 10 * bs, D)  # every block scores 0
    ksum, kmin, kmax = _summaries(ref, k, [10 * bs], bs, 10)
    q = torch.randn(B, H * G, D)
    for scorer in ("mean", "minmax"):
        expect = ref.select_blocks(q, ksum, torch.tensor([10 * bs]), bs, 4, 1, 1, scorer, kmin, kmax)
        assert expect[0, 0].tolist() == [0, 1, 2, 9]
        assert torch.equal(eager.select_blocks(q, ksum, torch.tensor([10 * bs]), bs, 4, 1, 1, scorer, kmin, kmax), expect)
        fast = eager.select_blocks_b1(q, ksum, 10 * bs, bs, 4, 1, 1, scorer, kmin, kmax)  # ties: any 2 of blocks 1..8
        assert fast[0, 0, -2:].tolist() == [0, 9] and len(set(fast[0, 0, :2].tolist()) & set(range(1, 9))) == 2


# ---- block-sparse prefill -------------------------------------------------------------------
def _prefilled_layer(start: int, T: int, hkv=2, D=16, bs=8):
    """An MSALayer holding start+T random tokens written in two updates; returns (layer, keys, values)."""
    cache = MSACache(num_layers=1, capacity=256, block_size=bs)
    k, v = torch.randn(1, hkv, start + T, D), torch.randn(1, hkv, start + T, D)
    layer = cache.layers[0]
    with torch.inference_mode():
        if start:
            layer.update(k[:, :, :start], v[:, :, :start])
        keys, values = layer.update(k[:, :, start:], v[:, :, start:])
    return layer, keys, values


def _masked_reference(q, keys, values, visible, scale):
    """Plain attention with an explicit visibility mask [Hkv, T, S] (True = attend), GQA by repetition."""
    G = q.shape[1] // keys.shape[1]
    k, v = keys.repeat_interleave(G, 1), values.repeat_interleave(G, 1)
    logits = torch.matmul(q, k.transpose(-1, -2)) * scale
    logits = logits.masked_fill(~visible.repeat_interleave(G, 0)[None], -math.inf)
    return torch.matmul(torch.softmax(logits, -1), v)


@pytest.mark.parametrize("start, T", [(0, 200), (37, 150), (64, 64), (0, 30)])
def test_sparse_prefill_with_every_block_is_dense(start, T):
    from m3analyst.settings import AttentionSettings

    layer, keys, values = _prefilled_layer(start, T)
    q = torch.randn(1, 6, T, 16)
    s = AttentionSettings(sparse_prefill_from=40, prefill_chunk=64, prefill_top_k=100)
    with torch.inference_mode():
        out = cpu.sparse_prefill(q, keys, values, layer, start, s, 0.25)
    S = start + T
    causal = (torch.arange(S)[None, :] <= torch.arange(start, S)[:, None]).expand(2, -1, -1)
    torch.testing.assert_close(out, _masked_reference(q, keys, values, causal, 0.25), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("start, T", [(0, 200), (37, 150)])
def test_sparse_prefill_sees_its_chunk_sink_and_local_blocks_only(start, T):
    """prefill_top_k = sink + local: no block is chosen by score, so the visible set is known exactly."""
    from m3analyst.settings import AttentionSettings

    bs, chunk, frm = 8, 64, 40
    layer, keys, values = _prefilled_layer(start, T, bs=bs)
    q = torch.randn(1, 6, T, 16)
    s = AttentionSettings(sparse_prefill_from=frm, prefill_chunk=chunk, prefill_top_k=2, sink_blocks=1, local_blocks=1)
    with torch.inference_mode():
        out = cpu.sparse_prefill(q, keys, values, layer, start, s, 0.25)
    S = start + T
    visible = torch.zeros(T, S, dtype=torch.bool)
    for i, p in enumerate(range(start, S)):
        if p < max(start, frm):
            visible[i, : p + 1] = True
            continue
        a = max(p // chunk * chunk, max(start, frm))  # the chunk's first query
        a0 = a // bs * bs
        visible[i, a0 : p + 1] = True  # its own chunk, causal, from its first block
        n_past = a0 // bs
        if n_past > 2:
            visible[i, :bs] = True  # sink block
            visible[i, a0 - bs : a0] = True  # the local block before the chunk
        else:
            visible[i, :a0] = True  # few enough past blocks: all of them
    expect = _masked_reference(q, keys, values, visible.expand(2, -1, -1), 0.25)
    torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-5)


def test_chunk_block_scores_are_summed_per_query_softmax_of_bounds():
    hkv, n, D, nb = 2, 5, 8, 6
    qc, kmin = torch.randn(hkv, n, D), torch.randn(hkv, nb, D)
    kmax = kmin + torch.rand(hkv, nb, D)
    got = eager.chunk_block_scores(qc, kmin, kmax, nb, 0.5)
    expect = torch.zeros(hkv, nb)
    for h in range(hkv):
        for i in range(n):
            bound = torch.stack([torch.maximum(qc[h, i] * kmin[h, j], qc[h, i] * kmax[h, j]).sum() for j in range(nb)])
            expect[h] += torch.softmax(bound * 0.5, 0)
    torch.testing.assert_close(got, expect, rtol=1e-5, atol=1e-5)


def test_a_selector_hook_is_used_by_decode():
    """Benchmarks swap in their own batch-1 selection (kernels.msa.selector); decode must call it
    (and not the fused C kernel, which has its own selection)."""
    from m3analyst.settings import AttentionSettings

    cache = MSACache(num_layers=1, capacity=320, block_size=16)
    k = torch.randn(1, 3, 300, 16)
    seen = []

    def first_blocks(q, ksum, seq_len, block_size, top_k, *args):  # a deliberately different selection
        seen.append(seq_len)
        nb = -(-seq_len // block_size)
        return torch.cat([torch.arange(top_k - 1), torch.tensor([nb - 1])]).expand(1, 3, -1)

    with torch.inference_mode():
        cache.layers[0].update(k, k)
        from m3analyst.kernels import msa

        with msa.selector(first_blocks):
            _, idx = cpu.decode(torch.randn(1, 9, 16), cache.layers[0], 300, AttentionSettings(block_size=16, top_k=6), 0.25)
    assert seen == [300] and idx[0, 0].tolist() == [0, 1, 2, 3, 4, 18]


def test_mass_scorers_flush_a_deferred_summary_update_first(monkeypatch):
    """On CUDA the kernels defer the token's summary update into their launch: a mass scorer gets flush(state)
    before the generic path reads the summaries; the linear scorers go to the CUDA route untouched."""
    from types import SimpleNamespace

    from m3analyst.kernels import msa
    from m3analyst.settings import AttentionSettings

    calls = []
    monkeypatch.setattr(msa, "_generic_decode", lambda *a, **k: calls.append("generic") or "generic")
    monkeypatch.setattr(msa.cuda, "engine_decode", lambda *a: calls.append("fast") or "fast")
    monkeypatch.setattr(msa.cuda, "engine_flush", lambda state: calls.append("flush"))
    q = SimpleNamespace(is_cuda=True)
    assert msa.decode(q, object(), 100, AttentionSettings(scorer="minmax"), 1.0) == "fast"
    assert msa.decode(q, object(), 100, AttentionSettings(scorer="hybrid"), 1.0) == "generic"
    assert calls == ["fast", "flush", "generic"]