"""The CUDA route of the engine's MSA ops over a `LayerState`: the Triton launches with deferred work.

`engine_append(state, k, v, pos)` (a decode token's cache write), `engine_update(state, k_new, start_pos)` (the
summary update) and `engine_decode(q, state, seq_len, settings, scale)`: the summary update and one select +
decode launch over the layer. A decode token's 1-token summary update (fp32 sums, min/max, and the bf16 means when
the mean scorer reads them), and its key/value write into the cache, are deferred into that launch
(`engine_flush` applies them for any other reader of the cache or the summaries). The switches are the settings
engine.kernels.msa_means / msa_fold / msa_kv_fold (`configure` of the package sets them here).
"""

from __future__ import annotations

import torch

from .contract import _load, backend_for, select_blocks, sparse_decode, update_summaries
from .state import LayerState

MEAN_DTYPE = torch.bfloat16  # low-precision block means kept in layer.extra["kmean"] for the fast select
# What engine_decode scores the mean scorer from: "fp32" = the exact fp32 sums (picks identical to the
# reference; twice the bytes), "bf16" = the bf16 means kept beside them (half the bytes; picks identical to the
# reference scoring the same means, equal to the fp32 sums' up to naive.mean_score_tolerance). The means are
# kept only for "bf16". Default "bf16" since round 7 (RESULTS.md, GPU kernels round 7: inside the 8B-shaped decode
# step on the H100 the engine's attention took 10.4 vs 11.9 us/layer at 128K and 30.0 vs 36.4 at 1M, every swap
# against the fp32 picks within the rounding bound). engine.kernels.msa_means = "fp32" restores the exact picks.
ENGINE_MEAN_SUMMARY = "bf16"


def _extra(layer) -> dict:
    """The layer's backend-owned state (`LayerState.extra`), created if it has none yet."""
    extra = getattr(layer, "extra", None)
    if extra is None:
        extra = {}
        layer.extra = extra
    return extra


def _means_from_sums(ksum: torch.Tensor, length: int, block_size: int) -> torch.Tensor:
    """Block means ksum / tokens of every block below `length` tokens, as MEAN_DTYPE [B, Hkv, NB_cap, D]."""
    nb = ksum.shape[2]
    counts = (length - torch.arange(nb, device=ksum.device) * block_size).clamp(1, block_size).to(torch.float32)
    return (ksum / counts[:, None]).to(MEAN_DTYPE)


# Fold a decode token's summary update into the decode launch (one launch per layer and token, not two):
# engine_update defers the 1-token update of a layer whose previous decode took the one-launch path (so the
# next reader is engine_decode again), and engine_decode folds it in. engine.kernels.msa_fold = false turns it off.
ENGINE_FOLD = True


# Fold a decode token's key/value write into the same launch (engine_append; needs ENGINE_FOLD and a kernels
# module with the v_new argument). engine.kernels.msa_kv_fold = false turns it off.
ENGINE_KV_FOLD = True
def _write_pending_kv(layer) -> None:
    """Write a token's key/value that engine_append deferred (layer.extra["pending_kv"] = (pos, k, v)) into the
    cache now, as the cache layer's own write would have; a no-op when none is pending."""
    extra = getattr(layer, "extra", None)
    kv = extra.pop("pending_kv", None) if extra else None
    if kv is not None:
        pos, k, v = kv
        layer.keys[:, :, pos : pos + 1] = k
        layer.values[:, :, pos : pos + 1] = v


def _current_means(layer, length: int):
    """layer.extra["kmean"] if it holds the bf16 means of exactly the first `length` tokens (ksum's shape and
    device), else None."""
    extra = _extra(layer)
    km = extra.get("kmean")
    if km is not None and km.shape == layer.ksum.shape and km.device == layer.ksum.device \
            and extra.get("kmean_len") == length:
        return km
    return None


def _apply_pending(layer, pos: int) -> None:
    """The deferred update of the token at `pos` (its key is in layer.keys), as engine_update would have done it
    (the bf16 means too, when they are current up to pos; else they stay stale and are rebuilt when next needed)."""
    _write_pending_kv(layer)
    extra = _extra(layer)
    km = _current_means(layer, pos) if ENGINE_MEAN_SUMMARY == "bf16" and backend_for(layer.ksum) == "triton" else None
    kw = {} if km is None else dict(kmean=km)
    update_summaries(layer.ksum, layer.kmin, layer.kmax, layer.keys[:, :, pos : pos + 1], pos, layer.block_size, **kw)
    if km is not None:
        extra["kmean_len"] = pos + 1
    extra["clean"] = False


