"""The AMX prefill attention (kernels/attn_amx.c via ctypes) against PyTorch's causal attention.
Skipped with a reason where the CPU has no AMX (or no C compiler): the engine then keeps PyTorch's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from m3analyst.kernels import attn_amx

pytestmark = pytest.mark.skipif(attn_amx.library() is None, reason="AMX kernel not built: no AMX on this CPU, no C compiler, or M3ANALYST_CPU_KERNEL=0")


def _causal_mask(T: int, S: int) -> torch.Tensor:
    return torch.arange(S)[None, :] <= torch.arange(S - T, S)[:, None]


def _check_against_torch(q, k, v, scale, threads):
    """The kernel's output on `threads` threads is as close to an fp32 reference as PyTorch's own bf16 kernel."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = attn_amx.causal_prefill(q, k, v, scale)
    finally:
        torch.set_num_threads(before)
    mask = _causal_mask(q.shape[2], k.shape[2])
    want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=scale, enable_gqa=True)
    bf16 = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    err, err_torch = (out.float() - want).abs().max().item(), (bf16.float() - want).abs().max().item()
    assert out.shape == q.shape
    assert err <= max(2 * err_torch, 4e-3), (err, err_torch)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hq, hkv, T, S, cap", [
    (9, 3, 100, 100, 128),     # whole prompt, partial last query and key blocks
    (4, 2, 37, 200, 256),      # a chunk after a cached prefix
    (3, 3, 16, 64, 64),        # the cache ends exactly at a block: no read past it
    (8, 1, 300, 1000, 1000),   # one KV head for 8 query heads; the cache ends inside a key block
])
def test_amx_prefill_matches_causal_attention(threads, hq, hkv, T, S, cap):
    g = torch.Generator().manual_seed(hq + T)
    k = torch.randn(1, hkv, cap, 64, generator=g).bfloat16()
    v = torch.randn(1, hkv, cap, 64, generator=g).bfloat16()
    q = torch.randn(1, T, hq, 64, generator=g).bfloat16().transpose(1, 2)  # transformers' layout
    kk, vv = k[:, :, :S], v[:, :, :S]
    assert attn_amx.supports(q, kk, vv)
    _check_against_torch(q, kk, vv, 0.125, threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_amx_prefill_rescales_when_later_keys_score_higher(threads):
    """Key norms growing along the sequence: each row's running maximum is raised again and again in later
    key blocks (the kernel's lazy rescale of O and the row sums), and its softmax is sharply peaked."""
    g = torch.Generator().manual_seed(7)
    S, hq, hkv = 400, 4, 2
    growth = torch.linspace(0.2, 4.0, S)[None, None, :, None]
    k = (torch.randn(1, hkv, S, 64, generator=g) * growth).bfloat16()
    v = torch.randn(1, hkv, S, 64, generator=g).bfloat16()
    q = torch.randn(1, S, hq, 64, generator=g).bfloat16().transpose(1, 2)
    _check_against_torch(q, k, v, 0.5, threads)


def test_other_shapes_are_declined():
    q = torch.randn(1, 4, 8, 128).bfloat16()
    k = torch.randn(1, 2, 8, 128).bfloat16()
    assert not attn_amx.supports(q, k, k)
    assert not attn_amx.supports(q[..., :64].float(), k[..., :64].float(), k[..., :64].float())
