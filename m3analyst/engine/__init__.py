"""Embedded inference engine with MiniMax-style sparse attention (MSA). See engine.py for the API.

Names are imported lazily so that `m3analyst.engine.registry` (model list) does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": "engine", "EngineStats": "engine", "GenerationResult": "engine", "PrefillSession": "engine",
    "load_engine": "engine", "MODELS": "registry", "ModelSpec": "registry", "get_spec": "registry",
    "known_models": "registry", "register_model": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"m3analyst.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'm3analyst.engine' has no attribute {name!r}")
