"""One nested settings object (paper-qa style): every field has a default and a description.

Where a value comes from, lowest to highest precedence:

    field defaults < $M3ANALYST_HOME/config.toml < ./m3analyst.toml
                   < environment M3ANALYST_<SECTION>__<FIELD> (e.g. M3ANALYST_ENGINE__ATTENTION__TOP_K=64)
                   < command-line flags and --set section.field=value

`Settings()` reads the files and the environment; `load(overrides)` adds the command line and turns every bad
value into one line (UsageError, or InputError naming a TOML file that does not parse). The CLI's flags are
mapped onto fields in one table (m3analyst/commands/options.py). `Settings.model_dump()` goes into every JSON
output, so a run says exactly how it was made. Code below the CLI that has no settings passed to it (the
document cache, the kernels) reads `current()`: the settings a command runs under (`use`), else `Settings()`.
Add fields here rather than passing loose keyword arguments or reading environment variables.
"""

from __future__ import annotations

import os
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from m3analyst.errors import InputError, UsageError

ENV_PREFIX = "M3ANALYST_"
LOCAL_CONFIG = "m3analyst.toml"
MODEL_FREE_NAMES = ("", "none")  # --model none (and the same in a file or the environment): no model


class Section(BaseModel):
    """A settings section: unknown keys are errors (a typo in a config file must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AttentionSettings(Section):
    backend: Literal["msa", "dense"] = Field("msa", description="msa: block top-K sparse attention; dense: exact SDPA")
    block_size: int = Field(32, ge=8, description="tokens per KV block (32 by measurement: at the same tokens read, "
                            "finer blocks choose better; see top_k)")
    top_k: int = Field(80, ge=1, description="blocks attended per KV-head group and decode step (sink and local included); "
                       "80 x 32-token blocks by measurement (RESULTS.md, fidelity round 4): the only setting tried that "
                       "kept SmolLM2 within 2% perplexity and >= 95% top-1 agreement of dense at 8K on all five documents "
                       "(72 x 32 missed top-1 on one held-out contract, 32 x 64 missed at 8K by 3-4%; 16 x 64, "
                       "MiniMax-like, cost 6-30%)")
    sink_blocks: int = Field(1, ge=0, description="leading blocks always selected")
    local_blocks: int = Field(2, ge=0, description="most recent blocks always selected")
    dense_layers: int = Field(0, ge=0, description="first N layers stay dense (measured: no fidelity gain on SmolLM2)")
    dense_below: int = Field(
        0, ge=0, description="contexts at or below this many tokens run dense (0: top_k * block_size)"
    )
    scorer: Literal["auto", "mean", "minmax", "minmax-mass", "mean-mass", "hybrid"] = Field(
        "auto", description="how blocks are scored from their summaries (auto: hybrid on CPU, where it is measured "
        "best; minmax on CUDA, which the Triton kernels implement): mean key, minmax (Quest-style bound), or "
        "an estimated attention mass (per-head softmax over blocks, summed over the group) of the bound (minmax-mass), "
        "the mean key (mean-mass) or halfway between them (hybrid); see m3analyst/kernels/msa/naive.py"
    )
    rerank: int = Field(
        2, ge=0, description="two-stage selection on CPU: rerank x top_k candidate blocks by the scorer, then the top_k "
        "with the largest exact attention mass over the candidates' keys (0 or 1: one stage; the GPU kernels use one stage)"
    )
    sparse_prefill_from: int = Field(
        16384, ge=0, description="prefill: queries at or past this position attend block-sparsely (0: never, all dense; "
        "at 8K on SmolLM2 sparse prefill saved <10% for +2-8% perplexity, so only longer prompts use it)"
    )
    prefill_chunk: int = Field(512, ge=64, description="sparse prefill: queries per chunk sharing one block selection")
    prefill_top_k: int = Field(128, ge=1, description="sparse prefill: past blocks per chunk and KV group (sink, local "
                               "included); 128 x 32 tokens = the 4,096 tokens measured with 64 x 64")


class TritonTuning(Section):
    """Launch parameters of the Triton MSA kernels (m3analyst.kernels.msa, triton_*.py); None = the default rule.
    Defaults from the H100 sweeps (benchmarks/RESULTS.md, GPU kernels rounds 3-7); benchmarks/bench_gpu_msa.py
    --part sweep varies them. Tile sizes are in bytes of block summaries one program scores per load."""

    select_block_n: int | None = Field(None, description="blocks per select tile (None: from select_tile_bytes)")
    select_tile_bytes: int = Field(32768, description="select: summary bytes per tile")
    select_max_chunks: int = Field(1024, description="select: most chunks per (batch, KV head)")
    merge_group: int = Field(32, description="select: chunks merged by one program per merge level")
    select_warps: int = Field(4, description="select: warps with tiles of <= 64 blocks")
    select_warps_big: int = Field(4, description="select: warps with larger tiles")
    use_topk: bool | None = Field(None, description="tl.topk for the K-th best score (None: where Triton has it)")
    decode_warps: int = Field(4, description="sparse decode: warps")
    decode_stages: int = Field(2, description="sparse decode: pipeline stages")
    decode_blocks_per_split: int = Field(1, description="sparse decode: selected blocks per split program")
    step_warps: int = Field(4, description="one-launch step: warps (8 cost 3-6 us on the H100)")
    step_merge_lanes: int = Field(256, description="step: candidate lanes a decode program merges")
    step_flat_lanes: int = Field(512, description="step: one candidate list per chunk up to this many lanes")
    step_exact: bool = Field(False, description="step: rescore near-threshold blocks from the fp32 sums when "
                             "scoring bf16 means (costs more than reading the sums outright)")
    step_ranked: bool = Field(False, description="step: pairwise-rank selection instead of tl.topk (20-40% slower)")
    step_tile_bytes: int = Field(32768, description="step: summary bytes per select tile")
    step_tile_bytes_minmax: int | None = Field(None, description="step: tile bytes for minmax (None: step_tile_bytes)")
    step_launches: Literal[0, 1, 2] = Field(1, description="step: 1 launch, or 2 (select, then decode; tests), "
                                            "or 0 (select only; benchmarks)")
    step_select_programs: int = Field(256, description="step: select programs aimed at (persistent tiles; 0: off)")
    step_max_tiles: int = Field(8, description="step: most tiles per persistent select program")
    step_tile_bytes_persistent: int | None = Field(None, description="step: tile bytes when persistent")
    step_tile_bytes_persistent_minmax: int | None = Field(16384, description="step: the same for minmax")
    step_pdl: bool = Field(False, description="step: Hopper programmatic dependent launch (cost 0.6-1.3 us/layer "
                           "inside the 8B-shaped decode step, round 6)")
    step_pdl_trigger: bool = Field(True, description="step with PDL: let the next launch start after the wait")


class KernelSettings(Section):
    """Switches of the kernels (m3analyst.kernels) that were environment variables before."""

    cpu: bool = Field(True, description="build and use the C CPU kernels (off: the PyTorch paths); was "
                      "M3ANALYST_CPU_KERNEL")
    isa: Literal["native", "avx2"] = Field(
        "native", description="CPU instruction set the C kernels are built for and the engine plans by: native, or "
        "avx2 to emulate an AVX2-only x86 CPU on one with AVX-512/AMX (x86-64-v3 builds, avx512*/amx* flags hidden); "
        "also M3ANALYST_ISA")
    msa_backend: Literal["auto", "torch", "triton"] = Field(
        "auto", description="MSA op backend: auto (triton for CUDA tensors where Triton imports, else torch, the "
        "plain-PyTorch reference); was M3ANALYST_MSA_BACKEND")
    msa_means: Literal["bf16", "fp32"] = Field(
        "bf16", description="CUDA mean scorer: score from bf16 block means (half the bytes; GPU kernels round 7) or "
        "the exact fp32 sums; was M3ANALYST_MSA_MEANS")
    msa_fold: bool = Field(True, description="CUDA: fold a decode token's summary update into the decode launch; "
                           "was M3ANALYST_MSA_FOLD")
    msa_kv_fold: bool = Field(True, description="CUDA: fold a decode token's key/value write into the same launch "
                              "(needs msa_fold); was M3ANALYST_MSA_KV_FOLD")
    triton: TritonTuning = Field(default_factory=TritonTuning, description="Triton launch parameters (was the "
                                 "kernels' TUNING dict)")


class EngineSettings(Section):
    model: str | None = Field("auto", description="auto (the machine's choice: engine/auto.py), registry name, HF "
                              "model directory or .gguf path; "
                              "None (written 'none' on the command line, in a file or the environment): no model, "
                              "extractive memos")
    device: str = Field("auto", description="auto, cpu or cuda")
    dtype: str = Field("auto", description="auto (bf16 where the CPU/GPU supports it), float32, bfloat16, float16, "
                       "or int8 (weight-only int8 decode)")
    threads: int | None = Field(None, description="CPU threads for prefill (default: all cores; 1 on an overloaded machine)")
    decode_threads: int | None = Field(None, description="CPU threads for decode steps (default: measured best, see RESULTS.md)")
    kv_cache: Literal["auto", "model", "bfloat16"] = Field(
        "auto", description="KV cache dtype: auto = bf16 where decode runs as the C layer step on fp32 activations "
        "(CPUs without bf16: halves the bytes attention reads per token), else the model's; model; bfloat16")
    max_new_tokens: int = Field(256, ge=0, description="generation budget per call")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    seed: int = Field(0, description="sampling seed")
    attention: AttentionSettings = Field(default_factory=AttentionSettings)
    backend: Literal["local", "openai"] = Field("local", description="local: the embedded engine; openai: an "
                                                "OpenAI-compatible server at base_url (no block provenance)")
    base_url: str | None = Field(None, description="openai backend: the server's API root, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="openai backend: environment variable holding the API key")
    remote_model: str | None = Field(None, description="openai backend: model name (default: the server's first)")
    time_budget: float = Field(120.0, gt=0, description="model auto on CPU: seconds the prompt's prefill may take "
                               "(picks the model and caps the prompt; from a per-machine calibration)")
    kernels: KernelSettings = Field(default_factory=KernelSettings)

    @field_validator("model", mode="before")
    @classmethod
    def _model_free(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in MODEL_FREE_NAMES else v


class MemoSettings(Section):
    budget: int | None = Field(None, ge=256, description="prompt token budget (default: model context - generation "
                               "reserve)")
    reserve: int = Field(512, ge=0, description="tokens kept free for generation when budgeting the prompt")
    max_quotes: int = Field(3, ge=0, description="verbatim passages quoted per memo heading")
    heading_tokens: int = Field(24, ge=0, description="tokens generated per memo heading (capped by engine.max_new_tokens); "
                                "the answer's MSA block reads show which pages the model read; raise it for a narrative")
    candidates: int = Field(4, ge=1, description="candidate passages the engine scores per memo heading")
    drop_unsupported: bool = Field(True, description="drop generated sentences the verifier cannot support")


class IngestSettings(Section):
    doc_cache: bool = Field(True, description="keep parsed PDFs under $M3ANALYST_HOME/documents (m3analyst/ingest/"
                            "cache.py); was M3ANALYST_DOC_CACHE")


class DomainsSettings(Section):
    dirs: list[Path] = Field(default_factory=list, description="folders searched for domains (a `<name>/spec.yaml` "
                             "folder or a `<name>.yaml` file) before $M3ANALYST_HOME/domains and the built-in ones; "
                             "the legacy M3ANALYST_DOMAINS (os.pathsep-separated) is searched first")


class LimitsSettings(Section):
    """Bounds on one input document: past one, ingest stops with an error naming the limit (never a hang)."""

    max_file_mb: float = Field(256, gt=0, description="largest document file read, in MB (2**20 bytes); the biggest "
                               "corpus file, a 503-page 10-K, is about 12 MB")
    max_pages: int = Field(5000, ge=1, description="most pages in one document (PDF pages, or pages marked in HTML / text)")
    max_line_chars: int = Field(100_000, ge=1, description="longest line of extracted text, in characters (the longest "
                                "line in the corpus's 240 text documents is 9,575; analysis runs at about 20 s per MB "
                                "of one line, so a 50 MB line is refused at once rather than analysed for 20 minutes)")
    max_paragraphs: int = Field(250_000, ge=1, description="most paragraphs (blocks between blank lines) in one document")
    max_depth: int = Field(250, ge=8, description="deepest HTML element nesting read (lxml stops at 256 by itself)")
    document_timeout_s: float = Field(900, gt=0, description="batch: seconds one document may take before it is "
                                      "recorded as failed (timed out) and the batch goes on")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      validate_assignment=True, nested_model_default_partial_update=True)

    engine: EngineSettings = Field(default_factory=EngineSettings)
    memo: MemoSettings = Field(default_factory=MemoSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    # `domain`, not `domains`: M3ANALYST_DOMAINS is the legacy folder list, not this section
    domain: DomainsSettings = Field(default_factory=DomainsSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest precedence first: the command line, the environment (legacy names below it), the files."""
        files = [InitSettingsSource(settings_cls, _read_toml(p)) for p in reversed(config_files())]
        return (init_settings, env_settings, InitSettingsSource(settings_cls, _legacy_env()), *files)