def engine_flush(layer: LayerState) -> None:
    """Apply a deferred cache write and 1-token summary update now. Only needed by a reader of the layer's
    keys/values or ksum/kmin/kmax other than engine_update / engine_decode (which apply or fold them
    themselves); a no-op when nothing is pending."""
    _write_pending_kv(layer)
    extra = getattr(layer, "extra", None)
    pos = extra.pop("pending", None) if extra else None
    if pos is not None:
        _apply_pending(layer, pos)


def _kernel_features() -> frozenset:
    return getattr(_load("triton"), "FEATURES", frozenset())


def _can_defer(layer, key_states: torch.Tensor, start_pos: int) -> bool:
    """Whether a 1-token summary update at start_pos may wait for the layer's next decode launch: ENGINE_FOLD on,
    the Triton backend, a layer whose previous decode took the one-launch path, and the summaries that launch will
    read kept current by it. With bf16 means (ENGINE_MEAN_SUMMARY "bf16"): if the previous launch scored them (a
    mean-scorer decode, extra["fused_kmean"]) only while they hold exactly the tokens before start_pos (the launch
    then folds the token into the fp32 sum, min/max and the bf16 mean alike; else engine_update rebuilds them); a
    layer whose decodes do not read them (minmax) defers as with fp32 sums and lets them go stale (rebuilt when a
    mean decode needs them again)."""
    extra = _extra(layer)
    if not (key_states.shape[2] == 1 and ENGINE_FOLD and extra.get("fused") and backend_for(key_states) == "triton"):
        return False
    if ENGINE_MEAN_SUMMARY != "bf16" or not extra.get("fused_kmean"):
        return True
    return _current_means(layer, start_pos) is not None and "kmean_fold" in _kernel_features()


def engine_append(layer: LayerState, key_states: torch.Tensor, value_states: torch.Tensor, pos: int) -> bool:
    """append on CUDA: a decode token's cache write (k/v [B, Hkv, 1, D] at pos) plus its summary
    update, deferred into the layer's next decode launch -- taken (True) only where that launch is certain to be
    the next reader: ENGINE_KV_FOLD on, the summary update deferrable (_can_defer: ENGINE_FOLD, fp32 summaries or
    current bf16 means), the Triton backend with the v_new argument, and a layer whose previous decode took the
    one-launch path for the token just before this one (pos == the length it decoded at, so a prompt, a truncation
    or any other path in between means no). False: the cache writes the token and calls engine_update itself."""
    extra = _extra(layer)
    if not (ENGINE_KV_FOLD and extra.get("next_pos") == pos and _can_defer(layer, key_states, pos)
            and key_states.dtype == layer.keys.dtype and value_states.dtype == layer.values.dtype
            and "v_new" in _kernel_features()):
        return False
    _write_pending_kv(layer)
    pending = extra.pop("pending", None)
    if pending is not None and pending < pos:
        _apply_pending(layer, pending)
    extra["pending"] = pos
    extra["pending_kv"] = (pos, key_states, value_states)
    return True


def engine_update(layer: LayerState, key_states: torch.Tensor, start_pos: int) -> None:
    """The engine cache's summary update on CUDA: folds key_states
    [B, Hkv, T, D] (positions start_pos..) into layer.ksum/kmin/kmax (exact fp32, as the contract keeps them)
    and, on the Triton backend, keeps bf16 block means in layer.extra["kmean"] (one launch for all of it).
    The means are rebuilt from the fp32 sums whenever they may be stale: first use, a grown cache, or
    tokens that do not continue the ones last folded here (a truncated cache, another update path).

    Deferred (ENGINE_FOLD, Triton, fp32 summaries or current bf16 means: _can_defer): a 1-token update of a layer
    whose last decode was the one-launch one is only recorded (layer.extra["pending"] = start_pos; the key is already in layer.keys);
    engine_decode folds it into its launch. A pending token before start_pos is applied here first; one at
    or after start_pos was cut off by a truncation (this update rewrites from there) and is dropped. A cache write
    deferred by engine_append is done first."""
    T = key_states.shape[2]
    extra = _extra(layer)
    _write_pending_kv(layer)
    pending = extra.pop("pending", None)
    if pending is not None and pending < start_pos:
        _apply_pending(layer, pending)
    if T > 1:
        extra["fused"] = False  # a prompt: the path of the next decode is not known yet
    if _can_defer(layer, key_states, start_pos):
        extra["pending"] = start_pos
        return
    extra["clean"] = False  # a summary kernel runs now: the next decode launch must not read them early
    if backend_for(key_states) != "triton" or ENGINE_MEAN_SUMMARY != "bf16":
        update_summaries(layer.ksum, layer.kmin, layer.kmax, key_states, start_pos, layer.block_size)
        return
    km = _current_means(layer, start_pos)
    update_summaries(layer.ksum, layer.kmin, layer.kmax, key_states, start_pos, layer.block_size,
                     **({} if km is None else dict(kmean=km)))
    if km is None:
        extra["kmean"] = _means_from_sums(layer.ksum, start_pos + T, layer.block_size)
    extra["kmean_len"] = start_pos + T


