"""`--model auto` (the default): which registered model this machine runs, and how long a prompt it can read.

On CUDA: the strongest (most parameters) registered chat model whose bf16 weights plus a KV cache at its full
context fit in `GPU_HEADROOM` of the free GPU memory. On CPU: among the chat models already pulled (a pull and
conversion can take many minutes, so auto never starts one except for the small default), the strongest whose
prefill of `MIN_PROMPT_TOKENS` fits in `PREFILL_SHARE` of the time budget; the prompt is then capped at what that
share prefills, so the prompt budget follows the time budget and not only the context length.

Prefill speed per model comes from `$M3ANALYST_HOME/calibration.json`, kept per machine: the rate last measured on
a real prefill of at least `RECORD_MIN_TOKENS` tokens (every auto run records its own), or, for a model not yet
measured here, an estimate from this machine's measured fp32 GEMM speed (about half a second, once) at
`FLOP_OVERHEAD` x 2 x parameters per token. The machine is shared: a rate measured under load is kept as measured
(with the load it was measured at) and replaced by the next measurement.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from m3analyst.engine.catalog import MODELS, ModelSpec
from m3analyst.resources import home_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
MIN_PROMPT_TOKENS = 2048
PREFILL_SHARE = 0.6  # of the time budget; the rest goes to decoding the headings and scoring passages
GPU_HEADROOM = 0.9
FLOP_OVERHEAD = 1.0  # prefill time per token / (2 x parameters / GEMM speed): measured 0.5-0.7 on this AVX2 VM at
# load 14-18 (135M fp32: 43 tok/s, 0.5B int8: 17.6 tok/s, GEMM 8 GFLOP/s; RESULTS.md, issue 20); 1.0 errs on the safe side
RECORD_MIN_TOKENS = 512
RECORD_MIN_DECODE = 32
LOAD_SCALE_MAX = 4.0  # a rate measured at another load is scaled by at most this factor either way
CAL_FILE = "calibration.json"


@dataclass(frozen=True)
class Choice:
    model: str
    reason: str
    prompt_cap: int | None = None  # tokens the prompt may take (CPU), None: the model's context


def choose(time_budget: float, device: str = "auto") -> Choice:
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return _choose_gpu()
    return _choose_cpu(time_budget)


def _chat_models() -> list[ModelSpec]:
    return sorted((s for s in MODELS.values() if s.chat and s.params_m), key=lambda s: -s.params_m)


def _choose_gpu() -> Choice:
    import torch

    free, _ = torch.cuda.mem_get_info()
    for spec in _chat_models():
        need = spec.params_m * 1e6 * 2 + spec.kv_bytes_per_token * spec.context_length
        if need <= GPU_HEADROOM * free:
            return Choice(spec.name, f"auto: the largest registered model whose weights and a {spec.context_length:,}-"
                          f"token KV cache ({need / 2**30:.1f} GiB) fit the GPU's {free / 2**30:.1f} GiB free")
    return Choice(DEFAULT_MODEL, "auto: no larger registered model fits the GPU's free memory")


def _choose_cpu(time_budget: float) -> Choice:
    from m3analyst.engine.pull import gguf_path

    pulled = [s for s in _chat_models() if gguf_path(s).is_file()]
    if not pulled:
        return Choice(DEFAULT_MODEL, "auto: no model pulled yet, so the small default (m3analyst models pull NAME adds "
                      "stronger ones)")
    for spec in pulled:
        cap, why_cap = _cpu_cap(spec, time_budget)
        if cap >= MIN_PROMPT_TOKENS or spec is pulled[-1]:
            why = ("the largest pulled model" if spec is pulled[0] else
                   f"larger pulled models prefill under {MIN_PROMPT_TOKENS:,} tokens in that time")
            return Choice(spec.name, f"auto: {why}; {why_cap}", cap)
    raise AssertionError("unreachable: the last pulled model is always chosen")


def _cpu_cap(spec: ModelSpec, time_budget: float) -> tuple[int, str]:
    seconds = time_budget * PREFILL_SHARE
    rate, source = prefill_rate(spec)
    cap = max(min(int(rate * seconds), spec.context_length), 1024)
    return cap, (f"prefill {rate:,.0f} tok/s ({source}) caps the prompt at {cap:,} tokens for {seconds:.0f} s of the "
                 f"{time_budget:.0f} s time budget")


def for_named(model: str, time_budget: float, device) -> Choice | None:
    """A registry model named by --model or the config, on CPU: its prompt capped by the time budget too."""
    spec = MODELS.get(model)
    if spec is None or device.type != "cpu" or not spec.params_m:
        return None
    cap, why = _cpu_cap(spec, time_budget)
    return Choice(model, why, cap) if cap < spec.context_length else None


# ---- calibration ------------------------------------------------------------------------------------------------
def machine_key() -> str:
    from m3analyst.kernels.cbuild import cpu_flags

    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    ident = f"{platform.machine()}|{model}|{os.cpu_count()}|{' '.join(sorted(cpu_flags()))}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _path() -> Path:
    return home_dir() / CAL_FILE


def read_calibration() -> dict:
    """This machine's entry: {"gflops": ..., "models": {name: {"prefill_tok_s", "tokens", "load", "at"}}}."""
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    entry = data.get(machine_key()) if isinstance(data, dict) else None
    return entry if isinstance(entry, dict) else {}


