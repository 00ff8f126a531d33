"""The int8 decode linear (kernels/int8_cpu.c via ctypes) against PyTorch's weight-only int8 op and
the exact fp32 product. Skipped with a reason when no C compiler is present (Int8Linear then keeps
PyTorch's `_weight_int8pack_mm`)."""

from __future__ import annotations

import pytest
import torch

from m3analyst.engine.quant import Int8Linear
from m3analyst.kernels import int8_cpu

pytestmark = pytest.mark.skipif(int8_cpu.library() is None, reason="int8 CPU kernel not built: no C compiler or M3ANALYST_CPU_KERNEL=0")


@pytest.fixture
def build(c_build):
    """This kernel as built for this CPU and as plain C (conftest.c_build)."""
    return c_build(int8_cpu.KERNEL)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N, K, bias", [(576, 576, False), (1536, 576, True), (4099, 1536, False), (7, 13, True)])
def test_int8_row_matches_fp32_product_and_torch_op(build, threads, N, K, bias):
    torch.manual_seed(N + K)
    lin = Int8Linear(torch.nn.Linear(K, N, bias=bias))
    x = torch.randn(1, 1, K).bfloat16()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert int8_cpu.supports(x, lin.weight_q, lin.scales)
        y = lin(x)
    finally:
        torch.set_num_threads(before)
    assert y.shape == (1, 1, N) and y.dtype == torch.bfloat16
    exact = (x.reshape(1, K).float() @ lin.weight_q.float().T) * lin.scales.float()
    if bias:
        exact = exact + lin.bias.float()
    # fp32 accumulation, one bf16 rounding of the result: within half a bf16 step (2^-9 relative) + fp32 noise
    torch.testing.assert_close(y.reshape(1, N).float(), exact, rtol=2 ** -8, atol=1e-3)
    if K % 32 == 0:  # PyTorch's op (the path for several rows) agrees to a bf16 step
        ref = torch.ops.aten._weight_int8pack_mm(x.reshape(1, K), lin.weight_q, lin.scales)
        if bias:
            ref = ref + lin.bias
        torch.testing.assert_close(y.reshape(1, N).float(), ref.float(), rtol=2 ** -7, atol=2e-3)


def test_several_rows_keep_the_torch_op():
    lin = Int8Linear(torch.nn.Linear(64, 32))
    x = torch.randn(3, 64).bfloat16()
    assert not int8_cpu.supports(x, lin.weight_q, lin.scales)
    assert lin(x).shape == (3, 32)


def test_bound_call_follows_weights_that_move(build):
    """Int8Linear binds the C call's weight addresses once; new weight storage (e.g. a copy loaded in place of the
    buffer) is noticed and re-bound, so the result follows the new weights."""
    torch.manual_seed(3)
    lin = Int8Linear(torch.nn.Linear(64, 48, bias=True))
    x = torch.randn(1, 1, 64).bfloat16()
    first = lin(x)
    lin.weight_q = -lin.weight_q.clone()  # new storage, negated weights
    second = lin(x)
    torch.testing.assert_close(second.float() - lin.bias.float(), -(first.float() - lin.bias.float()), rtol=2 ** -7, atol=2e-3)


@pytest.mark.parametrize("N, K, bias", [(576, 576, True), (1536, 576, False), (5, 13, True)])
def test_fp32_row_matches_fp32_product(build, N, K, bias):
    """CPUs without bf16 (AVX2-only x86, most Arm) decode through the fp32 entry point: int8 weights, fp32 x/scales."""
    torch.manual_seed(N * K)
    lin = Int8Linear(torch.nn.Linear(K, N, bias=bias), act_dtype=torch.float32)
    x = torch.randn(1, 1, K)
    assert int8_cpu.supports(x, lin.weight_q, lin.scales)
    y = lin(x)
    assert y.shape == (1, 1, N) and y.dtype == torch.float32
    exact = (x.reshape(1, K).double() @ lin.weight_q.double().T) * lin.scales.double()
    if bias:
        exact = exact + lin.bias.double()
    torch.testing.assert_close(y.reshape(1, N).double(), exact, rtol=1e-5, atol=1e-4)
    ref = torch.ops.aten._weight_int8pack_mm(x.reshape(1, K), lin.weight_q, lin.scales) if K % 32 == 0 else None
    if ref is not None:
        torch.testing.assert_close(y.reshape(1, N), ref + (lin.bias if bias else 0), rtol=1e-5, atol=1e-4)
