"""Weight-only int8 linears with fp32 activations on CPU (kernels/int8_f32.c via ctypes).

For CPUs without bf16 instructions, where the engine keeps a large model's linears int8 (a quarter of fp32's
bytes) and computes in fp32: `gemv` for one row (decode), `dequantize` for many-row forwards (prefill), which
then multiply by PyTorch's fp32 GEMM. Built on first use (kernels/cbuild.py); unavailable -> None, and
m3analyst.engine.quant falls back to PyTorch ops.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from m3analyst.kernels import cbuild

SOURCE = Path(__file__).with_name("int8_f32.c")


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.int8_gemv_f32.argtypes = [p, p, p, p, i64, i64, p]
    lib.int8_gemv_f32.restype = ctypes.c_int
    lib.int8_dequant_f32.argtypes = [p, p, i64, i64, i64, p]
    lib.int8_dequant_f32.restype = None


KERNEL = cbuild.Kernel(SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    return KERNEL.library()


def _usable(*tensors: torch.Tensor) -> bool:
    return library() is not None and all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)


def gemv(x: torch.Tensor, weight_q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """x: one fp32 row ([..., K]) -> y [..., N] fp32 = (x @ weight_q.T) * scales (+ bias); None without the kernel."""
    N, K = weight_q.shape
    xc = x.contiguous()
    if not _usable(xc, weight_q, scales) or xc.dtype != torch.float32 or xc.numel() != K:
        return None
    y = torch.empty(*x.shape[:-1], N, dtype=torch.float32)
    library().int8_gemv_f32(xc.data_ptr(), weight_q.data_ptr(), scales.data_ptr(),
                            None if bias is None else bias.data_ptr(), N, K, y.data_ptr())
    return y


def dequantize(weight_q: torch.Tensor, scales: torch.Tensor, n0: int = 0, n1: int | None = None) -> torch.Tensor:
    """Rows [n0, n1) of weight_q * scales[:, None] as fp32 (PyTorch ops without the kernel)."""
    N, K = weight_q.shape
    n1 = N if n1 is None else n1
    if not _usable(weight_q, scales):
        return weight_q[n0:n1].float() * scales[n0:n1, None].float()
    out = torch.empty(n1 - n0, K, dtype=torch.float32)
    library().int8_dequant_f32(weight_q.data_ptr(), scales.data_ptr(), n0, n1, K, out.data_ptr())
    return out
