"""The int8 form of a large model (quant.fit_weights) kept on disk beside its conversion: `<hf>-int8/`.

Quantizing a 1.5B model at every load took minutes on a loaded 2-core machine and held the bf16 and int8 copies at
once (5.9 GB peak). The first load saves the fitted state dict (int8 weights, fp32 scales and norms, bf16 embedding
table) with a marker like the conversion's (every file's sha256, checked once per file change, and the sha256 of
the model.safetensors it came from); later loads build the model's skeleton on the meta device, apply the same
module swaps and take the saved tensors in place. A bad or stale cache is rebuilt, never trusted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from m3analyst.engine.pull import MARKER, _cache_ok, finish_conversion
from m3analyst.engine.quant import fit_weights

WEIGHTS = "weights.safetensors"


def cache_dir(hf_dir: Path) -> Path:
    return hf_dir.with_name(hf_dir.name + "-int8")


def _source_sha(hf_dir: Path) -> str | None:
    try:
        hashes = json.loads((hf_dir / MARKER).read_text())["sha256"]
        return ";".join(f"{k}={v}" for k, v in sorted(hashes.items()) if k.endswith(".safetensors"))
    except (OSError, ValueError, KeyError, AttributeError):
        return None  # a plain HF folder (no marker): no cache, fit at every load


def load_fitted(hf_dir: Path, load_hf, impl: str):
    """(model, tokenizer) with fit_weights applied: from the cache where it verifies, else fitted now and saved."""
    source = _source_sha(hf_dir)
    cache = cache_dir(hf_dir)
    if source is not None and _cache_ok(cache, source):
        try:
            return _from_cache(hf_dir, cache, impl)
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt below
            pass
    model, tok = load_hf(hf_dir, torch.device("cpu"), torch.bfloat16)
    fit_weights(model)
    if source is not None:
        _save(model, hf_dir, cache, source)
    return model, tok


def _save(model, hf_dir: Path, cache: Path, source: str) -> None:
    from safetensors.torch import save_file

    tmp = cache.with_name(cache.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
        finish_conversion(tmp, cache, hf_dir / "model.safetensors", source)
    except OSError:  # no room or read-only: the model still runs, fitted at each load
        shutil.rmtree(tmp, ignore_errors=True)


def _from_cache(hf_dir: Path, cache: Path, impl: str):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    config = AutoConfig.from_pretrained(str(hf_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation=impl)
    fit_weights(model)  # the same module swaps, on shapes only
    model.load_state_dict(load_file(str(cache / WEIGHTS)), assign=True, strict=True)
    _rebuild_meta_buffers(model)
    try:
        model.generation_config = GenerationConfig.from_pretrained(str(hf_dir))
    except OSError:
        pass
    return model.eval(), AutoTokenizer.from_pretrained(str(hf_dir))


def _rebuild_meta_buffers(model) -> None:
    """Non-persistent buffers (rotary frequencies) are computed at construction, not saved: rebuild their modules."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if any(b.is_meta for b in child.buffers(recurse=False)):
                if not hasattr(child, "config"):
                    raise ValueError(f"cannot rebuild {type(child).__name__}: no config")
                setattr(parent, name, type(child)(config=child.config).float())
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        raise ValueError("tensors left on the meta device")
