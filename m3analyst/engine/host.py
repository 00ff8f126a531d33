"""The host the engine runs on: device, dtype plan, CPU threads and the decode-thread guard.

Registries, not if-chains: a device type maps to its automatic dtype plan, a dtype name to its plan. Threads follow
the machine's load (`pick_threads`, asked at every prefill and generation; `DecodeThreadGuard` during one).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from m3analyst.errors import UsageError

def _cpu_has_bf16() -> bool:
    from m3analyst.kernels.cbuild import cpu_flags

    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


@dataclass(frozen=True)
class DtypePlan:
    """Weights for decode (one token per step) and, optionally, a second copy for prefill (many tokens)."""

    decode: torch.dtype
    prefill: torch.dtype | None = None  # None: the decode weights do prefill too
    decode_int8: bool = False  # decode linears as weight-only int8 (activations in `decode` dtype)


def _cpu_plan() -> DtypePlan:
    """CPU: PyTorch's bf16 GEMM (AMX/AVX512-BF16) makes prefill ~4x faster than fp32, but its one-row
    (decode) kernels are no faster than fp32; decode reads every weight once per token, so weight-only
    int8 linears (bf16 activations) decode fastest where the CPU has bf16 (measured: RESULTS.md, "Engine
    round 2"). Without bf16 (AVX2-only x86, most Arm): fp32 prefill, and decode linears as int8 with fp32
    activations where the C kernel is built (kernels/int8_cpu.c, AVX2+FMA or plain C loops): a quarter of fp32's
    weight bytes per token."""
    if not _cpu_has_bf16():
        from m3analyst.kernels import int8_cpu

        return DtypePlan(torch.float32, decode_int8=int8_cpu.library() is not None)
    from m3analyst.engine.quant import int8_supported

    return DtypePlan(torch.bfloat16, torch.bfloat16, decode_int8=True) if int8_supported() else DtypePlan(torch.float32, torch.bfloat16)


_AUTO_DTYPE = {
    "cpu": _cpu_plan,
    "cuda": lambda: DtypePlan(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16),
}
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}
_NAMED_PLANS = {  # CPU: int8 weight-only decode (a quarter of fp32's bytes per token), bf16 prefill
    "int8": lambda: DtypePlan(torch.bfloat16, torch.bfloat16, decode_int8=True),
}


def pick_threads(setting: int | None) -> int:
    """CPU threads for prefill (settings.threads) and for decode (settings.decode_threads): the setting, else
    the cores that other tasks leave free (at least one). Other tasks = runnable tasks outside this process in
    /proc/loadavg, the least of a few samples a few ms apart (a snapshot, so this process's own recent work
    and its spinning OpenMP workers do not count against it); where that file is missing, one thread once
    the 1-minute load reaches 1.5x the cores. Why it matters: threads wait on each other at every parallel op, so on a shared core a step
    stalls for a whole time slice -- measured here at load 9 on 2 cores, a decode step took ~1 s with 2
    threads and ~0.1 s with 1 (RESULTS.md, "Engine round 2"). Asked at every prefill and every generation,
    so a long-lived engine follows the machine."""
    if setting:
        return setting
    cores = os.cpu_count() or 1
    others = _other_runnable_tasks()
    if others is not None:
        return max(1, cores - others)
    try:
        busy = os.getloadavg()[0] >= 1.5 * cores
    except OSError:
        busy = False
    return 1 if busy and cores > 1 else cores


class DecodeThreadGuard:
    """Decode threads that follow the machine during a generation, not only at its start.

    With 2 OpenMP threads on 2 cores, a process that starts competing mid-generation makes every op wait for a
    descheduled thread: measured here, a decode step went from ~25 ms to ~400 ms (RESULTS.md, "Engine round 4").
    After each step, `step_done(seconds)` compares the step with the fastest one of this run; a step `STALL` times
    slower (and over `STALL_MIN_S`) re-asks `pick_threads`, so the engine drops to the cores left free; while it
    runs on fewer threads than cores it asks again every `RECHECK_STEPS` steps, to take the cores back once free.
    Off when the settings fix decode_threads."""

    STALL, STALL_MIN_S, RECHECK_STEPS = 4.0, 0.05, 32

    def __init__(self, engine, cores: int | None = None):
        self.engine, self.cores = engine, cores or os.cpu_count() or 1
        self.auto = not engine.settings.decode_threads
        self.fastest, self.steps = math.inf, 0

    def step_done(self, seconds: float) -> None:
        self.steps += 1
        if not self.auto:
            return
        current = self.engine._decode_threads
        stalled = seconds > self.STALL * self.fastest and seconds > self.STALL_MIN_S
        self.fastest = min(self.fastest, seconds)
        if stalled or (current < self.cores and self.steps % self.RECHECK_STEPS == 0):
            threads = pick_threads(None)
            if threads != current:
                self.engine._decode_threads = threads
                self.fastest = math.inf  # the step time at the new thread count is learnt afresh


def _other_runnable_tasks(samples: int = 3, gap_s: float = 0.003) -> int | None:
    """Runnable tasks on the machine outside this process (/proc/loadavg field 4 minus this process's
    running threads, e.g. OpenMP workers still spinning after the last parallel op), the least of a few
    samples; None where /proc is missing or unreadable."""
    counts = []
    for i in range(samples):
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            own = sum(1 for t in Path("/proc/self/task").iterdir() if _task_running(t))
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(0, running - max(own, 1)))
        if i + 1 < samples:
            time.sleep(gap_s)
    return min(counts)


def _task_running(task: Path) -> bool:
    try:
        stat = (task / "stat").read_text()
    except OSError:  # the thread ended meanwhile
        return False
    return stat[stat.rindex(")") + 2 :].startswith("R")


def cpu_op_paths(decode_int8: bool, prefill_dtype: torch.dtype, fused: bool, fast_decoder=None) -> dict[str, str]:
    """The path each op of a CPU run takes on this machine, in words (`engine info`)."""
    from m3analyst.kernels import attn_amx, int8_cpu, norm_cpu
    from m3analyst.kernels.msa import cpu as msa_cpu

    def c_kernel(module, fallback: str) -> str:
        simd = module.KERNEL.simd()
        return f"C kernel ({simd})" if simd else fallback

    dtype = str(prefill_dtype).replace("torch.", "")
    return {
        "prefill_linears": f"PyTorch {dtype} GEMM",
        "prefill_attention": ("AMX C kernel" if prefill_dtype == torch.bfloat16 and attn_amx.library() is not None
                              else f"PyTorch SDPA ({dtype})"),
        "decode_linears": c_kernel(int8_cpu, "PyTorch int8 op") + ", int8 weights" if decode_int8
        else f"PyTorch {dtype} GEMV",
        "msa_decode": c_kernel(msa_cpu, "PyTorch (no C compiler)"),
        "norms_and_gates": c_kernel(norm_cpu, "PyTorch modules") if fused else "PyTorch modules",
        "decode_step": (f"C kernel per layer ({fast_decoder.simd}): norms, linears, rotary, MLP" if fast_decoder
                        else "the model's PyTorch modules"),
    }


def cpu_kernels() -> dict[str, bool]:
    """Which C kernels this machine built (m3analyst.kernels; each falls back to PyTorch when False)."""
    from m3analyst.kernels import attn_amx, int8_cpu, norm_cpu
    from m3analyst.kernels.msa import cpu as msa_cpu

    return {"msa_decode": msa_cpu.library() is not None, "int8_linear": int8_cpu.library() is not None,
            "amx_prefill_attention": attn_amx.library() is not None, "fused_norm_mlp": norm_cpu.library() is not None}


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {setting!r} requested but CUDA is not available")
    return torch.device(setting)


def pick_dtype(setting: str, device: torch.device) -> DtypePlan:
    if setting == "auto":
        return _AUTO_DTYPE.get(device.type, lambda: DtypePlan(torch.float32))()
    try:
        return _NAMED_PLANS[setting]() if setting in _NAMED_PLANS else DtypePlan(_DTYPES[setting])
    except KeyError:
        raise UsageError(f"unknown dtype {setting!r}; choose auto, {', '.join(sorted(_DTYPES | _NAMED_PLANS))}") from None