# The environment switches these fields replace; still read, below the M3ANALYST_<SECTION>__<FIELD> names.
LEGACY_ENV = {
    "M3ANALYST_CPU_KERNEL": ("engine", "kernels", "cpu"),
    "M3ANALYST_MSA_BACKEND": ("engine", "kernels", "msa_backend"),
    "M3ANALYST_MSA_MEANS": ("engine", "kernels", "msa_means"),
    "M3ANALYST_MSA_FOLD": ("engine", "kernels", "msa_fold"),
    "M3ANALYST_MSA_KV_FOLD": ("engine", "kernels", "msa_kv_fold"),
    "M3ANALYST_DOC_CACHE": ("ingest", "doc_cache"),
    "M3ANALYST_ISA": ("engine", "kernels", "isa"),
}


def config_files() -> list[Path]:
    """The config files read, lowest precedence first: $M3ANALYST_HOME/config.toml, then ./m3analyst.toml."""
    home = Path(os.environ.get("M3ANALYST_HOME", Path.home() / ".cache" / "m3analyst"))
    return [home / "config.toml", Path.cwd() / LOCAL_CONFIG]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(path, f"cannot read the settings file ({getattr(e, 'strerror', None) or e})") from None


def _legacy_env() -> dict[str, Any]:
    data: dict[str, Any] = {}
    for var, path in LEGACY_ENV.items():
        if var in os.environ:
            node = data
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = os.environ[var]
    return data


