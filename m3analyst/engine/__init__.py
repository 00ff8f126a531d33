"""Embedded inference engine with MiniMax-style sparse attention (MSA). See engine.py for the API."""

from m3analyst.engine.engine import Engine, EngineStats, GenerationResult, PrefillSession, load_engine
from m3analyst.engine.registry import MODELS, ModelSpec, get_spec, known_models, register_model

__all__ = ["Engine", "EngineStats", "GenerationResult", "PrefillSession", "load_engine", "MODELS", "ModelSpec",
           "get_spec", "known_models", "register_model"]