def _write_calibration(entry: dict) -> None:
    try:
        data = json.loads(_path().read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[machine_key()] = entry
    tmp = _path().with_name(CAL_FILE + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, _path())
    except OSError:  # a read-only home: measure again next time
        tmp.unlink(missing_ok=True)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def gemm_gflops(seconds: float = 0.5) -> float:
    """This machine's fp32 GEMM speed now (512 x 1024 x 1024 products for about `seconds`)."""
    import torch

    a, b = torch.randn(512, 1024), torch.randn(1024, 1024)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 512 * 1024 * 1024 * n / (time.perf_counter() - t0) / 1e9


def load_scale(then: float | None, now: float | None = None) -> float:
    """How much faster a run of all cores goes now than when a rate was measured at 1-minute load `then`, from the
    share of the cores such a run gets beside the others' runnable threads (n / (n + others)): the load recorded after
    a run includes its own n threads; the load now includes this process's one (ingest, loading)."""
    n = os.cpu_count() or 1
    now = _load() if now is None else now
    if then is None or now is None:
        return 1.0

    def share(others: float) -> float:
        return min(1.0, n / (n + max(0.0, others)))

    return min(LOAD_SCALE_MAX, max(1 / LOAD_SCALE_MAX, share(now - 1) / share(then - n)))


def prefill_rate(spec) -> tuple[float, str]:
    """Tokens per second this machine prefills `spec` at now, and where the figure comes from (a measured rate is
    scaled from the load it was measured at to the load now)."""
    entry = read_calibration()
    measured = entry.get("models", {}).get(spec.name)
    if isinstance(measured, dict) and measured.get("prefill_tok_s"):
        scale = load_scale(measured.get("load"))
        return float(measured["prefill_tok_s"]) * scale, (
            f"measured here on {measured.get('tokens', 0):,} tokens at load {measured.get('load')}, x{scale:.2f} "
            f"for the load now")
    if not entry.get("gflops"):
        entry = {**entry, "gflops": gemm_gflops(), "gflops_load": _load()}
        _write_calibration(entry)
    rate = entry["gflops"] * 1e9 / (FLOP_OVERHEAD * 2 * spec.params_m * 1e6)
    return rate, f"estimated from this machine's {entry['gflops']:.0f} GFLOP/s fp32 GEMM"


def decode_rate(name: str) -> float | None:
    """Decode tokens per second last measured here for `name` (scaled to the load now), or None."""
    measured = read_calibration().get("models", {}).get(name)
    if isinstance(measured, dict) and measured.get("decode_tok_s"):
        return float(measured["decode_tok_s"]) * load_scale(measured.get("decode_load"))
    return None


def engine_rates(engine) -> tuple[float, float | None, str]:
    """(prefill tok/s, decode tok/s or None, where from) for a loaded engine: its registry model's calibration, else
    an estimate from its parameter count."""
    name = engine_model_name(engine)
    spec = MODELS.get(name)
    if spec is None or not spec.params_m:
        spec = SimpleNamespace(name=name, params_m=max(1, sum(p.numel() for p in engine.model.parameters()) // 10**6))
    rate, source = prefill_rate(spec)
    return rate, decode_rate(name), source


def engine_model_name(engine) -> str:
    sel = getattr(engine, "selection", None)
    return sel.model if sel is not None else str(engine.name).split(" (")[0]


def record_decode(name: str, tokens: int, seconds: float) -> None:
    """Keep a memo's measured decode rate for `name` (registry models, at least RECORD_MIN_DECODE tokens)."""
    if name not in MODELS or tokens < RECORD_MIN_DECODE or seconds <= 0:
        return
    entry = read_calibration()
    models = dict(entry.get("models", {}))
    models[name] = {**models.get(name, {}), "decode_tok_s": round(tokens / seconds, 2), "decode_load": _load()}
    _write_calibration({**entry, "models": models})


def record_prefill(name: str, tokens: int, seconds: float) -> None:
    """Keep a real prefill's rate for `name` (registry models, prompts of RECORD_MIN_TOKENS or more)."""
    if name not in MODELS or tokens < RECORD_MIN_TOKENS or seconds <= 0:
        return
    entry = read_calibration()
    models = dict(entry.get("models", {}))
    models[name] = {**models.get(name, {}), "prefill_tok_s": round(tokens / seconds, 2), "tokens": tokens,
                    "load": _load(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_calibration({**entry, "models": models})


def apply(engine, choice: Choice, reserve: int | None = None) -> None:
    """Name the choice on the engine (the memo header shows engine.name), cap its context to the prompt the time
    budget allows plus `reserve` for generation (default: the memo's reserve, which prompts leave free), and record
    every long prefill's rate for the next choice."""
    from m3analyst.settings import current

    engine.name = f"{choice.model} ({choice.reason})"  # the memo header shows the engine's name
    engine.selection = choice
    if choice.prompt_cap is not None:
        reserve = current().memo.reserve if reserve is None else reserve
        engine.context_length = min(engine.context_length, choice.prompt_cap + reserve)
    if engine.meter is not None:
        engine.meter.on_done = lambda label, total, seconds: (
            record_prefill(choice.model, total, seconds) if label == "prefill" else None)
