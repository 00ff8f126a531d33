"""A Llama-shaped decoder layer's decode step in two C calls (kernels/layer_cpu.c via ctypes), with its reference.

fp32 activations and weight-only int8 linears (the decode copy on CPUs without bf16: m3analyst.engine.quant's
Int8Linear with fp32 scales). `bind_layer(...)` packs one layer's weights once; `layer_in` / `layer_out` run the
two halves of the step around attention (which the caller runs: the KV cache append and MSA or dense attention,
kernels/msa/cpu.c). `layer_in_ref` / `layer_out_ref` are the same computation as plain PyTorch ops (transformers'
LlamaDecoderLayer on one token, with dequantized weights); tests compare the two. Built on first use
(kernels/cbuild.py); no compiler -> `library()` is None and the engine keeps the module path.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from m3analyst.kernels import cbuild

SOURCE = Path(__file__).with_name("layer_cpu.c")
LINEARS = ("q", "k", "v", "o", "gate", "up", "down")


class _Lin8(ctypes.Structure):
    _fields_ = [("w", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("N", ctypes.c_int64), ("K", ctypes.c_int64)]


class _LayerW(ctypes.Structure):
    _fields_ = ([(n, _Lin8) for n in LINEARS] + [("ln1", ctypes.c_void_p), ("ln2", ctypes.c_void_p),
                                                  ("eps1", ctypes.c_float), ("eps2", ctypes.c_float)]
                + [(n, ctypes.c_int32) for n in ("hq", "hkv", "D", "hidden", "inter")])


def _declare(lib: ctypes.CDLL) -> None:
    p = ctypes.c_void_p
    lib.layer_in.argtypes = [p] * 8
    lib.layer_in.restype = None
    lib.layer_out.argtypes = [p] * 6
    lib.layer_out.restype = None
    lib.rmsnorm_f32.argtypes = [p, p, ctypes.c_int64, ctypes.c_float, p]
    lib.rmsnorm_f32.restype = None


KERNEL = cbuild.Kernel(SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    return KERNEL.library()


@dataclass
class Int8Weights:
    """One linear's int8 weight [N, K], fp32 scales [N] and optional fp32 bias [N] (contiguous, CPU)."""

    weight_q: torch.Tensor
    scales: torch.Tensor
    bias: torch.Tensor | None = None

    def usable(self) -> bool:
        ts = [self.weight_q, self.scales] + ([] if self.bias is None else [self.bias])
        return (self.weight_q.dtype == torch.int8 and self.scales.dtype == torch.float32
                and (self.bias is None or self.bias.dtype == torch.float32)
                and all(t.device.type == "cpu" and t.is_contiguous() for t in ts))

    def dequantized(self) -> torch.Tensor:
        return self.weight_q.float() * self.scales[:, None]


@dataclass
class LayerWeights:
    """What the kernel reads of one layer: the seven linears, the two norm weights (fp32) and their eps, shapes."""

    lin: dict[str, Int8Weights]
    ln1: torch.Tensor
    ln2: torch.Tensor
    eps1: float
    eps2: float
    hq: int
    hkv: int
    head_dim: int

    def usable(self) -> bool:
        return (set(self.lin) == set(LINEARS) and all(w.usable() for w in self.lin.values())
                and all(t.dtype == torch.float32 and t.is_contiguous() for t in (self.ln1, self.ln2))
                and self.head_dim % 2 == 0)


def bind_layer(w: LayerWeights) -> _LayerW:
    """The C struct of one layer (addresses of `w`'s tensors: keep `w` alive while it is used)."""
    lins = [_Lin8(x.weight_q.data_ptr(), x.scales.data_ptr(), None if x.bias is None else x.bias.data_ptr(),
                  *x.weight_q.shape) for x in (w.lin[n] for n in LINEARS)]
    return _LayerW(*lins, w.ln1.data_ptr(), w.ln2.data_ptr(), w.eps1, w.eps2, w.hq, w.hkv, w.head_dim,
                   w.ln1.shape[0], w.lin["gate"].weight_q.shape[0])


class Scratch:
    """The fp32 buffers of one decode step (reused every step): x the residual stream, h, q, k, v, attn, g, u."""

    def __init__(self, w: LayerWeights):
        hidden, inter = w.ln1.shape[0], w.lin["gate"].weight_q.shape[0]
        self.x, self.h = torch.empty(hidden), torch.empty(hidden)
        self.q, self.attn = torch.empty(1, w.hq, w.head_dim), torch.empty(1, w.hq, w.head_dim)
        self.k, self.v = torch.empty(1, w.hkv, 1, w.head_dim), torch.empty(1, w.hkv, 1, w.head_dim)
        self.g, self.u = torch.empty(inter), torch.empty(inter)


def layer_in(lib: ctypes.CDLL, args: _LayerW, s: Scratch, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """s.q, s.k, s.v from s.x (cos, sin: fp32 [head_dim] of the token's position)."""
    lib.layer_in(ctypes.byref(args), s.x.data_ptr(), cos.data_ptr(), sin.data_ptr(), s.h.data_ptr(), s.q.data_ptr(),
                 s.k.data_ptr(), s.v.data_ptr())


def layer_out(lib: ctypes.CDLL, args: _LayerW, s: Scratch) -> None:
    """s.x updated in place from s.attn (o projection, residual, norm, gated MLP, residual)."""
    lib.layer_out(ctypes.byref(args), s.attn.data_ptr(), s.x.data_ptr(), s.h.data_ptr(), s.g.data_ptr(),
                  s.u.data_ptr())


# --- reference: the same step as plain PyTorch ops ------------------------------------------------------------------
def _norm_ref(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _lin_ref(w: Int8Weights, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, w.dequantized(), w.bias)


def _rope_ref(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def layer_in_ref(w: LayerWeights, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """x [hidden] -> (q [hq, D], k [hkv, D], v [hkv, D]) as transformers' Llama attention computes them."""
    h = _norm_ref(x, w.ln1, w.eps1)
    q, k, v = (_lin_ref(w.lin[n], h) for n in "qkv")
    q, k = q.view(w.hq, w.head_dim), k.view(w.hkv, w.head_dim)
    return _rope_ref(q, cos, sin), _rope_ref(k, cos, sin), v.view(w.hkv, w.head_dim)


def layer_out_ref(w: LayerWeights, attn: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The residual stream after the layer, from its attention output attn [hq * D] and its input x [hidden]."""
    x = x + _lin_ref(w.lin["o"], attn.reshape(-1))
    h = _norm_ref(x, w.ln2, w.eps2)
    return x + _lin_ref(w.lin["down"], F.silu(_lin_ref(w.lin["gate"], h)) * _lin_ref(w.lin["up"], h))
