"""Embedded inference engine with MiniMax-style sparse attention (MSA). See engine.py for the API
(load.py loads it, host.py picks device/dtype/threads, session.py and decode.py run it).

Names are imported lazily so that `m3analyst.engine.catalog` (model list) does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Engine": "engine", "EngineStats": "decode", "GenerationResult": "decode", "PrefillSession": "session",
    "load_engine": "load", "MODELS": "registry", "ModelSpec": "registry", "get_spec": "registry",
    "known_models": "registry", "register_model": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"m3analyst.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'm3analyst.engine' has no attribute {name!r}")
