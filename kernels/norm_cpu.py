"""Fused RMSNorm and SiLU-gate product on CPU (kernels/norm_cpu.c via ctypes), with their PyTorch references.

`rmsnorm(x, weight, eps, mode)` and `silu_mul(gate, up)` take bf16 CPU tensors (contiguous in the last
dimension's rows) and return what the references below return, within one bf16 rounding step (the C sums
of squares and exp run in another order). `supports_*` say when a call can take the C path; the engine's
module swap (m3analyst/engine/fuse.py) falls back to the reference otherwise. Built on first use
(kernels/cbuild.py); no compiler or M3ANALYST_CPU_KERNEL=0 -> the references.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
import torch.nn.functional as F

from m3analyst.kernels import cbuild

SOURCE = Path(__file__).with_name("norm_cpu.c")


# --- references: the formulas of the transformers models, as PyTorch ops ------------------------------------
def _scaled(x: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)


def rmsnorm_ref(x: torch.Tensor, weight: torch.Tensor, eps: float, mode: int) -> torch.Tensor:
    """mode 0: weight * (x r).to(x.dtype) (Llama, Qwen, Mistral); 1: (x r (1 + weight)).to(x.dtype) (Gemma);
    2: (x r weight).to(x.dtype); r = rsqrt(mean(x^2) + eps) in fp32."""
    return RMSNORM_MODES[mode](x, weight, eps)


RMSNORM_MODES = {
    0: lambda x, w, eps: w * _scaled(x, eps).to(x.dtype),
    1: lambda x, w, eps: (_scaled(x, eps) * (1.0 + w.float())).to(x.dtype),
    2: lambda x, w, eps: (_scaled(x, eps) * w.float()).to(x.dtype),
}


def silu_mul_ref(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


# --- the C kernel -------------------------------------------------------------------------------------------
def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.rmsnorm_bf16.argtypes = [p, p, i64, i64, ctypes.c_float, ctypes.c_int, p]
    lib.rmsnorm_bf16.restype = None
    lib.silu_mul_bf16.argtypes = [p, p, i64, p]
    lib.silu_mul_bf16.restype = None


KERNEL = cbuild.Kernel(SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    return KERNEL.library()


def _bf16_cpu(*ts: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.bfloat16 and t.is_contiguous() for t in ts)


def supports_rmsnorm(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """bf16 contiguous x [..., dim] and weight [dim] on CPU, kernel built."""
    return (x.ndim >= 1 and weight.ndim == 1 and x.shape[-1] == weight.shape[0] and _bf16_cpu(x, weight)
            and library() is not None)


def supports_silu_mul(gate: torch.Tensor, up: torch.Tensor) -> bool:
    return gate.shape == up.shape and _bf16_cpu(gate, up) and library() is not None


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float, mode: int, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """RMSNorm of each row of x (see rmsnorm_ref for the modes). Call when supports_rmsnorm(x, weight)."""
    lib = lib or library()
    y = torch.empty_like(x)
    dim = x.shape[-1]
    lib.rmsnorm_bf16(x.data_ptr(), weight.data_ptr(), x.numel() // dim, dim, float(eps), int(mode), y.data_ptr())
    return y


def silu_mul(gate: torch.Tensor, up: torch.Tensor, lib: ctypes.CDLL | None = None) -> torch.Tensor:
    """silu(gate) * up. Call when supports_silu_mul(gate, up)."""
    lib = lib or library()
    y = torch.empty_like(gate)
    lib.silu_mul_bf16(gate.data_ptr(), up.data_ptr(), gate.numel(), y.data_ptr())
    return y
