"""The C kernels built and checked from C alone (tests/c/kernel_selftest.c: scalar references in double precision),
for this machine and, where a cross compiler and qemu-user are installed, for 64-bit Arm (plain-C loops, which gcc
vectorizes to NEON at -O3): what runs on an Arm CPU is checked without an Arm Python. Skipped where no compiler is
present (the engine then keeps its PyTorch paths)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
SOURCES = ["int8_cpu.c", "layer_cpu.c", "norm_cpu.c", "msa/cpu.c"]  # attn_amx.c is x86 AMX only


def _build(cc: str, flags: list[str], out: Path, link: list[str]) -> Path:
    objs = []
    for src in SOURCES:
        name = Path(src).stem
        obj = out / f"{name}.o"
        subprocess.run([cc, "-O3", "-ffast-math", "-fopenmp", *flags, f"-I{KERNELS}", f"-Dm3_simd=m3_simd_{name}", "-c",
                        str(KERNELS / src), "-o", str(obj)], check=True, capture_output=True, timeout=300)
        objs.append(str(obj))
    exe = out / "selftest"
    subprocess.run([cc, "-O2", *flags, f"-I{KERNELS}", str(ROOT / "tests" / "c" / "kernel_selftest.c"), *objs,
                    "-fopenmp", *link, "-o", str(exe), "-lm"], check=True, capture_output=True, timeout=300)
    return exe


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith("0 failed"), r.stdout
    return r.stdout


@pytest.mark.parametrize("plain", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_kernels_selftest_native(tmp_path, plain):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = _build(cc, ["-march=native"] + (["-DM3_NO_SIMD"] if plain else []), tmp_path, [])
    assert "8 passed, 0 failed" in _run([str(exe)])


@pytest.mark.slow
def test_kernels_selftest_aarch64_under_qemu(tmp_path):
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if cc is None or qemu is None:
        pytest.skip("no aarch64 cross compiler or qemu-user (apt-get install gcc-aarch64-linux-gnu qemu-user)")
    exe = _build(cc, ["-march=armv8-a"], tmp_path, ["-static"])
    assert "8 passed, 0 failed" in _run([qemu, str(exe)])
