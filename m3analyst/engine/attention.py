"""MSA attention for any transformers causal LM, registered through `AttentionInterface`.

The model code is untouched: `register()` adds the attention function "m3_msa" (and a mask function
of the same name that builds no mask: this function masks by position itself), and the engine loads
models with attn_implementation="m3_msa". The engine passes a `RunContext` as the `msa` keyword of
the model's forward (transformers forwards extra keywords to every attention call) and also makes it
the active context for the duration of the forward (`active(ctx)`), the fallback for a transformers
version or model class that drops extra keywords. Every call that sees the context counts itself
(`RunContext.calls`), so the engine can tell, after each forward, whether the context arrived.

Per call (query [B, Hq, T, D], key/value [B, Hkv, S, D] = the cache after appending T tokens):
  sliding-window layer (Gemma3 local, Mistral)  -> dense over the window, as trained
  T > 1 (prefill chunk)                         -> dense causal SDPA (chunk offset handled); block-sparse
                                                   (msa_ops.sparse_prefill) past settings.sparse_prefill_from
  T == 1, dense mode / dense layer / S small    -> dense SDPA over the S cached tokens
  T == 1, otherwise                             -> MSA: select_blocks on the layer's summaries, sparse_decode
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from m3analyst.engine import msa_ops
from m3analyst.errors import UsageError
from m3analyst.kernels import attn_amx
from m3analyst.settings import AttentionSettings

IMPLEMENTATION = "m3_msa"


@dataclass
class RunContext:
    """Per-run attention state and statistics, passed to the model forward as `msa=`."""

    settings: AttentionSettings
    cache: object  # MSACache
    mode: str = "msa"  # "msa" | "dense"
    track: bool = True  # record selections / attention mass
    attn_s: float = 0.0  # seconds spent inside attention calls (decode steps)
    decode_calls: int = 0
    calls: int = 0  # attention calls (any T) that received this context
    selections: list = field(default_factory=list)  # per decode step: {layer_idx: idx int32 [B, Hkv, K]}
    dense_mass: torch.Tensor | None = None  # dense mode: attention mass per cached token [S]
    observer: object = None  # optional callable(layer_idx, q [B,Hq,D], layer, idx, seq_len) on MSA steps (benchmarks)
    _step: dict | None = None

    @property
    def dense_below(self) -> int:
        s = self.settings
        return s.dense_below or s.top_k * s.block_size

    def begin_step(self) -> None:
        self._step = {}
        if self.track and self.mode == "msa":
            self.selections.append(self._step)


_ACTIVE: ContextVar[RunContext | None] = ContextVar("m3_msa_context", default=None)


@contextmanager
def active(ctx: RunContext):
    """Make ctx the context of attention calls that do not receive it as the `msa` keyword."""
    token = _ACTIVE.set(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.reset(token)


def _causal_sdpa(query, key, value, scaling, window: int | None):
    """Dense attention of the T last positions over all S keys (query i sits at position S-T+i).
    Prefill chunks on a CPU with AMX (bf16, head dim 64) take the AMX kernel (m3analyst.kernels.attn_amx)."""
    T, S = query.shape[2], key.shape[2]
    if T > 1 and window is None and attn_amx.supports(query, key, value):
        out = attn_amx.causal_prefill(query, key, value, scaling)
        if out is not None:
            return out
    if T == S and window is None:
        return F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling, enable_gqa=True)
    if T == 1 and (window is None or S <= window):
        return F.scaled_dot_product_attention(query, key, value, scale=scaling, enable_gqa=True)
    qpos = torch.arange(S - T, S, device=query.device)[:, None]
    kpos = torch.arange(S, device=query.device)[None, :]
    mask = kpos <= qpos
    if window is not None:
        mask &= kpos > qpos - window
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, enable_gqa=True)


def _sparse_prefill_applies(ctx: RunContext, layer_idx: int, query, S: int) -> bool:
    """Block-sparse prefill: MSA mode, enabled, past its threshold, a sparse layer, one sequence on CPU."""
    s = ctx.settings
    return (ctx.mode == "msa" and 0 < s.sparse_prefill_from < S and layer_idx >= s.dense_layers
            and query.shape[0] == 1 and query.device.type == "cpu")


def _dense_mass(ctx: RunContext, query, key, scaling) -> None:
    """Accumulate softmax attention mass per cached token (summed over heads) for dense-mode block hits."""
    B, hq, _, D = query.shape
    hkv = key.shape[1]
    qg = query[:, :, 0].reshape(B, hkv, hq // hkv, D)
    probs = torch.softmax(torch.matmul(qg, key.transpose(-1, -2)).float() * scaling, dim=-1)  # [B,hkv,G,S]
    mass = probs.sum((0, 1, 2))
    if ctx.dense_mass is None or ctx.dense_mass.numel() < mass.numel():
        grown = torch.zeros(mass.numel(), dtype=torch.float32, device=mass.device)
        if ctx.dense_mass is not None:
            grown[: ctx.dense_mass.numel()] = ctx.dense_mass
        ctx.dense_mass = grown
    ctx.dense_mass[: mass.numel()] += mass


def msa_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, msa: RunContext | None = None,
                  sliding_window: int | None = None, **kwargs):
    """The registered attention function. Returns (out [B, T, Hq, D], None)."""
    msa = msa if msa is not None else _ACTIVE.get()
    if msa is not None:
        msa.calls += 1
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    T, S = query.shape[2], key.shape[2]
    if query.dtype != key.dtype:  # the cache holds the decode weights' dtype; a prefill copy may compute in another
        if T > 1:  # prefill chunk: compute in the query's dtype (bf16 on AMX), cast the cached prefix
            return msa_attention(module, query, key.to(query.dtype), value.to(query.dtype), attention_mask, scaling,
                                 dropout, msa, sliding_window, **kwargs)
        out, _ = msa_attention(module, query.to(key.dtype), key, value, attention_mask, scaling, dropout, msa,
                               sliding_window, **kwargs)
        return out.to(query.dtype), None
    if msa is None or T > 1 or sliding_window is not None:
        if msa is not None and sliding_window is None and _sparse_prefill_applies(msa, module.layer_idx, query, S):
            layer = msa.cache.layers[module.layer_idx]
            out = msa_ops.sparse_prefill(query, key, value, layer, S - T, msa.settings, scaling)
        else:
            out = _causal_sdpa(query, key, value, scaling, sliding_window)
        return out.transpose(1, 2), None
    t0 = time.perf_counter()
    s = msa.settings
    layer_idx = module.layer_idx
    if msa.mode == "dense" or layer_idx < s.dense_layers or S <= msa.dense_below:
        layer = msa.cache.layers[layer_idx] if layer_idx < len(msa.cache.layers) else None
        out = msa_ops.dense_decode(query, key, value, layer, S, scaling)
        if msa.track and msa.mode == "dense":
            _dense_mass(msa, query, key, scaling)
        elif msa._step is not None and msa.track and layer_idx >= s.dense_layers:
            # short context: MSA would select every valid block; record that, so block_hits stay meaningful
            msa._step[layer_idx] = msa_ops.all_blocks(-(-S // s.block_size), s.top_k, query.shape[0], key.shape[1],
                                                      query.device)
    else:
        layer = msa.cache.layers[layer_idx]
        if layer.kmin is None and msa_ops.needs_minmax(msa_ops.resolve_scorer(s, query.device).scorer):
            raise UsageError(f"scorer {s.scorer!r} needs a cache built with min/max block summaries (prefill again)")
        q = query[:, :, 0]
        out, idx = msa_ops.decode(q, layer, S, s, scaling)
        out = out.unsqueeze(2)
        if msa._step is not None and msa.track:
            msa._step[layer_idx] = idx
        if msa.observer is not None:
            msa.observer(layer_idx, q, layer, idx, S)
    msa.attn_s += time.perf_counter() - t0
    msa.decode_calls += 1
    return out.transpose(1, 2), None


def _no_mask(*args, **kwargs):
    """Mask function for "m3_msa": none is built; msa_attention masks by position."""
    return None


_registered = False


def register() -> str:
    """Register "m3_msa" with transformers (idempotent); returns the implementation name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(IMPLEMENTATION, msa_attention)
        AttentionMaskInterface.register(IMPLEMENTATION, _no_mask)
        _registered = True
    return IMPLEMENTATION
