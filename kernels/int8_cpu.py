"""Weight-only int8 linear for one activation row on CPU (kernels/int8_cpu.c via ctypes).

Activations, scales and bias in bf16 (CPUs with bf16) or fp32 (CPUs without: AVX2-only x86, most Arm), both
reading int8 weights: a quarter of fp32's bytes per decode token either way.

Reference: m3analyst.engine.quant.Int8Linear's PyTorch path (`_weight_int8pack_mm`). A decode step
multiplies one bf16 row by every int8 weight matrix of the model once, so it is bound by reading the
weights; the C loop streams them in order over PyTorch's threads (measured figures in
benchmarks/RESULTS.md). Built on first use (kernels/cbuild.py); unavailable -> the PyTorch op.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from m3analyst.kernels import cbuild

SOURCE = Path(__file__).with_name("int8_cpu.c")


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    for name in ("int8_gemv_bf16", "int8_gemv_f32"):
        getattr(lib, name).argtypes = [p, p, p, p, i64, i64, p]
        getattr(lib, name).restype = ctypes.c_int
    lib.int8_dequant_f32.argtypes = [p, p, i64, i64, i64, p]
    lib.int8_dequant_f32.restype = None


_ENTRY = {torch.bfloat16: "int8_gemv_bf16", torch.float32: "int8_gemv_f32"}


KERNEL = cbuild.Kernel(SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    return KERNEL.library()


def supports(x: torch.Tensor, weight_q: torch.Tensor, scales: torch.Tensor) -> bool:
    """One row on CPU in the scales' dtype, bf16 or fp32 (any leading shape of total size K), contiguous int8
    weights."""
    return (x.device.type == "cpu" and x.dtype == scales.dtype and x.numel() == weight_q.shape[1]
            and bind(weight_q, scales, None) is not None)


def bind(weight_q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> tuple | None:
    """The fixed arguments of one linear's C call (weight, scale and bias addresses, N, K), or None when the kernel
    does not take these weights (not CPU, not contiguous, scales/bias neither bf16 nor fp32, or no kernel). Valid
    while the tensors stay where they are (callers re-bind when weight_q.data_ptr() changes)."""
    dtype = scales.dtype
    if not (weight_q.device.type == "cpu" and weight_q.dtype == torch.int8 and weight_q.is_contiguous()
            and dtype in _ENTRY and scales.is_contiguous()
            and (bias is None or (bias.dtype == dtype and bias.is_contiguous())) and library() is not None):
        return None
    N, K = weight_q.shape
    return (weight_q.data_ptr(), scales.data_ptr(), None if bias is None else bias.data_ptr(), N, K, dtype)


def gemv_bound(x: torch.Tensor, bound: tuple) -> torch.Tensor:
    """x: one row on CPU (shape [..., K], the scales' dtype) -> y [..., N] = (x @ weight_q.T) * scales (+ bias),
    with bound = bind(weight_q, scales, bias). The decode step's path: ~2 µs of Python around the C loop."""
    wp, sp, bp, N, K, dtype = bound
    xc = x if x.is_contiguous() else x.contiguous()
    y = torch.empty(*x.shape[:-1], N, dtype=dtype)
    if getattr(library(), _ENTRY[dtype])(xc.data_ptr(), wp, sp, bp, N, K, y.data_ptr()) != 0:
        raise MemoryError("int8_cpu: out of memory")
    return y


def gemv(x: torch.Tensor, weight_q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (K values) -> y [N] = (x @ weight_q.T) * scales (+ bias), in the scales' dtype. Call when supports(...)."""
    b = None if bias is None else bias.contiguous()  # held here: the bound call keeps only its address
    return gemv_bound(x if x.dim() else x.reshape(1), bind(weight_q, scales, b))


def dequantize(weight_q: torch.Tensor, scales: torch.Tensor, n0: int = 0, n1: int | None = None) -> torch.Tensor:
    """Rows [n0, n1) of weight_q * scales[:, None] as fp32 (fp32 scales; PyTorch ops without the kernel)."""
    N, K = weight_q.shape
    n1 = N if n1 is None else n1
    usable = (library() is not None and weight_q.device.type == "cpu" and weight_q.is_contiguous()
              and scales.dtype == torch.float32 and scales.is_contiguous())
    if not usable:
        return weight_q[n0:n1].float() * scales[n0:n1, None].float()
    out = torch.empty(n1 - n0, K, dtype=torch.float32)
    library().int8_dequant_f32(weight_q.data_ptr(), scales.data_ptr(), n0, n1, K, out.data_ptr())
    return out
