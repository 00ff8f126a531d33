"""KV cache for the engine: preallocated per-layer buffers + MSA block summaries kept beside them.

`MSACache` is a transformers `Cache` whose layers (`MSALayer`) write new keys/values in place at the
current length (no concatenation per step), fold the new keys into per-block summaries
(incrementally: only the touched blocks), and hand back views of the valid prefix. Capacity grows by
doubling when needed (rare: the engine sizes it for prompt + generation budget up front).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from m3analyst.engine import msa_ops
from m3analyst.kernels.msa.state import LayerState


class MSALayer(CacheLayerMixin):
    """One layer's cache. keys/values [B, Hkv, capacity, D]; ksum/kmin/kmax fp32 [B, Hkv, capacity/bs, D].

    When keys and values have the same head dim, both live in one buffer `kv` [2, B, Hkv, capacity, D]
    (keys = kv[0], values = kv[1], each contiguous) so that the CPU decode gathers K and V blocks in one op;
    otherwise kv is None. `state` is what the kernels see of the layer (m3analyst.kernels.msa.LayerState: the
    same buffers, and `extra`, the kernels' own per-layer state), rebuilt whenever the buffers move.
    """

    is_sliding = False
    is_compileable = False
    is_croppable = True

    def __init__(self, capacity: int, block_size: int, minmax: bool = True, dtype: torch.dtype | None = None):
        super().__init__()
        self.cache_dtype = dtype  # None: the dtype of the first keys written
        self.block_size = block_size
        self.capacity = -(-max(capacity, block_size) // block_size) * block_size
        self.minmax = minmax
        self.length = 0
        self.ksum = self.kmin = self.kmax = self.kv = None
        self.extra: dict = {}
        self.state: LayerState | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        B, H, _, D = key_states.shape
        self.device, self.dtype = key_states.device, self.cache_dtype or key_states.dtype
        if value_states.shape[-1] == D:
            self.kv = key_states.new_zeros(2, B, H, self.capacity, D, dtype=self.dtype)
            self.keys, self.values = self.kv[0], self.kv[1]
        else:
            self.keys = key_states.new_zeros(B, H, self.capacity, D, dtype=self.dtype)
            self.values = value_states.new_zeros(B, H, self.capacity, value_states.shape[-1], dtype=self.dtype)
        nb = self.capacity // self.block_size
        self.ksum = torch.zeros(B, H, nb, D, device=self.device, dtype=torch.float32)
        if self.minmax:
            self.kmin = torch.zeros_like(self.ksum)
            self.kmax = torch.zeros_like(self.ksum)
        self._new_state()
        self.is_initialized = True

    def _new_state(self) -> None:
        self.state = LayerState(self.keys, self.values, self.ksum, self.kmin, self.kmax, self.block_size, self.kv,
                                self.extra)

    def _grow(self, needed: int) -> None:
        cap = self.capacity
        while cap < needed:
            cap *= 2
        pad = cap - self.capacity
        if self.kv is not None:
            self.kv = torch.nn.functional.pad(self.kv, (0, 0, 0, pad))
            self.keys, self.values = self.kv[0], self.kv[1]
        else:
            self.keys = torch.nn.functional.pad(self.keys, (0, 0, 0, pad))
            self.values = torch.nn.functional.pad(self.values, (0, 0, 0, pad))
        nb_pad = (cap - self.capacity) // self.block_size
        self.ksum = torch.nn.functional.pad(self.ksum, (0, 0, 0, nb_pad))
        if self.minmax:
            self.kmin = torch.nn.functional.pad(self.kmin, (0, 0, 0, nb_pad))
            self.kmax = torch.nn.functional.pad(self.kmax, (0, 0, 0, nb_pad))
        self.capacity = cap
        self._new_state()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append T new tokens ([B, Hkv, T, D]); return views of all valid keys/values [B, Hkv, length, D]."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, T = self.length, key_states.shape[2]
        if start + T > self.capacity:
            self._grow(start + T)
        if not (T == 1 and msa_ops.append_token(self, key_states, value_states, start)):
            self.keys[:, :, start : start + T] = key_states
            self.values[:, :, start : start + T] = value_states
            msa_ops.update_layer(self, key_states, start)
        self.length = start + T
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def truncate(self, length: int) -> None:
        """Forget tokens >= length (e.g. a session's generated suffix); the boundary block's summary is rebuilt."""
        if length >= self.length:
            return
        self.length = length
        b = length // self.block_size
        start = b * self.block_size
        if length > start:
            msa_ops.update_layer(self, self.keys[:, :, start:length], start)

    def crop(self, tokens_to_remove: int) -> None:
        self.truncate(self.length - tokens_to_remove if tokens_to_remove > 0 else -tokens_to_remove)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def get_max_cache_shape(self) -> int:  # abstract in transformers 5.0's CacheLayerMixin: no fixed maximum
        return -1

    def reset(self) -> None:
        self.length = 0


class MSACache(Cache):
    """A transformers Cache made of MSALayer, one per decoder layer."""

    def __init__(self, num_layers: int, capacity: int, block_size: int, minmax: bool = True,
                 dtype: torch.dtype | None = None):
        super().__init__(layers=[MSALayer(capacity, block_size, minmax, dtype) for _ in range(num_layers)])
        self.block_size = block_size

    @property
    def length(self) -> int:
        return self.layers[0].length

    def truncate(self, length: int) -> None:
        with torch.inference_mode():  # the buffers are inference tensors
            for layer in self.layers:
                layer.truncate(length)
