"""Causal prefill attention on CPU with Intel AMX (kernels/attn_amx.c via ctypes), head dim 64, bf16.

Reference: PyTorch's scaled_dot_product_attention(is_causal=True) (the engine's prefill path otherwise).
The C kernel is a flash attention over blocks of 32 keys whose two products run on AMX tiles and whose
softmax runs in AVX-512 (in base 2); probabilities are rounded to bf16 for P.V, as PyTorch's bf16 kernel does.
Built on first use (kernels/cbuild.py); no AMX (CPU, kernel or build), another head dim, dtype or a
sliding window: `supports` is False and the engine keeps PyTorch's kernel.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from m3analyst.kernels import cbuild

SOURCE = Path(__file__).with_name("attn_amx.c")
HEAD_DIM = 64


def _cpu_has_amx() -> bool:
    return {"amx_bf16", "amx_tile", "avx512_bf16"} <= cbuild.cpu_flags()


def _declare(lib: ctypes.CDLL) -> None:
    p, i, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    lib.attn_amx_prefill.argtypes = [p, i64, p, p, i64, i, i, i64, i64, i, ctypes.c_float, p, i64]
    lib.attn_amx_prefill.restype = ctypes.c_int


KERNEL = cbuild.Kernel(SOURCE, _declare, usable=_cpu_has_amx)


def library() -> ctypes.CDLL | None:
    return KERNEL.library()


def _rows_of(x: torch.Tensor) -> bool:
    """[1, H, L, D] whose rows (positions) are evenly strided with contiguous heads of D values."""
    return x.stride(-1) == 1 and x.shape[0] == 1


def supports(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> bool:
    """Batch 1 on CPU, bf16, head dim 64 for q/k/v, cache views [1, Hkv, S, 64] with rows of 64 values."""
    return (query.device.type == "cpu" and query.shape[0] == 1 and query.dtype == key.dtype == value.dtype == torch.bfloat16
            and query.shape[-1] == key.shape[-1] == value.shape[-1] == HEAD_DIM and query.shape[1] % key.shape[1] == 0
            and key.stride(2) == HEAD_DIM and value.stride(2) == HEAD_DIM and key.stride(1) == value.stride(1)
            and _rows_of(key) and _rows_of(value) and library() is not None)


def causal_prefill(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor | None:
    """query [1, Hq, T, 64] at positions S-T..S-1; key/value [1, Hkv, S, 64] -> out [1, Hq, T, 64] (a view
    of a [1, T, Hq, 64] tensor), or None when the kernel declines (e.g. AMX not granted by the OS)."""
    _, hq, T, D = query.shape
    hkv, S = key.shape[1], key.shape[2]
    qt = query.transpose(1, 2).contiguous()  # [1, T, Hq, D]: a no-op for transformers' usual layout
    out = torch.empty(1, T, hq, D, dtype=query.dtype)
    rc = library().attn_amx_prefill(qt.data_ptr(), hq * D, key.data_ptr(), value.data_ptr(), key.stride(1) // D, hq,
                                    hkv, T, S - T, D, scale, out.data_ptr(), hq * D)
    return None if rc != 0 else out.transpose(1, 2)
