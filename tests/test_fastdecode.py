"""The C decode step (kernels/layer_cpu.c, engine/fastdecode.py) against its references: the layer halves against
their plain-PyTorch formulas, and whole decode steps against the model's own modules on tiny random Llama / Qwen2
models with int8 linears and fp32 activations (the decode copy on CPUs without bf16). Skipped where no C compiler
builds the kernels (the engine then keeps the module path)."""

from __future__ import annotations

import pytest
import torch

from m3analyst.engine import quant
from m3analyst.engine.core import Engine
from m3analyst.engine.fastdecode import FastDecoder
from m3analyst.kernels import layer_cpu
from m3analyst.settings import AttentionSettings, EngineSettings

pytestmark = pytest.mark.skipif(layer_cpu.library() is None, reason="C kernels not built: no C compiler")


@pytest.fixture
def build(c_build):
    return c_build(layer_cpu.KERNEL)


def _weights(hidden=96, inter=160, hq=6, hkv=2, D=16, bias=True, seed=0) -> layer_cpu.LayerWeights:
    g = torch.Generator().manual_seed(seed)

    def lin(n, k, b):
        q, s = quant._quantize_rows(torch.randn(n, k, generator=g) * k ** -0.5)
        return layer_cpu.Int8Weights(q, s, torch.randn(n, generator=g) * 0.1 if b else None)

    lins = {"q": lin(hq * D, hidden, bias), "k": lin(hkv * D, hidden, bias), "v": lin(hkv * D, hidden, bias),
            "o": lin(hidden, hq * D, False), "gate": lin(inter, hidden, False), "up": lin(inter, hidden, False),
            "down": lin(hidden, inter, False)}
    ln = [1 + 0.1 * torch.randn(hidden, generator=g) for _ in range(2)]
    return layer_cpu.LayerWeights(lins, ln[0], ln[1], 1e-5, 1e-6, hq, hkv, D)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_layer_halves_match_reference(build, threads, bias):
    w = _weights(bias=bias)
    assert w.usable()
    sc, args = layer_cpu.Scratch(w), layer_cpu.bind_layer(w)
    torch.manual_seed(1)
    x = torch.randn(96) * 2
    ang = torch.randn(8)
    cos, sin = torch.cat([ang.cos(), ang.cos()]), torch.cat([ang.sin(), ang.sin()])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sc.x.copy_(x)
        layer_cpu.layer_in(layer_cpu.library(), args, sc, cos, sin)
        q, k, v = layer_cpu.layer_in_ref(w, x, cos, sin)
        for got, want in ((sc.q, q), (sc.k, k), (sc.v, v)):
            torch.testing.assert_close(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4)
        sc.attn.copy_(torch.randn(sc.attn.shape))
        want = layer_cpu.layer_out_ref(w, sc.attn, x)
        layer_cpu.layer_out(layer_cpu.library(), args, sc)
        torch.testing.assert_close(sc.x, want, rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(before)


def _tiny_engine(arch: str, kv_cache: str = "model", **attn) -> Engine:
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from tests.test_engine import _tokenizer  # the tiny character tokenizer of the engine tests
    from m3analyst.engine import attention

    common = dict(vocab_size=34, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  num_hidden_layers=2)
    cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](**common)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attention.register()).eval()
    quant.quantize_linears_int8(model, torch.float32)
    settings = EngineSettings(attention=AttentionSettings(**attn), max_new_tokens=16, kv_cache=kv_cache)
    return Engine(model, _tokenizer(), settings, name=f"tiny-{arch}", context_length=1024)


