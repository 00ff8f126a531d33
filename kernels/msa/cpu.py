"""Fused MSA decode on CPU (kernels/msa/cpu.c), loaded through ctypes; reference: naive.py.

One call per layer and decode step does what select_blocks + sparse_decode do for one sequence
(B = 1): score every block from its summaries, keep sink + local + the best others, and attend exactly
over the kept blocks' tokens read in place from the KV cache. In PyTorch eager the same step is ~15
small ops (each a few microseconds of dispatch, times 28 sparse layers per token); here it is one.

The C file is compiled on first use (kernels/cbuild.py). No compiler, a failed build or
M3ANALYST_CPU_KERNEL=0: `available()` is False and the engine keeps its PyTorch path (same results
within rounding).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from m3analyst.kernels import cbuild

SOURCE = Path(__file__).with_name("cpu.c")
MAX_D, MAX_G = 256, 16  # the C file's limits (head dim, query heads per KV head)
_I32 = ("is_bf16", "scorer", "hkv", "G", "D", "bs", "top_k", "sink", "local", "rerank")


class _Args(ctypes.Structure):
    """msa_args in the C file: what stays fixed for one layer's cache across decode steps."""

    _fields_ = ([(n, ctypes.c_void_p) for n in ("k", "v", "ksum", "kmin", "kmax", "sel", "logits")]
                + [("cap", ctypes.c_int64), ("nb_cap", ctypes.c_int64)] + [(n, ctypes.c_int32) for n in _I32]
                + [("scale", ctypes.c_float), ("alpha", ctypes.c_float)])


SCORERS = {"mean": 0, "minmax": 1, "minmax-mass": 2, "mean-mass": 3, "interp-mass": 4, "hybrid": 4}  # see block_scores in the C file
SUMS_ONLY = (0, 3)  # the scorers that read the block sums alone (the others need min/max)


def _plan_key(q, k_cache, ksum, *settings) -> tuple:
    """What a LayerPlan depends on: where the cache lies, its capacity, the query shape/dtype, the settings."""
    return (k_cache.data_ptr(), ksum.data_ptr(), k_cache.shape[2], q.dtype, q.shape[1], *settings)


class _Cache(ctypes.Structure):
    """msa_cache in the C file: one layer's cache as msa_append1 writes it."""

    _fields_ = ([(n, ctypes.c_void_p) for n in ("k", "v", "ksum", "kmin", "kmax")]
                + [("cap", ctypes.c_int64), ("nb_cap", ctypes.c_int64)] + [(n, ctypes.c_int32) for n in ("is_bf16", "hkv", "D", "bs")])


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.msa_decode.argtypes = [p, p, ctypes.c_int, i64, p, p]
    lib.msa_decode.restype = ctypes.c_int
    for name in ("msa_append1", "msa_append1_f32"):
        getattr(lib, name).argtypes = [p, p, i64, p, i64, i64]
        getattr(lib, name).restype = ctypes.c_int


KERNEL = cbuild.Kernel(SOURCE, _declare)