def engine_decode(q: torch.Tensor, layer: LayerState, seq_len: int, settings, scale: float):
    """The engine's MSA decode of one token on CUDA: q [B, Hq, D] over layer (a LayerState whose
    summaries hold the token, or will once its deferred update is applied or folded in here)
    -> (out [B, Hq, D] in q's dtype, idx int32 [B, Hkv, top_k]).

    Triton backend: select + attend in ONE launch (`triton_decode.select_and_decode`), which also folds in the
    token whose update engine_update deferred; scorer "minmax" reads the fp32 kmin/kmax, "mean" the fp32 sums
    (ENGINE_MEAN_SUMMARY "fp32", the default: picks identical to the reference) or the bf16 means ("bf16", when
    current; a deferred token is folded into them by the launch as into the sums); a cache write deferred by
    engine_append is done by the same launch.
    On Hopper the launch may start while the previous kernel ends; it reads the summaries that early
    (prefetch) only if no summary kernel ran on this layer since its last one-launch decode (extra["clean"]):
    the previous kernel then never writes them (that decode is followed at least by the kernels computing
    this step's q).
    Anything else: the backend's select_blocks + sparse_decode (linear scorers only; the package's decode sends the
    estimated-mass scorers elsewhere), after any deferred write and update."""
    s = settings
    kmin, kmax = layer.kmin, layer.kmax
    extra = _extra(layer)
    pending = extra.pop("pending", None)
    fast = backend_for(q) == "triton" and (s.scorer == "mean" or (s.scorer == "minmax" and kmin is not None))
    if pending is not None and (not fast or pending != seq_len - 1):
        _apply_pending(layer, pending)
        pending = None
    kv = extra.pop("pending_kv", None)
    if kv is not None and kv[0] != pending:  # not this launch's token (cannot happen through engine_append)
        extra["pending_kv"] = kv
        _write_pending_kv(layer)
        kv = None
    extra["fused"] = fast
    if fast:
        kmean = None
        if s.scorer == "mean" and ENGINE_MEAN_SUMMARY == "bf16":  # current, or current but for the folded token
            kmean = _current_means(layer, seq_len if pending is None else pending)
        if pending is None:
            fold = {}
        elif kv is not None:  # the token's key/value are not in the cache yet: this launch writes them
            fold = dict(k_new=kv[1], v_new=kv[2], pos=pending)
        else:
            fold = dict(k_new=layer.keys[:, :, pending : pending + 1], pos=pending)
        if "prefetch" in _kernel_features():
            fold["prefetch"] = bool(extra.get("clean"))
        out = _load("triton").select_and_decode(q, layer.keys, layer.values, layer.ksum, seq_len, layer.block_size,
                                                s.top_k, s.sink_blocks, s.local_blocks, scale, s.scorer, kmin, kmax,
                                                kmean=kmean, **fold)
        extra["clean"] = True  # no summary kernel since this launch (engine_update / _apply_pending clear it)
        extra["fused_kmean"] = kmean is not None
        if kmean is not None:
            extra["kmean_len"] = seq_len  # the launch folded any pending token into the means too
        extra["next_pos"] = seq_len
        extra["kv_in_launch"] = kv is not None
        return out
    extra["next_pos"] = None
    extra["fused_kmean"] = False
    seq_lens = torch.full((q.shape[0],), seq_len, dtype=torch.int64, device=q.device)
    idx = select_blocks(q, layer.ksum, seq_lens, layer.block_size, s.top_k, s.sink_blocks, s.local_blocks, s.scorer,
                        kmin, kmax)
    return sparse_decode(q, layer.keys, layer.values, idx, seq_lens, layer.block_size, scale), idx