def _decode_logits(eng: Engine, ids: list[int], n_prefill: int, fast: bool):
    saved = eng.fast_decoder
    eng.fast_decoder = saved if fast else None
    try:
        cache = eng._new_cache(len(ids) + 4)
        ctx = eng._context(cache)
        rows = []
        with torch.inference_mode():
            eng._forward(ids[:n_prefill], cache, ctx)
            for t in ids[n_prefill:]:
                ctx.begin_step()
                rows.append(eng._forward([t], cache, ctx)[-1])
        return torch.stack(rows), ctx, cache
    finally:
        eng.fast_decoder = saved


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("attn, n_prefill", [({}, 40), ({"block_size": 8, "top_k": 4, "rerank": 2}, 300)])
def test_fast_step_matches_the_modules(arch, attn, n_prefill):
    """Dense (short context) and MSA (top_k 4 blocks of 8 over 300 tokens, with rerank) decode steps over an fp32
    cache: the C step's logits, cache contents and block selections equal the module path's within fp32 rounding."""
    eng = _tiny_engine(arch, **attn)
    assert eng.fast_decoder is not None and eng.kv_dtype is None
    assert "C kernel per layer" in eng.info()["op_paths"]["decode_step"]
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 34, (n_prefill + 6,), generator=g).tolist()
    fast, ctx_f, cache_f = _decode_logits(eng, ids, n_prefill, True)
    slow, ctx_s, cache_s = _decode_logits(eng, ids, n_prefill, False)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)
    assert ctx_f.calls == ctx_s.calls and ctx_f.decode_calls == ctx_s.decode_calls > 0
    assert len(ctx_f.selections) == len(ctx_s.selections)
    for a, b in zip(ctx_f.selections, ctx_s.selections):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for lf, ls in zip(cache_f.layers, cache_s.layers):
        n = lf.length
        assert n == ls.length == len(ids)
        torch.testing.assert_close(lf.keys[:, :, :n], ls.keys[:, :, :n], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(lf.values[:, :, :n], ls.values[:, :, :n], rtol=1e-4, atol=1e-4)
        for a, b in ((lf.ksum, ls.ksum), (lf.kmin, ls.kmin), (lf.kmax, ls.kmax)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_prefill", [40, 300])
def test_fast_step_over_a_bf16_cache(n_prefill):
    """engine.kv_cache auto under the C step: a bf16 cache. The step appends fp32 keys/values rounded to bf16 (summaries
    from the unrounded keys, as the module path's update) and attends with fp32 queries; the module path over the same
    cache rounds the queries to bf16 first, so the logits agree to that rounding."""
    eng = _tiny_engine("llama", kv_cache="auto", block_size=8, top_k=4, rerank=2)
    assert eng.kv_dtype == torch.bfloat16 and eng.info()["kv_cache"] == "bfloat16"
    g = torch.Generator().manual_seed(6)
    ids = torch.randint(3, 34, (n_prefill + 6,), generator=g).tolist()
    fast, _, cache_f = _decode_logits(eng, ids, n_prefill, True)
    slow, _, cache_s = _decode_logits(eng, ids, n_prefill, False)
    assert cache_f.layers[0].keys.dtype == torch.bfloat16
    torch.testing.assert_close(fast, slow, rtol=2e-2, atol=2e-2)
    for i, (lf, ls) in enumerate(zip(cache_f.layers, cache_s.layers)):
        tol = 1e-4 if i == 0 else 1e-2  # layer 0's keys come before any attention output: fp32 rounding apart
        torch.testing.assert_close(lf.keys.float(), ls.keys.float(), rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(lf.ksum, ls.ksum, rtol=tol, atol=tol)


def test_not_taken_without_int8_weights_or_for_other_shapes():
    eng = _tiny_engine("llama")
    from transformers import AutoModelForCausalLM

    fp32 = AutoModelForCausalLM.from_config(eng.model.config)  # nn.Linear weights: the module path
    assert FastDecoder.build(fp32) is None
    eng.fast_decoder._plans  # noqa: B018 - exists
    cache = eng._new_cache(8)
    ctx = eng._context(cache)
    assert eng.fast_decoder.step(5, 0, cache, ctx) is None  # an empty cache (no prefill): not taken, nothing written
    assert cache.length == 0