def library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None when unavailable (see module docstring)."""
    return KERNEL.library()


def available() -> bool:
    return library() is not None


def supports(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scorer: str) -> bool:
    """Batch 1 on CPU, bf16/fp32 caches [1, Hkv, cap, D] laid out contiguously, a scorer the C code knows."""
    return (q.device.type == "cpu" and q.shape[0] == 1 and k_cache.dtype in (torch.bfloat16, torch.float32)
            and k_cache.is_contiguous() and v_cache.is_contiguous() and scorer in SCORERS and k_cache.shape[-1] <= MAX_D
            and q.shape[1] // k_cache.shape[1] <= MAX_G and available())


class LayerPlan:
    """One layer's fixed decode arguments (cache pointers, sizes, settings) packed once for the C call,
    with its own scratch; calling it runs one decode step. Valid while the cache tensors stay where they
    are: `key` holds what must not change (a grown cache moves them; see plan_for)."""

    def __init__(self, q, k_cache, v_cache, ksum, kmin, kmax, block_size: int, top_k: int, sink_blocks: int,
                 local_blocks: int, scorer: str, scale: float, alpha: float = 0.5, rerank: int = 0):
        _, hkv, cap, D = k_cache.shape
        hq = q.shape[1]
        G = hq // hkv
        mode = SCORERS[scorer]
        if mode not in SUMS_ONLY and kmin is None:
            raise ValueError(f"scorer {scorer!r} needs min/max block summaries")
        kmin, kmax = (kmin, kmax) if kmin is not None else (ksum, ksum)
        nb_cap = ksum.shape[2]
        self.sel = torch.empty(hkv * (G + 1) * nb_cap, dtype=torch.float32)
        self.logits = torch.empty(hkv * G * max(rerank, 1) * top_k * block_size, dtype=torch.float32)
        self.tensors = (k_cache, v_cache, ksum, kmin, kmax)  # keep the pointed-to memory alive
        self.args = _Args(*(t.data_ptr() for t in (*self.tensors, self.sel, self.logits)), cap, nb_cap,
                          int(k_cache.dtype == torch.bfloat16), mode, hkv, G, D, block_size, top_k, sink_blocks,
                          local_blocks, int(rerank), scale, alpha)
        self.shape, self.top_k = (1, hq, D), top_k
        self.key = _plan_key(q, k_cache, ksum, block_size, top_k, sink_blocks, local_blocks, scorer, scale, alpha, rerank)

    def __call__(self, q, seq_len: int):
        """q [1, Hq, D] bf16 or fp32 (fp16 is computed in fp32) -> (out [1, Hq, D] in q's dtype, idx int32
        [1, Hkv, top_k])."""
        io_bf16 = q.dtype == torch.bfloat16
        qc = q.contiguous() if io_bf16 or q.dtype == torch.float32 else q.float().contiguous()
        out = torch.empty(self.shape, dtype=qc.dtype)
        idx = torch.empty(1, self.args.hkv, self.top_k, dtype=torch.int32)
        rc = library().msa_decode(ctypes.byref(self.args), qc.data_ptr(), int(io_bf16), seq_len, idx.data_ptr(),
                                  out.data_ptr())
        if rc != 0:
            raise ValueError(f"msa_cpu: unsupported sizes (head dim {self.args.D}, group {self.args.G}, "
                             f"top_k {self.top_k})")
        return out.to(q.dtype), idx


def plan_for(q, layer, scale: float, top_k: int, sink_blocks: int, local_blocks: int, scorer: str, rerank: int = 0,
             slot: str = "msa") -> LayerPlan | None:
    """The cached LayerPlan of a LayerState (one per slot, e.g. "msa" and "dense"), rebuilt when the cache
    moved or the arguments changed; None when the kernel does not take this case."""
    key = _plan_key(q, layer.keys, layer.ksum, layer.block_size, top_k, sink_blocks, local_blocks, scorer, scale, 0.5,
                    rerank)
    plan = layer.extra.get(("msa_cpu", slot))
    if plan is not None and plan.key == key:
        return plan
    if not supports(q, layer.keys, layer.values, scorer) or (layer.kmin is None and SCORERS[scorer] not in SUMS_ONLY):
        return None
    plan = layer.extra[("msa_cpu", slot)] = LayerPlan(q, layer.keys, layer.values, layer.ksum, layer.kmin, layer.kmax,
                                                      layer.block_size, top_k, sink_blocks, local_blocks, scorer,
                                                      scale, 0.5, rerank)
    return plan


def decode_b1(q, k_cache, v_cache, ksum, kmin, kmax, seq_len: int, block_size: int, top_k: int, sink_blocks: int,
              local_blocks: int, scorer: str, scale: float, alpha: float = 0.5, rerank: int = 0):
    """q [1, Hq, D]; caches [1, Hkv, cap, D] (contiguous, same dtype); summaries fp32 [1, Hkv, nb_cap, D].

    rerank > 1: two-stage selection (rerank * top_k candidates by the scorer, then the top_k by exact
    attention mass over the candidates' keys; m3analyst.kernels.msa.naive.select_rerank is the reference).
    Returns (out [1, Hq, D] in q's dtype, idx int32 [1, Hkv, top_k]: chosen blocks, then sink and local
    ones; -1 where fewer blocks exist). Call only when supports(...) is True. One-off calls; the engine
    keeps a LayerPlan per layer (plan_for).
    """
    return LayerPlan(q, k_cache, v_cache, ksum, kmin, kmax, block_size, top_k, sink_blocks, local_blocks, scorer, scale,
                     alpha, rerank)(q, seq_len)


def _cache_key(layer) -> tuple:
    return (layer.keys.data_ptr(), layer.values.data_ptr(), layer.ksum.data_ptr(), layer.capacity, layer.kmin is not None)


def append_args(layer) -> _Cache | None:
    """The msa_cache struct of a LayerState (cached in layer.extra, rebuilt when the cache moved), or None when the
    kernel does not take this cache (not CPU, batch > 1, dtype, layout)."""
    key = _cache_key(layer)
    hit = layer.extra.get(("msa_cpu", "append"))
    if hit is not None and hit[0] == key:
        return hit[1]
    k, v = layer.keys, layer.values
    args = None  # also remembered: a cache the kernel does not take is not re-examined at every token
    if (k.device.type == "cpu" and k.shape[0] == 1 and k.dtype in (torch.bfloat16, torch.float32)
            and v.dtype == k.dtype and v.shape[-1] == k.shape[-1] and k.is_contiguous() and v.is_contiguous()
            and layer.ksum.is_contiguous() and available()):
        mm = layer.kmin is not None
        args = _Cache(k.data_ptr(), v.data_ptr(), layer.ksum.data_ptr(), layer.kmin.data_ptr() if mm else None,
                      layer.kmax.data_ptr() if mm else None, k.shape[2], layer.ksum.shape[2],
                      int(k.dtype == torch.bfloat16), k.shape[1], k.shape[3], layer.block_size)
    layer.extra[("msa_cpu", "append")] = (key, args)
    return args


def append_token(layer, k_new: torch.Tensor, v_new: torch.Tensor, pos: int) -> bool:
    """Write one decode step's key/value ([1, Hkv, 1, D], the cache's dtype) at `pos` of a LayerState and fold the
    key into its block summaries in one C call (reference: the cache layer's PyTorch write + eager.update_summaries).
    False (nothing written) when the kernel does not take this case; the caller then runs the PyTorch path."""
    args = append_args(layer)
    if (args is None or k_new.dtype != layer.keys.dtype or v_new.dtype != layer.keys.dtype
            or k_new.stride(-1) != 1 or v_new.stride(-1) != 1 or k_new.shape[0] != 1 or k_new.shape[2] != 1):
        return False
    return library().msa_append1(ctypes.byref(args), k_new.data_ptr(), k_new.stride(1), v_new.data_ptr(),
                                 v_new.stride(1), pos) == 0
