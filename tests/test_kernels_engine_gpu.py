"""The engine on CUDA runs the Triton kernels and gives the same logits as on CPU (GPU only; skipped without CUDA).

Reuses the tiny random-weight models and teacher-forced decode of tests/test_engine.py.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the engine's kernel path)")


@pytest.fixture(scope="module")
def te():
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        return importlib.import_module("test_engine")
    finally:
        sys.path.pop(0)


def _engines(te, context_length=400, **attn):
    """(CPU engine, CUDA engine) over the same fp32 weights."""
    from m3analyst.engine import attention
    from m3analyst.engine.core import Engine
    from m3analyst.settings import AttentionSettings, EngineSettings
    from transformers import AutoModelForCausalLM

    cpu_model = te._models("llama")[1]
    gpu_model = AutoModelForCausalLM.from_config(te._config("llama"), attn_implementation=attention.register()).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model = gpu_model.to("cuda")
    settings = EngineSettings(attention=AttentionSettings(**attn), max_new_tokens=16)
    return tuple(Engine(m, te._tokenizer(), settings, name="tiny-llama", context_length=context_length)
                 for m in (cpu_model, gpu_model))


@pytest.mark.parametrize("n_ids, top_k", [(180, 4), (380, 32)])
def test_engine_on_cuda_uses_the_kernels_and_matches_cpu(te, n_ids, top_k):
    from m3analyst.kernels import msa

    assert msa.backend_for(torch.zeros(1, device="cuda")) == "triton"  # the CUDA route runs the Triton kernels
    ids, block_size = te._ids(n_ids, seed=2), 8
    # the same one-stage minmax selection on both (scorer "auto" would pick hybrid + rerank on CPU)
    cpu, gpu = _engines(te, block_size=block_size, top_k=top_k, dense_layers=1, dense_below=8, sink_blocks=1,
                        local_blocks=2, scorer="minmax", rerank=0)
    got_cpu, ctx_cpu = te._teacher_forced(cpu, ids, n_ids - 30)
    got_gpu, ctx_gpu = te._teacher_forced(gpu, ids, n_ids - 30)
    assert ctx_gpu.selections and set(ctx_gpu.selections[-1]) == {1, 2}  # the sparse (kernel) path ran
    # the sparse layers' last token was written into the cache by their decode launch (engine_append), the dense one's not
    assert [bool(ly.extra.get("kv_in_launch")) for ly in ctx_gpu.cache.layers] == [False, True, True]
    # the same blocks: the CPU fast path lists them by score then the forced ones, the kernels ascending
    rows = [(a[l].cpu().long().sort(-1).values, b[l].cpu().long().sort(-1).values)
            for a, b in zip(ctx_cpu.selections, ctx_gpu.selections) for l in a]
    same = sum(torch.equal(x, y) for x, y in rows)
    assert same >= 0.9 * len(rows), f"{same}/{len(rows)} identical selections"  # CPU vs GPU rounding may flip near-ties
    torch.testing.assert_close(got_gpu.cpu(), got_cpu, rtol=1e-3, atol=1e-3)


def test_engine_on_cuda_with_all_blocks_equals_dense(te):
    ids = te._ids(120)
    _, gpu = _engines(te, block_size=8, top_k=32, dense_layers=0, dense_below=8, sink_blocks=1, local_blocks=1)
    _, dense = _engines(te, backend="dense")
    got, ctx = te._teacher_forced(gpu, ids, 95)
    want, _ = te._teacher_forced(dense, ids, 95)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert ctx.selections and set(ctx.selections[-1]) == {0, 1, 2}


def test_engine_on_cuda_default_settings_run_the_kernels(te):
    """Scorer "auto" resolves to minmax on CUDA (what the kernels implement): no fallback path."""
    _, gpu = _engines(te, block_size=8, top_k=32, dense_below=8)  # the default scorer; top-K 32 of up to 48 blocks
    assert gpu.attention_settings().scorer == "minmax"
    got, ctx = te._teacher_forced(gpu, te._ids(380, seed=4), 350)
    assert torch.isfinite(got).all() and ctx.selections and (ctx.selections[-1][2] >= 0).all()


def test_engine_on_cuda_with_the_default_selection(te):
    """The shipped selection (72 blocks of 32 tokens, scorer auto = minmax on CUDA) runs the kernels past
    dense_below, every slot a valid block once there are more blocks than top-K."""
    from m3analyst.settings import AttentionSettings

    d = AttentionSettings()
    n_prefix = d.top_k * d.block_size + 200
    _, gpu = _engines(te, context_length=n_prefix + 64)
    got, ctx = te._teacher_forced(gpu, te._ids(n_prefix + 40, seed=5), n_prefix)
    assert torch.isfinite(got).all() and ctx.selections
    idx = ctx.selections[-1][2]
    assert idx.shape[-1] == d.top_k and (idx >= 0).all()


def test_engine_on_cuda_with_bf16_means_folds_the_token_into_the_launch(te, monkeypatch):
    """Mean scorer with bf16 means (M3ANALYST_MSA_MEANS=bf16, round 7): the sparse layers' decode token -- its
    key/value write and its summary update, bf16 means included -- goes into their one launch; the means stay equal
    to the fp32 sums' means (one bf16 step), and the logits match the CPU engine (same selection up to rounding)."""
    from m3analyst.kernels import msa as kmsa
    from m3analyst.kernels.msa import naive as R

    monkeypatch.setattr(kmsa.cuda, "ENGINE_MEAN_SUMMARY", "bf16")
    ids, block_size = te._ids(300, seed=6), 8
    cpu, gpu = _engines(te, block_size=block_size, top_k=8, dense_layers=1, dense_below=8, sink_blocks=1,
                        local_blocks=2, scorer="mean", rerank=0)
    got_cpu, _ = te._teacher_forced(cpu, ids, 260)
    got_gpu, ctx = te._teacher_forced(gpu, ids, 260)
    layers = ctx.cache.layers
    assert [bool(ly.extra.get("kv_in_launch")) for ly in layers] == [False, True, True]
    for ly in layers[1:]:
        assert ly.extra["fused_kmean"] and ly.extra["kmean_len"] == ly.length
        n = ly.length
        nb = -(-n // block_size)
        counts = R.block_counts(torch.full((1,), n, device="cuda"), nb, block_size).clamp(min=1).float()[:, None, :, None]
        torch.testing.assert_close(ly.extra["kmean"][:, :, :nb].float(), ly.ksum[:, :, :nb] / counts, rtol=2**-7, atol=1e-6)
    torch.testing.assert_close(got_gpu.cpu(), got_cpu, rtol=2e-2, atol=2e-2)
