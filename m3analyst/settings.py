"""One nested settings object (paper-qa style): every field has a default and a description.

CLI flags map onto these fields; `Settings.model_dump()` goes into every JSON report so a run
says exactly how it was made. Add fields here rather than passing loose keyword arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class AttentionSettings(BaseModel):
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
        "the mean key (mean-mass) or halfway between them (hybrid); see m3analyst/engine/scorers.py"
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


class EngineSettings(BaseModel):
    model: str = Field("smollm2-135m-instruct", description="registry name, HF model directory or .gguf path")
    device: str = Field("auto", description="auto, cpu or cuda")
    dtype: str = Field("auto", description="auto (bf16 where the CPU/GPU supports it), float32, bfloat16, float16")
    threads: int | None = Field(None, description="CPU threads for prefill (default: all cores; 1 on an overloaded machine)")
    decode_threads: int | None = Field(None, description="CPU threads for decode steps (default: measured best, see RESULTS.md)")
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


class MemoSettings(BaseModel):
    budget: int | None = Field(None, description="prompt token budget (default: model context - generation reserve)")
    reserve: int = Field(512, ge=0, description="tokens kept free for generation when budgeting the prompt")
    max_quotes: int = Field(3, ge=0, description="verbatim passages quoted per memo heading")
    heading_tokens: int = Field(24, ge=0, description="tokens generated per memo heading (capped by engine.max_new_tokens); "
                                "the answer's MSA block reads show which pages the model read; raise it for a narrative")
    candidates: int = Field(4, ge=1, description="candidate passages the engine scores per memo heading")
    drop_unsupported: bool = Field(True, description="drop generated sentences the verifier cannot support")


class Settings(BaseModel):
    engine: EngineSettings = Field(default_factory=EngineSettings)
    memo: MemoSettings = Field(default_factory=MemoSettings)
