"""Weight-only int8 linear for one activation row on CPU (kernels/int8_cpu.c via ctypes).

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
    lib.int8_gemv_bf16.argtypes = [p, p, p, p, i64, i64, p]
    lib.int8_gemv_bf16.restype = ctypes.c_int


KERNEL = cbuild.Kernel(SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    return KERNEL.library()


def supports(x: torch.Tensor, weight_q: torch.Tensor, scales: torch.Tensor) -> bool:
    """One bf16 row on CPU (any leading shape of total size K), contiguous int8 weights, bf16 scales."""
    return (x.device.type == "cpu" and x.dtype == torch.bfloat16 and x.numel() == weight_q.shape[1]
            and bind(weight_q, scales, None) is not None)


def bind(weight_q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> tuple | None:
    """The fixed arguments of one linear's C call (weight, scale and bias addresses, N, K), or None when the kernel
    does not take these weights (not CPU, not contiguous, not bf16 scales/bias, or no kernel). Valid while the
    tensors stay where they are (callers re-bind when weight_q.data_ptr() changes)."""
    if not (weight_q.device.type == "cpu" and weight_q.dtype == torch.int8 and weight_q.is_contiguous()
            and scales.dtype == torch.bfloat16 and scales.is_contiguous()
            and (bias is None or (bias.dtype == torch.bfloat16 and bias.is_contiguous())) and library() is not None):
        return None
    N, K = weight_q.shape
    return (weight_q.data_ptr(), scales.data_ptr(), None if bias is None else bias.data_ptr(), N, K)


def gemv_bound(x: torch.Tensor, bound: tuple) -> torch.Tensor:
    """x: one bf16 row on CPU (shape [..., K]) -> y [..., N] bf16 = (x @ weight_q.T) * scales (+ bias), with
    bound = bind(weight_q, scales, bias). The decode step's path: ~2 µs of Python around the C loop."""
    wp, sp, bp, N, K = bound
    xc = x if x.is_contiguous() else x.contiguous()
    y = torch.empty(*x.shape[:-1], N, dtype=torch.bfloat16)
    if library().int8_gemv_bf16(xc.data_ptr(), wp, sp, bp, N, K, y.data_ptr()) != 0:
        raise MemoryError("int8_cpu: out of memory")
    return y


def gemv(x: torch.Tensor, weight_q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (K bf16 values) -> y [N] bf16 = (x @ weight_q.T) * scales (+ bias). Call when supports(...)."""
    b = None if bias is None else bias.contiguous()  # held here: the bound call keeps only its address
    return gemv_bound(x.reshape(-1), bind(weight_q, scales, b))