def assignment(text: str) -> dict[str, Any]:
    """'section.field=value' (any depth) -> the nested dict {section: {field: value}}; the value is parsed as
    TOML when it parses ('8', 'true', '"x"', '[1, 2]'), else kept as a string."""
    key, sep, raw = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        hint = "" if sep else " (eval's data set is --dataset NAME)"
        raise UsageError(f"--set {text!r}: expected SECTION.FIELD=VALUE, e.g. engine.attention.top_k=64{hint}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    out: dict[str, Any] = {}
    node = out
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update` merged in, section by section (a new dict)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(overrides: dict[str, Any] | None = None, names: dict[str, str] | None = None) -> Settings:
    """The effective settings: files < environment < `overrides` (nested dict, e.g. from flags and --set).
    names: dotted field -> how the user wrote it ("--attention"), for the error message."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as e:
        raise UsageError(_where(e, names or {})) from None


def _where(e: ValidationError, names: dict[str, str]) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"bad setting {loc}: no such setting"
    return f"{names.get(loc, 'bad setting ' + loc)}: {err['msg']} (got {err.get('input')!r})"


_active: list[Settings] = []


def current() -> Settings:
    """The settings the running command uses (`use`), else those of the files and the environment."""
    return _active[-1] if _active else load()


@contextmanager
def use(settings: Settings) -> Iterator[Settings]:
    """Make `settings` what `current()` returns inside the block (the CLI wraps each command in it)."""
    _active.append(settings)
    try:
        yield settings
    finally:
        _active.remove(settings)
