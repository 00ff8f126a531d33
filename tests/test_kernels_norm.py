"""Fused RMSNorm / SiLU-gate kernels (kernels/norm_cpu.c) against their PyTorch references, and the engine's
module swap (engine/fuse.py) on tiny random-weight models. Skipped with a reason where no C compiler is
present (the swapped modules then never exist: fuse_modules swaps nothing)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from m3analyst.engine.fuse import FusedGatedMLP, FusedRMSNorm, fuse_modules
from m3analyst.kernels import norm_cpu

pytestmark = pytest.mark.skipif(norm_cpu.library() is None, reason="fused CPU kernels not built: no C compiler or M3ANALYST_CPU_KERNEL=0")


@pytest.fixture
def build(c_build):
    return c_build(norm_cpu.KERNEL)


def _bf16_steps(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """|got - want| in units of want's bf16 spacing (one step = one rounding difference)."""
    step = torch.ldexp(torch.ones_like(want.float()), torch.frexp(want.float()).exponent - 8)
    return (got.float() - want.float()).abs() / step


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", sorted(norm_cpu.RMSNORM_MODES))
@pytest.mark.parametrize("rows, dim", [(1, 576), (300, 576), (7, 64), (5, 37)])
def test_rmsnorm_matches_reference(build, threads, mode, rows, dim):
    torch.manual_seed(rows * dim + mode)
    x = (torch.randn(rows, dim) * 3).bfloat16()
    w = torch.randn(dim).bfloat16()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert norm_cpu.supports_rmsnorm(x, w)
        got = norm_cpu.rmsnorm(x, w, 1e-5, mode)
    finally:
        torch.set_num_threads(before)
    want = norm_cpu.rmsnorm_ref(x, w, 1e-5, mode)
    assert got.dtype == torch.bfloat16 and got.shape == x.shape
    # the sum of squares runs in another order: at most one rounding step apart, and rarely
    assert float(_bf16_steps(got, want).max()) <= 1.0
    assert float((got != want).float().mean()) < 0.01


def test_rmsnorm_keeps_leading_dims_and_eps(build):
    x = torch.zeros(2, 3, 64, dtype=torch.bfloat16)
    x[0, 1, 0] = 1.0
    w = torch.ones(64, dtype=torch.bfloat16)
    got = norm_cpu.rmsnorm(x, w, 0.5, 0)
    assert got.shape == (2, 3, 64)
    # row of zeros: 0 (eps keeps it finite); the one non-zero row: 1 / sqrt(1/64 + 0.5)
    assert torch.equal(got[1], torch.zeros(3, 64, dtype=torch.bfloat16))
    assert float(got[0, 1, 0]) == pytest.approx((1 / 64 + 0.5) ** -0.5, rel=2 ** -8)


@pytest.mark.parametrize("n", [1, 15, 4099, 70000])
def test_silu_mul_matches_reference(build, n):
    torch.manual_seed(n)
    g, u = (torch.randn(n) * 6).bfloat16(), torch.randn(n).bfloat16()
    got, want = norm_cpu.silu_mul(g, u), norm_cpu.silu_mul_ref(g, u)
    # exp in another formula: silu(g) may round to the neighbouring bf16 value, then times u (two roundings)
    assert float(_bf16_steps(got, want).max()) <= 2.0
    assert float((got != want).float().mean()) < 0.01


def test_unsupported_inputs_take_the_reference():
    x = torch.randn(4, 64)  # fp32
    w = torch.randn(64)
    assert not norm_cpu.supports_rmsnorm(x, w)
    norm = FusedRMSNorm(nn.Parameter(w), 1e-6, 0)
    assert torch.equal(norm(x), norm_cpu.rmsnorm_ref(x, w, 1e-6, 0))
    assert not norm_cpu.supports_silu_mul(torch.randn(4, 8).bfloat16().t(), torch.randn(8, 4).bfloat16())


# --- the module swap on tiny models ----------------------------------------------------------------------------
def _tiny(arch: str):
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=40, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, max_position_embeddings=256, num_hidden_layers=2)
    cfg = {"llama": lambda: LlamaConfig(**common), "qwen2": lambda: Qwen2Config(**common),
           "gemma3": lambda: Gemma3TextConfig(sliding_window=16, layer_types=["sliding_attention", "full_attention"],
                                              **common)}[arch]()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").eval()
    for p in model.parameters():  # norms start at 1 (or 0 for Gemma): make them distinct per channel
        if p.ndim == 1:
            p.data.normal_(1.0, 0.2)
    return model.to(torch.bfloat16)


# per arch: (norms swapped, their mode, gated MLPs swapped); Gemma3's MLP is gelu-gated: left as it is
EXPECT = {"llama": (5, 0, 2), "qwen2": (5, 0, 2), "gemma3": (4 * 2 + 2 * 2 + 1, 1, 0)}


@pytest.mark.parametrize("arch", sorted(EXPECT))
def test_fuse_modules_swaps_what_it_reproduces(arch):
    import copy

    model = _tiny(arch)
    ref = copy.deepcopy(model)
    counts = fuse_modules(model)
    n_norm, mode, n_mlp = EXPECT[arch]
    assert counts == {"rmsnorm": n_norm, "gated_mlp": n_mlp}
    norms = [m for m in model.modules() if isinstance(m, FusedRMSNorm)]
    assert len(norms) == n_norm and {m.mode for m in norms} == {mode}
    assert sum(isinstance(m, FusedGatedMLP) for m in model.modules()) == n_mlp
    ids = torch.randint(0, 40, (1, 50), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got, want = model(ids).logits.float(), ref(ids).logits.float()
    assert float((got - want).abs().max()) <= 0.05 * float(want.abs().max())
    assert float((got.argmax(-1) == want.argmax(-1)).float().mean()) >= 0.9


class _OtherNorm(nn.Module):
    """RMSNorm-shaped (one weight, an eps) but centred like a LayerNorm: no kernel formula reproduces it."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), 1e-6

    def forward(self, x):
        xf = x.float() - x.float().mean(-1, keepdim=True)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()).to(x.dtype)


def test_fuse_modules_leaves_other_formulas_alone():
    model = nn.Sequential(_OtherNorm(64), nn.LayerNorm(64)).to(torch.bfloat16)
    assert fuse_modules(model) == {"rmsnorm": 0, "gated_mlp": 0}
    assert isinstance(model[0], _OtherNorm) and isinstance(model[1], nn.LayerNorm)
