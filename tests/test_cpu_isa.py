"""CPUs differ: M3ANALYST_ISA=avx2 emulates an AVX2-only x86 CPU (kernels built for x86-64-v3, no avx512/amx flags
seen), and the engine's CPU plan and `engine info` follow what the CPU has."""

from __future__ import annotations

import platform

import pytest
import torch

from m3analyst.kernels import cbuild, int8_cpu


@pytest.mark.parametrize("var", ["M3ANALYST_ISA", "M3ANALYST_ENGINE__KERNELS__ISA"])
def test_isa_switch_masks_flags_and_targets_x86_64_v3(monkeypatch, var):
    monkeypatch.setenv(var, "avx2")
    assert cbuild.isa() == "avx2"
    assert not any(f.startswith(("avx512", "amx")) for f in cbuild.cpu_flags())
    assert "-march=x86-64-v3" in cbuild.default_flags() and "-march=native" not in cbuild.default_flags()
    monkeypatch.delenv(var)
    assert cbuild.isa() == "native" and "-march=native" in cbuild.default_flags()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 only: the switch emulates an x86 ISA")
def test_avx2_build_of_the_int8_kernel_reports_its_loops(monkeypatch):
    monkeypatch.setenv("M3ANALYST_ISA", "avx2")
    lib = int8_cpu.KERNEL.build()
    if lib is None:
        pytest.skip("no C compiler")
    lib.m3_simd.restype = __import__("ctypes").c_char_p
    assert lib.m3_simd().decode() == "avx2+fma"


def test_cpu_without_bf16_decodes_int8_with_fp32_activations(monkeypatch):
    from m3analyst.engine import host as engine

    monkeypatch.setattr(engine, "_cpu_has_bf16", lambda: False)
    plan = engine._cpu_plan()
    assert plan.decode == torch.float32 and plan.prefill is None
    assert plan.decode_int8 == (int8_cpu.library() is not None)
