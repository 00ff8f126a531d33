"""What the MSA kernels read and write of one layer: its KV cache and block summaries (`LayerState`).

The engine's cache layer (m3analyst/engine/kv_cache.py, `MSALayer`) owns the buffers and hands the kernels this
state; the kernels never see the engine's types. Shapes: keys / values [B, Hkv, capacity, D] (when both have the
same head dim they are the two halves of `kv` [2, B, Hkv, capacity, D], so the CPU decode gathers K and V blocks
in one op); ksum / kmin / kmax fp32 [B, Hkv, capacity / block_size, D] (kmin / kmax None for the sums-only
scorers). `extra` holds backend-owned state: the C kernel's per-layer plans, the Triton path's bf16 means and the
token whose update it deferred into its next launch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(eq=False)
class LayerState:
    keys: torch.Tensor
    values: torch.Tensor
    ksum: torch.Tensor
    kmin: torch.Tensor | None
    kmax: torch.Tensor | None
    block_size: int
    kv: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]
