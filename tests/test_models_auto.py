"""`--model auto`: the choice from the per-machine calibration, the prompt cap, and the progress meter (no model)."""

from __future__ import annotations

import io
import json

import pytest
import torch

from m3analyst.engine import auto
from m3analyst.engine.pull import gguf_path
from m3analyst.engine.catalog import MODELS


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("M3ANALYST_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(auto, "_load", lambda: 1.0)  # rates measured at load 1.0 (below) apply unscaled
    return tmp_path / "home"


def _pull(name):
    path = gguf_path(MODELS[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")


def _measured(rates: dict[str, float], gflops: float = 50.0):
    entry = {"gflops": gflops, "models": {n: {"prefill_tok_s": r, "tokens": 4096, "load": 1.0} for n, r in rates.items()}}
    auto._path().write_text(json.dumps({auto.machine_key(): entry}))


def test_nothing_pulled_means_the_small_default(home):
    c = auto.choose(120, "cpu")
    assert c.model == auto.DEFAULT_MODEL and "no model pulled" in c.reason


def test_cpu_picks_the_largest_pulled_model_whose_prefill_fits(home):
    for name in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
        _pull(name)
    _measured({"smollm2-135m-instruct": 900, "qwen2.5-coder-0.5b-instruct": 120, "qwen2.5-coder-1.5b-instruct": 20})
    c = auto.choose(120, "cpu")  # 72 s of prefill: 1.5B reads 1,440 tokens (< 2,048), 0.5B 8,640
    assert c.model == "qwen2.5-coder-0.5b-instruct" and c.prompt_cap == 8640
    assert "8,640 tokens" in c.reason and "measured here" in c.reason
    c = auto.choose(600, "cpu")  # a longer budget: the 1.5B reads 7,200 tokens
    assert c.model == "qwen2.5-coder-1.5b-instruct" and c.prompt_cap == 7200
    c = auto.choose(10, "cpu")  # too short for any: the smallest, its cap at least 1,024 tokens
    assert c.model == "smollm2-135m-instruct" and c.prompt_cap == 5400


def test_unmeasured_models_are_estimated_from_the_gemm_speed(home, monkeypatch):
    _pull("qwen2.5-coder-0.5b-instruct")
    monkeypatch.setattr(auto, "gemm_gflops", lambda seconds=0.5: 100.0)
    rate, source = auto.prefill_rate(MODELS["qwen2.5-coder-0.5b-instruct"])
    assert rate == pytest.approx(100e9 / (auto.FLOP_OVERHEAD * 2 * 494e6)) and "GEMM" in source
    monkeypatch.setattr(auto, "gemm_gflops", lambda seconds=0.5: pytest.fail("measured twice"))
    auto.prefill_rate(MODELS["qwen2.5-coder-0.5b-instruct"])  # cached per machine


def test_real_prefills_are_recorded(home):
    auto.record_prefill("qwen2.5-coder-0.5b-instruct", 4000, 20.0)
    auto.record_prefill("qwen2.5-coder-0.5b-instruct", 100, 0.1)  # too short to tell
    auto.record_prefill("/some/local.gguf", 4000, 1.0)  # not a registry model
    models = auto.read_calibration()["models"]
    assert list(models) == ["qwen2.5-coder-0.5b-instruct"] and models["qwen2.5-coder-0.5b-instruct"]["prefill_tok_s"] == 200


def test_named_model_on_cpu_is_capped_too(home):
    _measured({"qwen2.5-coder-0.5b-instruct": 50})
    c = auto.for_named("qwen2.5-coder-0.5b-instruct", 120, torch.device("cpu"))
    assert c.prompt_cap == 3600 and "time budget" in c.reason
    assert auto.for_named("/x/model.gguf", 120, torch.device("cpu")) is None


def test_apply_names_the_choice_caps_the_context_and_records(home):
    from m3analyst.engine.progress import EngineMeter

    class Eng:
        context_length, meter = 32768, EngineMeter(io.StringIO(), min_s=0.0)

    eng = Eng()
    auto.apply(eng, auto.Choice("qwen2.5-coder-0.5b-instruct", "auto: why", 3000), reserve=1024)
    assert eng.name == "qwen2.5-coder-0.5b-instruct (auto: why)" and eng.context_length == 4024
    eng.meter.begin("prefill")
    eng.meter("prefill", 600, 600)
    assert auto.read_calibration()["models"]["qwen2.5-coder-0.5b-instruct"]["tokens"] == 600


def test_gpu_choice_fits_weights_and_full_context_kv(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (int(2.5 * 2**30), 80 * 2**30))
    c = auto._choose_gpu()  # 1.5B: 3.1 GB weights + 0.9 GB KV > 2.25 GiB; 0.5B: 1 GB + 0.4 GB fits
    assert c.model == "qwen2.5-coder-0.5b-instruct" and "GiB" in c.reason


def test_meter_lines_and_throttle():
    from m3analyst.engine.progress import EngineMeter

    for every_s, expect in ((3600, 1), (0.0, 4)):  # throttled: only the last line; unthrottled: every call
        out = io.StringIO()
        meter = EngineMeter(out, every_s=every_s, min_s=0.0)
        meter.begin("prefill")
        for done in (1024, 2048, 3072, 4096):
            meter("prefill", done, 4096)
        lines = out.getvalue().splitlines()
        assert len(lines) == expect and lines[-1].startswith("[m3analyst] prefill: 4,096/4,096 tokens,")
        assert "tok/s" in lines[-1] and ("ETA" in lines[0]) == (expect == 4)
    quiet = io.StringIO()
    meter = EngineMeter(quiet, every_s=0.0, min_s=60.0)  # phases shorter than min_s print nothing
    meter.begin("decode")
    meter("decode", 8, 8)
    assert quiet.getvalue() == ""


def test_measured_rates_follow_the_load_now(home, monkeypatch):
    _measured({"qwen2.5-coder-0.5b-instruct": 20.0})  # measured at load 1.0 (its own threads included)
    n = auto.os.cpu_count() or 1
    rate, source = auto.prefill_rate(MODELS["qwen2.5-coder-0.5b-instruct"])
    assert rate == pytest.approx(20.0) and "x1.00" in source
    monkeypatch.setattr(auto, "_load", lambda: 1.0 + n)  # n other runnable threads now: half the cores
    assert auto.prefill_rate(MODELS["qwen2.5-coder-0.5b-instruct"])[0] == pytest.approx(10.0)
    assert auto.load_scale(then=1000.0, now=0.0) == auto.LOAD_SCALE_MAX  # bounded either way
    auto.record_decode("qwen2.5-coder-0.5b-instruct", 100, 20.0)
    auto.record_decode("qwen2.5-coder-0.5b-instruct", 8, 1.0)  # too few tokens to tell
    entry = auto.read_calibration()["models"]["qwen2.5-coder-0.5b-instruct"]
    assert entry["decode_tok_s"] == 5.0 and entry["prefill_tok_s"] == 20.0  # the prefill figure kept beside it
    assert auto.decode_rate("qwen2.5-coder-0.5b-instruct") == pytest.approx(5.0 * auto.load_scale(1.0 + n))
    assert auto.decode_rate("smollm2-135m-instruct") is None
