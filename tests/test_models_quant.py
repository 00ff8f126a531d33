"""Weights that fit a CPU without bf16 (issue 20): int8 linears with fp32 activations, a bf16 embedding table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from m3analyst.engine import quant
from m3analyst.kernels import int8_cpu

TOKENIZER_FROM = Path.home() / ".cache" / "m3analyst" / "models" / "smollm2-135m-instruct" / "hf"


def _tiny_qwen2(dtype=torch.float32):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).to(dtype).eval()


def test_int8_f32_kernel_matches_dequantized_linear():
    torch.manual_seed(1)
    lin = torch.nn.Linear(96, 40)
    q, s = quant._quantize_rows(lin.weight.detach())
    w = q.float() * s[:, None]
    assert torch.equal(int8_cpu.dequantize(q, s, 3, 17), w[3:17])
    x = torch.randn(1, 1, 96)
    if int8_cpu.library() is None:
        pytest.skip("no C compiler: the PyTorch fallback is used")
    y = int8_cpu.gemv(x, q, s, lin.bias.detach())
    torch.testing.assert_close(y, torch.nn.functional.linear(x, w, lin.bias.detach()), rtol=1e-5, atol=1e-5)


def test_fp32_int8_linear_rows_and_tiles_agree(monkeypatch):
    torch.manual_seed(2)
    lin = torch.nn.Linear(32, 50)
    layer = quant.Int8Linear(lin, torch.float32)
    x = torch.randn(5, 32)
    whole = layer(x)
    monkeypatch.setattr(quant, "DEQUANT_TILE_BYTES", 4 * 32 * 7)  # 7 output rows per tile
    torch.testing.assert_close(layer(x), whole)
    torch.testing.assert_close(torch.cat([layer(x[i : i + 1]) for i in range(5)]), whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(whole, lin(x).detach(), rtol=0.05, atol=0.05)


def test_fit_weights_keeps_no_fp32_copy_and_stays_close():
    ref = _tiny_qwen2()
    ids = torch.randint(0, 300, (1, 12))
    want = ref(ids).logits
    model = _tiny_qwen2(torch.bfloat16)
    model.load_state_dict({k: v.to(torch.bfloat16) for k, v in ref.state_dict().items()})
    quant.fit_weights(model)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "Linear" not in kinds and "Int8Linear" in kinds
    emb = model.get_input_embeddings()
    assert isinstance(emb, quant.Bf16Embedding) and emb.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # norms and biases: small, fp32
    big = [b for b in model.buffers() if b.numel() >= 64 * 64 and b.dtype == torch.float32]
    assert not big  # no fp32 copy of a weight matrix survives
    got = model(ids).logits
    assert got.dtype == torch.float32
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.9
    torch.testing.assert_close(got, want, rtol=0.1, atol=0.1)


def test_should_fit_only_large_models_on_cpus_without_bf16(tmp_path, monkeypatch):
    from m3analyst.engine import pull

    model = _tiny_qwen2(torch.bfloat16)
    model.save_pretrained(tmp_path)
    cpu = torch.device("cpu")
    assert quant.saved_params(tmp_path) == sum(p.numel() for p in model.parameters())
    assert not quant.should_fit(tmp_path, cpu, torch.float32, None)  # tiny: stays fp32
    monkeypatch.setattr(pull, "FP32_LIMIT_BYTES", 1000)
    assert quant.should_fit(tmp_path, cpu, torch.float32, None)
    assert not quant.should_fit(tmp_path, cpu, torch.bfloat16, torch.bfloat16)  # a bf16 CPU keeps its plan
    assert not quant.should_fit(tmp_path, cpu, torch.float32, None, "float32")  # an explicit dtype wins


def test_fitted_model_is_cached_verified_and_equal(tmp_path, monkeypatch):
    from m3analyst.engine import fitcache, pull
    from m3analyst.engine.load import _load_hf

    monkeypatch.setenv("M3ANALYST_HOME", str(tmp_path / "home"))
    hf = tmp_path / "m" / "hf"
    tmp = tmp_path / "m" / "hf.tmp"
    _tiny_qwen2(torch.bfloat16).save_pretrained(tmp)
    if not (TOKENIZER_FROM / "tokenizer.json").is_file():
        pytest.skip("no tokenizer to borrow (pull smollm2-135m-instruct once)")
    shutil.copy(TOKENIZER_FROM / "tokenizer.json", tmp / "tokenizer.json")
    pull.finish_conversion(tmp, hf, tmp_path / "m.gguf", "abc")
    impl = "sdpa"
    calls = []
    real_fit = fitcache.fit_weights
    monkeypatch.setattr(fitcache, "fit_weights", lambda m: calls.append(1) or real_fit(m))
    first, _ = fitcache.load_fitted(hf, _load_hf, impl)
    ids = torch.randint(0, 300, (1, 9))
    want = first(ids).logits
    again, _ = fitcache.load_fitted(hf, _load_hf, impl)  # from the cache: skeleton on meta + saved tensors
    assert (fitcache.cache_dir(hf) / fitcache.WEIGHTS).is_file() and len(calls) == 2
    torch.testing.assert_close(again(ids).logits, want)
    weights = fitcache.cache_dir(hf) / fitcache.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-100:] = bytes(b ^ 0xFF for b in data[-100:])
    weights.write_bytes(bytes(data))  # same size, other bytes: rebuilt from the conversion
    rebuilt, _ = fitcache.load_fitted(hf, _load_hf, impl)
    torch.testing.assert_close(rebuilt(ids).logits, want)
