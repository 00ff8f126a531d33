"""Fused MSA decode on CPU (kernels/msa_cpu.c), loaded through ctypes; reference: msa_naive.

One call per layer and decode step does what select_blocks + sparse_decode do for one sequence
(B = 1): score every block from its summaries, keep sink + local + the best others, and attend exactly
over the kept blocks' tokens read in place from the KV cache. In PyTorch eager the same step is ~15
small ops (each a few microseconds of dispatch, times 28 sparse layers per token); here it is one.

The C file is compiled on first use with the system C compiler (`cc -O3 -march=native`, about a
second) into $M3ANALYST_HOME/build/, keyed by the source, flags and CPU, and written atomically.
No compiler, a failed build or M3ANALYST_CPU_KERNEL=0: `available()` is False and the engine keeps its
PyTorch path (same results within rounding).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("msa_cpu.c")
MAX_D, MAX_G = 256, 16  # the C file's limits (head dim, query heads per KV head)
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC", "-shared"]
SCORERS = {"mean": 0, "minmax": 1, "minmax-mass": 2, "mean-mass": 3, "interp-mass": 4, "hybrid": 4}  # see block_scores in the C file
_state: dict = {}


def _cpu_id() -> str:
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _build(flags: list[str] = FLAGS) -> ctypes.CDLL | None:
    """Compile (once per source, flags and CPU) and load; None without a compiler or on a failed build.
    flags + ["-DM3_NO_SIMD"] builds the plain-C loops even where AVX-512 exists (tests compare both)."""
    from m3analyst.resources import home_dir

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None or not SOURCE.is_file():
        return None
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode() + _cpu_id().encode()).hexdigest()[:16]
    out = home_dir() / "build" / f"msa_cpu-{key}.so"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            subprocess.run([cc, *flags, "-o", tmp, str(SOURCE), "-lm"], check=True, capture_output=True, timeout=120)
            os.replace(tmp, out)
        except (OSError, subprocess.SubprocessError):
            Path(tmp).unlink(missing_ok=True)
            return None
    lib = ctypes.CDLL(str(out))
    fn = lib.msa_decode_b1
    p, i, i64, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float
    fn.argtypes = [p, p, p, i, p, p, p, i, i, i, i, i64, i64, i64, i, i, i, i, f, f, i, p, p, p, p]
    fn.restype = ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; None when unavailable (see module docstring)."""
    if "lib" not in _state:
        _state["lib"] = None if os.environ.get("M3ANALYST_CPU_KERNEL", "1") == "0" else _build()
    return _state["lib"]


def available() -> bool:
    return library() is not None


def supports(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scorer: str) -> bool:
    """Batch 1 on CPU, bf16/fp32 caches [1, Hkv, cap, D] laid out contiguously, a scorer the C code knows."""
    return (q.device.type == "cpu" and q.shape[0] == 1 and k_cache.dtype in (torch.bfloat16, torch.float32)
            and k_cache.is_contiguous() and v_cache.is_contiguous() and scorer in SCORERS and k_cache.shape[-1] <= MAX_D
            and q.shape[1] // k_cache.shape[1] <= MAX_G and available())


def _scratch(name: str, n: int) -> torch.Tensor:
    buf = _state.get(name)
    if buf is None or buf.numel() < n:
        buf = _state[name] = torch.empty(n, dtype=torch.float32)
    return buf


def decode_b1(q, k_cache, v_cache, ksum, kmin, kmax, seq_len: int, block_size: int, top_k: int, sink_blocks: int,
              local_blocks: int, scorer: str, scale: float, alpha: float = 0.5, rerank: int = 0):
    """q [1, Hq, D]; caches [1, Hkv, cap, D] (contiguous, same dtype); summaries fp32 [1, Hkv, nb_cap, D].

    rerank > 1: two-stage selection (rerank * top_k candidates by the scorer, then the top_k by exact
    attention mass over the candidates' keys; m3analyst.engine.scorers.select_rerank is the reference).
    Returns (out [1, Hq, D] in q's dtype, idx int32 [1, Hkv, top_k]: chosen blocks, then sink and local
    ones; -1 where fewer blocks exist). Call only when supports(...) is True.
    """
    _, hkv, cap, D = k_cache.shape
    hq = q.shape[1]
    q32 = q[0].to(torch.float32).contiguous()
    out = torch.empty(hq, D, dtype=torch.float32)
    idx = torch.empty(1, hkv, top_k, dtype=torch.int32)
    mode = SCORERS[scorer]
    if mode != 0 and mode != 3 and kmin is None:
        raise ValueError(f"scorer {scorer!r} needs min/max block summaries")
    kmin, kmax = (kmin, kmax) if kmin is not None else (ksum, ksum)
    nb_cap = ksum.shape[2]
    G = hq // hkv
    logits = _scratch("logits", hkv * G * max(rerank, 1) * top_k * block_size)
    sel = _scratch("sel", hkv * (G + 1) * nb_cap)
    rc = library().msa_decode_b1(
        q32.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), int(k_cache.dtype == torch.bfloat16),
        ksum.data_ptr(), kmin.data_ptr(), kmax.data_ptr(), mode, hkv, G, D, cap, nb_cap, seq_len, block_size,
        top_k, sink_blocks, local_blocks, scale, alpha, int(rerank), idx.data_ptr(), sel.data_ptr(), logits.data_ptr(),
        out.data_ptr())
    if rc != 0:
        raise ValueError(f"msa_cpu: unsupported sizes (head dim {D}, group {hq // hkv}, top_k {top_k})")
    return out.view(1, hq, D).to(q.dtype), idx
