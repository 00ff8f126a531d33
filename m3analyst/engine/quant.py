"""Weight-only int8 linears for CPU decode (one token per step is bound by reading the weights).

`quantize_linears_int8(model)` replaces every nn.Linear by `Int8Linear`: per-output-channel symmetric
int8 weights + a scale, multiplied by PyTorch's `_weight_int8pack_mm` CPU kernel (activations bf16, or fp32 on
CPUs without bf16), one row at a time by the C loop of kernels/int8_cpu.c.
A quarter of fp32's bytes per token. Used for the decode copy of the weights only; prefill keeps bf16.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from m3analyst.kernels import int8_cpu


class Int8Linear(nn.Module):
    """y = x @ (q * scale).T + bias; q int8 [N, K], scale [N] (activation dtype)."""

    def __init__(self, linear: nn.Linear, act_dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        self.register_buffer("weight_q", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scale.to(act_dtype))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(act_dtype), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._bound: tuple | None = None  # (weight address, int8_cpu.bind(...)): the C call's fixed arguments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.dtype == self.scales.dtype and x.numel() == self.in_features and x.device.type == "cpu":
            # one row (a decode step): the streaming C loop, its arguments bound once (re-bound if the weights move)
            bound = self._bound
            if bound is None or bound[0] != self.weight_q.data_ptr():
                bound = self._bound = (self.weight_q.data_ptr(), int8_cpu.bind(self.weight_q, self.scales, self.bias))
            if bound[1] is not None:
                return int8_cpu.gemv_bound(x, bound[1])
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, shape[-1]).to(self.scales.dtype), self.weight_q, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)


def int8_supported() -> bool:
    try:
        x = torch.zeros(1, 32, dtype=torch.bfloat16)
        torch.ops.aten._weight_int8pack_mm(x, torch.zeros(8, 32, dtype=torch.int8), torch.ones(8, dtype=torch.bfloat16))
        return True
    except (RuntimeError, AttributeError):
        return False


def quantize_linears_int8(model: nn.Module, act_dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """In place: every nn.Linear of `model` becomes an Int8Linear. Returns the model."""
    with _one_thread(), torch.inference_mode():
        _replace_linears(model, act_dtype)
    return model


def int8_copy(model: nn.Module, act_dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """A deep copy of `model` with int8 linears (the decode copy; `model` itself is left as it is)."""
    return quantize_linears_int8(copy.deepcopy(model), act_dtype)


@contextmanager
def _one_thread():
    """Run many small tensor ops on one thread: with several threads on a busy machine every op waits for
    a descheduled thread (measured: quantizing took 12 s with 2 threads under load vs ~1 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _replace_linears(model: nn.Module, act_dtype: torch.dtype) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8Linear(child, act_dtype))
        else:
            _replace_linears(child, act_dtype)
