"""The contract ops (update_summaries, select_blocks, sparse_decode, decode_step) and the registry of their backends.

A backend is a module-like object with update_summaries / select_blocks / sparse_decode / decode_step (shapes and
semantics: naive.py): "torch" is the plain reference (naive.py), "triton" the Triton stages. `backend_for(tensor)`
picks "triton" for CUDA tensors where Triton imports, else "torch"; the setting engine.kernels.msa_backend
(`BACKEND`, set by the package's `configure`), or the `backend=` argument, forces one. Backends load lazily:
importing this module never imports triton.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace
from typing import Callable

import torch

OPS = ("update_summaries", "select_blocks", "sparse_decode", "decode_step")

# name -> zero-argument loader returning a module (or object) with the three ops; loaded lazily so that
# importing this module never imports triton.
_BACKENDS: dict[str, Callable[[], ModuleType]] = {}
_loaded: dict[str, ModuleType] = {}


def register_backend(name: str, loader: Callable[[], ModuleType]) -> None:
    """Register `loader() -> module-like with update_summaries/select_blocks/sparse_decode`."""
    _BACKENDS[name] = loader
    _loaded.pop(name, None)


def backends() -> list[str]:
    return sorted(_BACKENDS)


def _load(name: str) -> ModuleType:
    if name not in _BACKENDS:
        raise ValueError(f"unknown MSA backend {name!r}; registered: {backends()}")
    if name not in _loaded:
        _loaded[name] = _BACKENDS[name]()
    return _loaded[name]


def _triton_backend() -> SimpleNamespace:
    """The Triton ops, one module per stage (triton_summary, triton_select, triton_decode)."""
    from . import triton_common, triton_decode, triton_select, triton_summary

    if TUNING is not None:
        triton_common.tune(TUNING)
    return SimpleNamespace(update_summaries=triton_summary.update_summaries, select_blocks=triton_select.select_blocks,
                           sparse_decode=triton_decode.sparse_decode, decode_step=triton_decode.decode_step,
                           select_and_decode=triton_decode.select_and_decode, FEATURES=triton_decode.FEATURES)


register_backend("torch", lambda: importlib.import_module("m3analyst.kernels.msa.naive"))
register_backend("triton", _triton_backend)


def triton_available() -> bool:
    try:
        importlib.import_module("triton")
    except Exception:  # ImportError, or a broken install raising at import
        return False
    return True


def backend_for(t: torch.Tensor, backend: str | None = None) -> str:
    """The backend name used for tensors on t's device (explicit > env var > device default)."""
    name = backend or BACKEND
    if name:
        return name
    return "triton" if t.is_cuda and triton_available() else "torch"


def update_summaries(ksum, kmin, kmax, k_new, start_pos: int, block_size: int, *, seq_lens=None, kmean=None,
                     backend: str | None = None) -> None:
    """In place: fold k_new [B, Hkv, T, D] at positions start_pos.. into ksum/kmin/kmax [B, Hkv, NB_cap, D]
    (and the low-precision block means kmean, when given)."""
    kw = dict(seq_lens=seq_lens) if kmean is None else dict(seq_lens=seq_lens, kmean=kmean)
    _load(backend_for(k_new, backend)).update_summaries(ksum, kmin, kmax, k_new, start_pos, block_size, **kw)


def select_blocks(q, ksum, seq_lens, block_size: int, top_k: int, sink_blocks: int = 1, local_blocks: int = 1,
                  scorer: str = "mean", kmin=None, kmax=None, *, kmean=None, backend: str | None = None) -> torch.Tensor:
    """q [B, Hq, D] -> idx int32 [B, Hkv, top_k], ascending block ids, -1 padded. kmean: optional
    low-precision block means the kernels may score from (the reference ignores them)."""
    kw = {} if kmean is None else dict(kmean=kmean)
    return _load(backend_for(q, backend)).select_blocks(q, ksum, seq_lens, block_size, top_k, sink_blocks, local_blocks, scorer, kmin, kmax, **kw)


def sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size: int, scale: float, *, backend: str | None = None) -> torch.Tensor:
    """q [B, Hq, D], caches [B, Hkv, S_cap, D], idx [B, Hkv, top_k] -> out [B, Hq, D] (q's dtype)."""
    return _load(backend_for(q, backend)).sparse_decode(q, k_cache, v_cache, idx, seq_lens, block_size, scale)


def decode_step(q, k_new, k_cache, v_cache, ksum, seq_lens, pos: int, block_size: int, top_k: int,
                sink_blocks: int = 1, local_blocks: int = 1, scale: float | None = None, *, kmean=None,
                fused: bool = True, backend: str | None = None):
    """One MSA decode step of one new token (mean scorer): summary update + select + sparse decode.
    Returns (out [B, Hq, D], idx [B, Hkv, top_k]); on the Triton backend one launch when fused."""
    return _load(backend_for(q, backend)).decode_step(q, k_new, k_cache, v_cache, ksum, seq_lens, pos, block_size, top_k,
                                                      sink_blocks, local_blocks, scale, kmean=kmean, fused=fused)


BACKEND: str | None = None  # a forced backend name (engine.kernels.msa_backend), None: by device
TUNING = None  # the Triton launch parameters (engine.kernels.triton), taken when that backend loads
