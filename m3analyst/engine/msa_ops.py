"""The adapter between transformers' cache and the MSA kernels: an engine cache layer (kv_cache.MSALayer) in, its
`LayerState` to m3analyst.kernels.msa out, plus what the attention settings decide before any kernel runs
(scorer "auto" per device, whether a scorer needs min/max summaries).

Every route (C kernel, PyTorch, Triton) is chosen in one place, `m3analyst.kernels.msa.decode`; shapes are
documented in m3analyst/kernels/msa/naive.py.
"""

from __future__ import annotations

import torch

from m3analyst.kernels import msa as kernels
from m3analyst.kernels.msa import eager

LINEAR_SCORERS = kernels.LINEAR_SCORERS
# scorer "auto" per device: CPU -> hybrid with rerank (fidelity round 2, RESULTS.md); CUDA -> minmax (the Triton kernels)
AUTO_SCORER = {"cpu": "hybrid", "cuda": "minmax"}
all_blocks = eager.all_blocks


def resolve_scorer(s, device) -> object:
    """AttentionSettings with scorer "auto" replaced by the device's choice (others unchanged)."""
    if s.scorer != "auto":
        return s
    return s.model_copy(update={"scorer": AUTO_SCORER.get(torch.device(device).type, "minmax")})


def needs_minmax(scorer: str) -> bool:
    """Whether a scorer reads the per-block key min/max (else the sums alone)."""
    return scorer not in ("mean", "mean-mass")


def update_layer(layer, k_new: torch.Tensor, start_pos: int) -> None:
    """Fold k_new [B, Hkv, T, D] (positions start_pos..) into the layer's block summaries."""
    kernels.update(layer.state, k_new, start_pos)


def append_token(layer, k: torch.Tensor, v: torch.Tensor, pos: int) -> bool:
    """A decode token's key/value into the layer in one kernel call where one takes it (False: not taken)."""
    return kernels.append(layer.state, k, v, pos)


def decode(q: torch.Tensor, layer, seq_len: int, s, scale: float):
    """One MSA decode step over an MSALayer (settings s: AttentionSettings) -> (out [B, Hq, D], idx)."""
    return kernels.decode(q, layer.state, seq_len, resolve_scorer(s, q.device), scale)


def dense_decode(query, key, value, layer, seq_len: int, scale: float) -> torch.Tensor:
    """Exact attention of one new token over the seq_len cached ones: query [B, Hq, 1, D] -> [B, Hq, 1, D]."""
    return kernels.dense_decode(query, key, value, None if layer is None else layer.state, seq_len, scale)


def sparse_prefill(query, key, value, layer, start: int, s, scale: float) -> torch.Tensor:
    """Block-sparse attention of a prompt chunk over the layer's cache (eager.sparse_prefill), B = 1."""
    return eager.sparse_prefill(query, key, value, layer.state, start, s, scale)
