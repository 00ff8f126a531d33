"""Weight-only int8 linears for CPU decode (one token per step is bound by reading the weights).

`quantize_linears_int8(model)` replaces every nn.Linear by `Int8Linear`: per-output-channel symmetric
int8 weights + a scale, multiplied by PyTorch's `_weight_int8pack_mm` CPU kernel (activations bf16, or fp32 on
CPUs without bf16), one row at a time by the C loop of kernels/int8_cpu.c.
A quarter of fp32's bytes per token. Used for the decode copy of the weights only; prefill keeps bf16.

On CPUs without bf16 instructions (AVX2), a model too large for fp32 (`fit_weights`, over FP32_LIMIT_BYTES of fp32
weights: a 1.5B model is 6 GB) keeps ONE copy: int8 linears with fp32 scales and activations (kernels/int8_cpu.c:
a one-row GEMV for decode, row tiles dequantized for many-row forwards into PyTorch's fp32 GEMM), the embedding
table in bf16 (looked up, then widened to fp32), norms in fp32.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from m3analyst.kernels import int8_cpu

DEQUANT_TILE_BYTES = 64 << 20  # many-row fp32 forwards dequantize at most this many bytes of weights at a time


class Int8Linear(nn.Module):
    """y = x @ (q * scale).T + bias; q int8 [N, K], scale [N] (activation dtype)."""

    def __init__(self, linear: nn.Linear, act_dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        weight_q, scale = _quantize_rows(linear.weight.detach())
        self.register_buffer("weight_q", weight_q)
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
        if x.dtype == torch.float32 and self.scales.dtype == torch.float32 and x.device.type == "cpu":
            return self._forward_f32(x)  # many rows (or no C kernel): dequantized tiles into fp32 GEMMs
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, shape[-1]).to(self.scales.dtype), self.weight_q, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)

    def _forward_f32(self, x: torch.Tensor) -> torch.Tensor:
        """fp32 activations, several rows: row tiles of the weights dequantized into PyTorch's fp32 GEMM (PyTorch's
        int8 op with fp32 inputs is several times slower than that on AVX2)."""
        rows = max(1, DEQUANT_TILE_BYTES // (4 * self.in_features))
        if rows >= self.out_features:
            return nn.functional.linear(x, int8_cpu.dequantize(self.weight_q, self.scales), self.bias)
        parts = [nn.functional.linear(x, int8_cpu.dequantize(self.weight_q, self.scales, n0, min(n0 + rows, self.out_features)),
                                      None if self.bias is None else self.bias[n0 : n0 + rows])
                 for n0 in range(0, self.out_features, rows)]
        return torch.cat(parts, dim=-1)


def _quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-row symmetric int8 of `weight` [N, K] and its fp32 scales, widened to fp32 one row tile at a time
    (a 136M-parameter output head would otherwise take several fp32 copies at once)."""
    N, K = weight.shape
    rows = max(1, DEQUANT_TILE_BYTES // (4 * K))
    q = torch.empty(N, K, dtype=torch.int8, device=weight.device)
    scale = torch.empty(N, dtype=torch.float32, device=weight.device)
    for n0 in range(0, N, rows):
        w = weight[n0 : n0 + rows].float()
        s = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        scale[n0 : n0 + rows] = s
        q[n0 : n0 + rows] = torch.round(w / s[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


class Bf16Embedding(nn.Module):
    """An embedding table stored in bf16 (half of fp32) whose rows come out in fp32."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.register_buffer("weight", embedding.weight.detach().to(torch.bfloat16))
        self.padding_idx = embedding.padding_idx
        self.num_embeddings, self.embedding_dim = self.weight.shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight).float()


def weight_bytes(model: nn.Module, bytes_per_value: int = 4) -> int:
    """The model's parameters at `bytes_per_value` each (fp32 by default), shared tensors counted once."""
    seen = {p.data_ptr(): p.numel() for p in model.parameters()}
    return sum(seen.values()) * bytes_per_value


def saved_params(hf_dir) -> int:
    """Parameters in a model folder's safetensors files (read from their headers only)."""
    from pathlib import Path

    from safetensors import safe_open

    total = 0
    for path in sorted(Path(hf_dir).glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                total += int(torch.tensor(shape).prod()) if shape else 1
    return total


def should_fit(hf_dir, device: torch.device, plan_decode: torch.dtype, plan_prefill: torch.dtype | None,
               dtype_setting: str = "auto") -> bool:
    """Load in bf16 and `fit_weights` instead of fp32: a CPU whose auto plan is fp32 throughout (no bf16
    instructions) and a model whose fp32 weights would exceed FP32_LIMIT_BYTES."""
    from m3analyst.engine.pull import FP32_LIMIT_BYTES

    if device.type != "cpu" or dtype_setting != "auto" or plan_decode != torch.float32 or plan_prefill is not None:
        return False
    return saved_params(hf_dir) * 4 > FP32_LIMIT_BYTES


def fit_weights(model: nn.Module) -> nn.Module:
    """In place, for CPUs without bf16: linears -> int8 with fp32 scales (Int8Linear), the input embedding -> bf16
    storage widened to fp32 on lookup, every other floating parameter and buffer -> fp32. Load the model in bf16
    first: no fp32 copy of the whole model is ever made (each linear is widened one at a time while quantized)."""
    with _one_thread(), torch.inference_mode():
        _replace_linears(model, torch.float32)
        model.set_input_embeddings(Bf16Embedding(model.get_input_embeddings()))
        for module in model.modules():
            if isinstance(module, (Int8Linear, Bf16Embedding)):
                continue
            for name, p in list(module.named_parameters(recurse=False)):
                if p.is_floating_point() and p.dtype != torch.float32:
                    setattr(module, name, nn.Parameter(p.detach().float(), requires_grad=False))
            for name, b in list(module.named_buffers(recurse=False)):
                if b.is_floating_point() and b.dtype != torch.float32:
                    module.register_buffer(name, b.float(), persistent=False)
    model.config.dtype = torch.float32
    return model


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
