"""Fused CPU kernels inside the decoder layers: RMSNorm and the gated MLP's SiLU product.

In PyTorch eager an RMSNorm is ~8 ops and the gated MLP's activation 2, each one a pass over memory and a
few microseconds of dispatch: an 8K-token prefill of SmolLM2 spent ~1.3 s in them, a decode step ~2 ms
(61 norms). `fuse_modules(model)` swaps, in place, the modules whose output the C kernels
(m3analyst/kernels/norm_cpu.c) reproduce -- checked on probe inputs rather than by class name, so a
model whose norm or MLP computes something else keeps its own module:

  RMSNorm-like module (one 1-D weight, `variance_epsilon` or `eps`, no children) -> FusedRMSNorm when one
      of the kernel's formulas (norm_cpu.RMSNORM_MODES) gives bit-identical output on probe rows;
  gated MLP (gate_proj, up_proj, down_proj, SiLU act_fn)                         -> FusedGatedMLP when it
      matches the module's output within bf16 rounding on probe rows.

The swapped modules keep the original parameters and linears (an int8 copy made later still finds the
linears), and fall back to the PyTorch formula for inputs the kernel does not take (fp32, CUDA, strided).
The model code itself is untouched: this is a module swap, like the int8 linears (quant.py).
"""

from __future__ import annotations

import torch
from torch import nn

from m3analyst.kernels import norm_cpu

_EPS_ATTRS = ("variance_epsilon", "eps")
_PROBE_ROWS = 4


class FusedRMSNorm(nn.Module):
    def __init__(self, weight: nn.Parameter, eps: float, mode: int):
        super().__init__()
        self.weight, self.eps, self.mode = weight, float(eps), mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if norm_cpu.supports_rmsnorm(x, self.weight):
            return norm_cpu.rmsnorm(x, self.weight, self.eps, self.mode)
        return norm_cpu.rmsnorm_ref(x, self.weight, self.eps, self.mode)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.eps}, mode={self.mode}"


class FusedGatedMLP(nn.Module):
    """down_proj(silu(gate_proj(x)) * up_proj(x)) with the product in one kernel pass."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)
        if norm_cpu.supports_silu_mul(gate, up):
            return self.down_proj(norm_cpu.silu_mul(gate, up))
        return self.down_proj(norm_cpu.silu_mul_ref(gate, up))


def _norm_eps(module: nn.Module) -> float | None:
    """The eps of an RMSNorm-like module (one 1-D weight, no children, no other parameters), else None."""
    params = dict(module.named_parameters(recurse=False))
    if list(params) != ["weight"] or params["weight"].ndim != 1 or any(True for _ in module.children()):
        return None
    return next((getattr(module, a) for a in _EPS_ATTRS if isinstance(getattr(module, a, None), float)), None)


def _probe(dim: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(dim)
    return (torch.randn(_PROBE_ROWS, dim, generator=g) * 2).to(dtype)


def _norm_mode(module: nn.Module, eps: float) -> int | None:
    """The kernel formula that reproduces `module` exactly on probe rows, else None."""
    w = module.weight
    x = _probe(w.shape[0], w.dtype)
    try:
        want = module(x)
    except Exception:  # noqa: BLE001 - a module that does not take [rows, dim]: leave it alone
        return None
    return next((m for m in norm_cpu.RMSNORM_MODES if torch.equal(norm_cpu.rmsnorm_ref(x, w, eps, m), want)), None)


def _is_silu(act: object) -> bool:
    return isinstance(act, nn.SiLU) or type(act).__name__ in ("SiLUActivation", "SiLU")


def _gated_mlp_matches(module: nn.Module) -> bool:
    if not all(isinstance(getattr(module, n, None), nn.Module) for n in ("gate_proj", "up_proj", "down_proj")):
        return False
    if not _is_silu(getattr(module, "act_fn", None)):
        return False
    w = module.gate_proj.weight
    x = _probe(w.shape[1], w.dtype)
    try:
        want, got = module(x), FusedGatedMLP(module)(x)
    except Exception:  # noqa: BLE001
        return False
    return want.shape == got.shape and bool(torch.allclose(got.float(), want.float(), rtol=2e-2, atol=2e-2 * float(want.abs().max())))


def fuse_modules(model: nn.Module) -> dict[str, int]:
    """Swap matching norms and gated MLPs of `model` in place (CPU, kernel built); returns counts swapped."""
    counts = {"rmsnorm": 0, "gated_mlp": 0}
    if norm_cpu.library() is None:
        return counts
    with torch.inference_mode():
        _swap(model, counts)
    return counts


def _swap(parent: nn.Module, counts: dict[str, int]) -> None:
    for name, child in list(parent.named_children()):
        eps = _norm_eps(child)
        mode = _norm_mode(child, eps) if eps is not None else None
        if mode is not None:
            setattr(parent, name, FusedRMSNorm(child.weight, eps, mode))
            counts["rmsnorm"] += 1
        elif _gated_mlp_matches(child):
            setattr(parent, name, FusedGatedMLP(child))
            counts["gated_mlp"] += 1
        else:
            _swap(child, counts)
