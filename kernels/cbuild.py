"""Build and load the C kernels of this folder and its op folders (msa/cpu.c, int8_cpu.c, attn_amx.c) through ctypes, on first use.

Each source (with the folder's headers) is compiled with the system C compiler (`cc -O3 -march=native -fopenmp`, about a second)
into $M3ANALYST_HOME/build/, keyed by the source, the flags and the CPU, and written atomically. A
compiler without OpenMP gets a second try without it (the kernels then run on one thread). No compiler,
a failed build or the setting engine.kernels.cpu = false: `build` returns None and the callers keep their PyTorch paths.
OpenMP: inside a PyTorch process the kernels use the libgomp PyTorch already loaded (same soname), so
they share its thread pool and follow torch.set_num_threads.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent  # kernels/: shared headers (cpu_common.h); op folders compile against it
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC", "-shared"]


def enabled() -> bool:
    from m3analyst.settings import current

    return current().engine.kernels.cpu


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo), empty where unreadable."""
    try:
        line = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def _cpu_id() -> str:
    return platform.machine() + " ".join(sorted(cpu_flags()))


def _compile(cc: str, source: Path, flags: list[str]) -> Path | None:
    from m3analyst.resources import home_dir

    folders = dict.fromkeys([source.parent, HERE])  # the source's folder and this one (cpu_common.h)
    headers = b"".join(h.read_bytes() for d in folders for h in sorted(d.glob("*.h")))
    key = hashlib.sha256(source.read_bytes() + headers + " ".join(flags).encode() + _cpu_id().encode()).hexdigest()[:16]
    out = home_dir() / "build" / f"{source.stem}-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        subprocess.run([cc, *flags, f"-I{HERE}", "-o", tmp, str(source), "-lm"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, out)
        return out
    except (OSError, subprocess.SubprocessError):
        Path(tmp).unlink(missing_ok=True)
        return None


def build(source: Path, flags: list[str] = FLAGS) -> ctypes.CDLL | None:
    """The compiled `source` loaded, or None (no compiler, failed build). flags + ["-DM3_NO_SIMD"] builds
    the plain-C loops even where AVX-512 exists (tests compare both)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None or not source.is_file():
        return None
    out = _compile(cc, source, flags)
    if out is None and "-fopenmp" in flags:
        out = _compile(cc, source, [f for f in flags if f != "-fopenmp"])
    return None if out is None else ctypes.CDLL(str(out))


class Kernel:
    """One C source of this folder, compiled and loaded on first use. `declare(lib)` sets the ctypes
    signatures of its entry points; `usable()` may veto the build (e.g. a CPU without the instructions)."""

    def __init__(self, source: Path, declare: Callable[[ctypes.CDLL], None], usable: Callable[[], bool] = lambda: True):
        self.source, self.declare, self.usable = source, declare, usable
        self.lib: ctypes.CDLL | None = None
        self.tried = False

    def build(self, flags: list[str] = FLAGS) -> ctypes.CDLL | None:
        """A fresh build with these flags (tests build the -DM3_NO_SIMD variant this way)."""
        lib = build(self.source, flags)
        if lib is not None:
            self.declare(lib)
        return lib

    def library(self) -> ctypes.CDLL | None:
        """The default build, made once; None when unavailable (see the module docstring)."""
        if not self.tried:
            self.lib = self.build() if enabled() and self.usable() else None
            self.tried = True
        return self.lib
