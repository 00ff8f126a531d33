"""The fused CPU decode kernel (kernels/msa/cpu.c via ctypes) against the plain reference (kernels/msa/naive.py).

Skipped with a reason when no C compiler is present (the engine then keeps its PyTorch path, which
tests/test_engine_ops.py covers against the same reference)."""

from __future__ import annotations

import pytest
import torch

from m3analyst.engine import msa_ops
from m3analyst.kernels.msa import cpu as msa_cpu
from m3analyst.kernels.msa import eager
from m3analyst.kernels.msa import naive as ref

pytestmark = pytest.mark.skipif(not msa_cpu.available(), reason="fused CPU kernel not built: no C compiler or M3ANALYST_CPU_KERNEL=0")


def _case(hkv, G, D, bs, cap, seq_len, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(1, hkv, cap, D, generator=g).to(dtype)
    v = torch.randn(1, hkv, cap, D, generator=g).to(dtype)
    nb_cap = -(-cap // bs)
    ksum, kmin, kmax = (torch.full((1, hkv, nb_cap, D), float("nan")) for _ in range(3))
    eager.update_summaries(ksum, kmin, kmax, k[:, :, :seq_len].float(), 0, bs)
    q = torch.randn(1, hkv * G, D, generator=g)
    return q, k, v, ksum, kmin, kmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scorer", ["minmax", "mean"])
@pytest.mark.parametrize("hkv, G, D", [(2, 1, 64), (3, 3, 64), (1, 4, 128), (2, 8, 32)])
@pytest.mark.parametrize("seq_len", [157, 160, 40])  # partial last block, full, fewer blocks than top_k
def test_fused_decode_matches_reference(dtype, scorer, hkv, G, D, seq_len):
    bs, cap, top_k = 8, 168, 7
    q, k, v, ksum, kmin, kmax = _case(hkv, G, D, bs, cap, seq_len, dtype)
    sl = torch.tensor([seq_len])
    expect = ref.select_blocks(q, ksum, sl, bs, top_k, 1, 2, scorer, kmin, kmax)
    out, idx = msa_cpu.decode_b1(q, k, v, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, scorer, 0.3)
    assert torch.equal(idx.sort(-1).values.clamp(min=-1), expect.sort(-1).values)
    want = ref.sparse_decode(q, k.float(), v.float(), expect, sl, bs, 0.3)
    torch.testing.assert_close(out, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("sink, local, top_k", [(3, 3, 4), (1, 1, 3), (0, 1, 2), (2, 0, 4)])
def test_fused_decode_forced_blocks_and_ties(sink, local, top_k):
    """Forced blocks over top_k keep the lowest ids; equal scores go to the lower block id."""
    bs, seq_len = 4, 40
    q, k, v, ksum, kmin, kmax = _case(2, 2, 8, bs, seq_len, seq_len, torch.float32, seed=1)
    for summaries in ((ksum, kmin, kmax), tuple(torch.zeros_like(t) for t in (ksum, kmin, kmax))):  # random, all ties
        for scorer in ("minmax", "mean"):
            expect = ref.select_blocks(q, summaries[0], torch.tensor([seq_len]), bs, top_k, sink, local, scorer, *summaries[1:])
            _, idx = msa_cpu.decode_b1(q, k, v, *summaries, seq_len, bs, top_k, sink, local, scorer, 0.5)
            assert torch.equal(idx.sort(-1).values, expect.sort(-1).values)


def test_fused_dense_decode_equals_sdpa():
    """dense_decode (every block kept) is exact attention over all cached tokens."""
    from m3analyst.engine.kv_cache import MSACache

    cache = MSACache(num_layers=1, capacity=256, block_size=16)
    k, v = torch.randn(1, 2, 203, 32), torch.randn(1, 2, 203, 32)
    with torch.inference_mode():
        keys, values = cache.layers[0].update(k, v)
        q = torch.randn(1, 6, 1, 32)
        got = msa_ops.dense_decode(q, keys, values, cache.layers[0], 203, 0.2)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.2, enable_gqa=True)
    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("scorer", ["minmax", "mean", "hybrid", "minmax-mass"])
def test_engine_pytorch_path_still_used_without_the_kernel(monkeypatch, scorer):
    """With the kernel unavailable, msa_ops.decode gives the same result through the PyTorch paths."""
    from m3analyst.engine.kv_cache import MSACache
    from m3analyst.settings import AttentionSettings

    cache = MSACache(num_layers=1, capacity=320, block_size=16)
    k, v = torch.randn(1, 3, 300, 64), torch.randn(1, 3, 300, 64)
    s = AttentionSettings(block_size=16, top_k=6, scorer=scorer)
    with torch.inference_mode():
        cache.layers[0].update(k, v)
        q = torch.randn(1, 9, 64)
        fused, idx_f = msa_ops.decode(q, cache.layers[0], 300, s, 0.125)
        monkeypatch.setattr(msa_cpu, "supports", lambda *a: False)
        plain, idx_p = msa_ops.decode(q, cache.layers[0], 300, s, 0.125)
    assert torch.equal(idx_f.sort(-1).values.long(), idx_p.sort(-1).values.long())
    torch.testing.assert_close(fused, plain, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("scorer, ref_name", [("minmax-mass", "minmax-mass"), ("mean-mass", "mean-mass"),
                                              ("interp-mass", "interp0.5-mass")])
@pytest.mark.parametrize("seq_len", [157, 160])
def test_fused_decode_mass_scorers_match_their_reference(scorer, ref_name, seq_len):
    """The estimated-attention-mass scorers select what m3analyst.engine.scorers (their plain version) selects."""
    from m3analyst.kernels.msa import naive as scorers

    bs, cap, top_k, scale = 8, 168, 7, 0.3
    q, k, v, ksum, kmin, kmax = _case(3, 3, 64, bs, cap, seq_len, torch.float32, seed=2)
    expect = scorers.select_blocks_b1(q, ksum, seq_len, bs, top_k, 1, 2, ref_name, kmin, kmax, scale=scale)
    out, idx = msa_cpu.decode_b1(q, k, v, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, scorer, scale, alpha=0.5)
    assert torch.equal(idx.sort(-1).values.long(), expect)
    want = ref.sparse_decode(q, k, v, expect.int(), torch.tensor([seq_len]), bs, scale)
    torch.testing.assert_close(out, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("scorer", ["hybrid", "minmax"])
@pytest.mark.parametrize("seq_len, top_k, rerank", [(300, 6, 2), (300, 6, 3), (157, 8, 2), (90, 8, 2)])
def test_fused_rerank_matches_reference(scorer, seq_len, top_k, rerank):
    """Two-stage selection (candidates by summaries, final blocks by exact mass) = scorers.select_rerank."""
    from m3analyst.kernels.msa import naive as scorers

    bs, cap, scale = 8, 304, 0.3
    q, k, v, ksum, kmin, kmax = _case(3, 3, 32, bs, cap, seq_len, torch.float32, seed=3)
    expect = scorers.select_rerank(q, k, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, scorer, rerank, scale)
    out, idx = msa_cpu.decode_b1(q, k, v, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, scorer, scale, rerank=rerank)
    assert torch.equal(idx.sort(-1).values.long(), expect)
    want = ref.sparse_decode(q, k, v, expect.int(), torch.tensor([seq_len]), bs, scale)
    torch.testing.assert_close(out, want, rtol=2e-5, atol=2e-5)


@pytest.fixture
def kernel_build(c_build):
    """This kernel as built for this CPU and as plain C (conftest.c_build)."""
    return c_build(msa_cpu.KERNEL)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rerank", [0, 2])
def test_fused_decode_bf16_queries_full_tiles_and_threads(kernel_build, threads, rerank):
    """Model-like sizes: bf16 cache, queries that are bf16 values (the vdpbf16ps path), 64-token blocks
    (full 16-key tiles and a partial last block), enough work for the KV heads to be spread over threads."""
    from m3analyst.kernels.msa import naive as scorers

    bs, top_k, seq_len, scale = 64, 8, 2000, 0.125
    q, k, v, ksum, kmin, kmax = _case(3, 3, 64, bs, 2048, seq_len, torch.bfloat16, seed=4)
    q = q.bfloat16().float()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out, idx = msa_cpu.decode_b1(q, k, v, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, "hybrid", scale,
                                     rerank=rerank)
    finally:
        torch.set_num_threads(before)
    if rerank:
        expect = scorers.select_rerank(q, k, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, "hybrid", rerank, scale)
    else:
        expect = scorers.select_blocks_b1(q, ksum, seq_len, bs, top_k, 1, 2, "hybrid", kmin, kmax, scale=scale)
    assert torch.equal(idx.sort(-1).values.long(), expect)
    want = ref.sparse_decode(q, k.float(), v.float(), expect.int(), torch.tensor([seq_len]), bs, scale)
    torch.testing.assert_close(out, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_decode_plain_loops_match(kernel_build, dtype):
    """Both builds on odd sizes (8-token blocks: tail tiles; head dim 32 and 64; group of 4)."""
    bs, cap, top_k, seq_len = 8, 168, 7, 157
    q, k, v, ksum, kmin, kmax = _case(2, 4, 32, bs, cap, seq_len, dtype, seed=5)
    sl = torch.tensor([seq_len])
    expect = ref.select_blocks(q, ksum, sl, bs, top_k, 1, 2, "minmax", kmin, kmax)
    out, idx = msa_cpu.decode_b1(q, k, v, ksum, kmin, kmax, seq_len, bs, top_k, 1, 2, "minmax", 0.3)
    assert torch.equal(idx.sort(-1).values.clamp(min=-1), expect.sort(-1).values)
    torch.testing.assert_close(out, ref.sparse_decode(q, k.float(), v.float(), expect, sl, bs, 0.3), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("minmax", [True, False])
def test_append_token_equals_the_pytorch_cache_update(dtype, minmax):
    """A decode step's token through msa_append1 (one C call) vs MSALayer.update's PyTorch path: the same keys,
    values and block summaries bit for bit, across block boundaries (a block's first token restarts them)."""
    from m3analyst.engine.kv_cache import MSALayer

    hkv, D, bs = 3, 64, 8
    g = torch.Generator().manual_seed(5)
    layers = [MSALayer(64, bs, minmax=minmax) for _ in range(2)]
    prefix_k, prefix_v = (torch.randn(1, hkv, 13, D, generator=g).to(dtype) for _ in range(2))
    for layer in layers:
        layer.update(prefix_k, prefix_v)
    for pos in range(13, 30):
        # transformers' layout: [1, T, Hkv, D] projections viewed as [1, Hkv, T, D] (not contiguous for T > 1)
        k_new = torch.randn(1, 1, hkv, D, generator=g).to(dtype).transpose(1, 2)
        v_new = torch.randn(1, 1, hkv, D, generator=g).to(dtype).transpose(1, 2)
        assert msa_cpu.append_token(layers[0].state, k_new, v_new, pos)
        layers[0].length = pos + 1
        layers[1].keys[:, :, pos : pos + 1] = k_new
        layers[1].values[:, :, pos : pos + 1] = v_new
        msa_ops.update_layer(layers[1], k_new, pos)
        layers[1].length = pos + 1
    a, b = layers
    assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values) and torch.equal(a.ksum, b.ksum)
    if minmax:
        assert torch.equal(a.kmin, b.kmin) and torch.equal(a.kmax, b.kmax)
    else:
        assert a.kmin is None


def test_append_token_declines_what_it_does_not_take():
    from m3analyst.engine.kv_cache import MSALayer

    layer = MSALayer(32, 8)
    layer.update(torch.randn(1, 2, 4, 16), torch.randn(1, 2, 4, 16))
    assert not msa_cpu.append_token(layer.state, torch.randn(1, 2, 1, 16).bfloat16(), torch.randn(1, 2, 1, 16).bfloat16(), 4)
    assert not msa_cpu.append_token(layer.state, torch.randn(1, 2, 2, 16), torch.randn(1, 2, 2, 16), 4)  # two tokens
    assert layer.length == 4 and torch.equal(layer.keys[:, :, 4:], torch.zeros(1, 2, 28, 16))
