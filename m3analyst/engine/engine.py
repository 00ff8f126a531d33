"""The embedded engine: load a model, tokenize, prefill once, generate (MSA or dense), score.

    eng = load_engine()                          # pulls + converts the default model on first use
    res = eng.generate([{"role": "user", "content": "Hi"}], max_new_tokens=32)
    sess = eng.prefill(document_prompt)            # KV cache of the long prefix, computed once
    res = sess.generate("\nQuestion: ...", max_new_tokens=64)   # reuses the prefix cache
"""

from __future__ import annotations

import inspect
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from m3analyst.engine import attention
from m3analyst.engine.cache import MSACache
from m3analyst.engine.msa_ops import needs_minmax, resolve_scorer
from m3analyst.engine.pull import Reporter, ensure_model
from m3analyst.engine.registry import MODELS, is_local_path
from m3analyst.errors import ContextTooLongError, ModelError, UsageError
from m3analyst.settings import AttentionSettings, EngineSettings, current

PREFILL_CHUNK = 8192  # tokens per prefill forward (bounds activation memory; one causal SDPA call up to this)


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
@dataclass
class EngineStats:
    """Figures of one generate() call. Times in seconds; attention_share = attention time / decode time."""

    prompt_tokens: int = 0  # tokens in the KV cache before generation (prefix + suffix)
    new_tokens: int = 0
    prefill_s: float = 0.0  # prefill of the tokens not already cached
    decode_s: float = 0.0
    decode_tok_s: float = 0.0
    attention_share: float | None = None
    backend: str = "msa"
    block_size: int = 64
    cached_tokens: int = 0  # prefix tokens reused from a PrefillSession (not recomputed)
    block_hits: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [n_prompt_blocks]
    selections: np.ndarray | None = None  # MSA: [steps, layers, Hkv, top_k] block ids, -1 = dense layer / unused

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("prompt_tokens", "new_tokens", "prefill_s", "decode_s", "decode_tok_s",
                                           "attention_share", "backend", "block_size", "cached_tokens")}
        d["block_hits"] = [round(float(x), 4) for x in self.block_hits]
        if self.selections is not None and self.selections.size:
            sel = self.selections
            d["mean_blocks_selected"] = float((sel >= 0).sum(-1)[(sel >= 0).any(-1)].mean())
        return d


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    stats: EngineStats
    finish_reason: str = "length"  # "length" | "eos" | "stop" | "context"


@dataclass(frozen=True)
class GenParams:
    max_new_tokens: int
    temperature: float
    seed: int
    stop: tuple[str, ...]


# ----------------------------------------------------------------------------------------------
# device / dtype choice (registries, not if-chains)
# ----------------------------------------------------------------------------------------------
def _cpu_has_bf16() -> bool:
    from m3analyst.kernels.cbuild import cpu_flags

    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


@dataclass(frozen=True)
class DtypePlan:
    """Weights for decode (one token per step) and, optionally, a second copy for prefill (many tokens)."""

    decode: torch.dtype
    prefill: torch.dtype | None = None  # None: the decode weights do prefill too
    decode_int8: bool = False  # decode linears as weight-only int8 (activations in `decode` dtype)


def _cpu_plan() -> DtypePlan:
    """CPU: PyTorch's bf16 GEMM (AMX/AVX512-BF16) makes prefill ~4x faster than fp32, but its one-row
    (decode) kernels are no faster than fp32; decode reads every weight once per token, so weight-only
    int8 linears (bf16 activations) decode fastest where the CPU has bf16 (measured: RESULTS.md, "Engine
    round 2"). Without bf16: fp32 throughout."""
    if not _cpu_has_bf16():
        return DtypePlan(torch.float32)
    from m3analyst.engine.quant import int8_supported

    return DtypePlan(torch.bfloat16, torch.bfloat16, decode_int8=True) if int8_supported() else DtypePlan(torch.float32, torch.bfloat16)


_AUTO_DTYPE = {
    "cpu": _cpu_plan,
    "cuda": lambda: DtypePlan(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16),
}
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}
_NAMED_PLANS = {  # CPU: int8 weight-only decode (a quarter of fp32's bytes per token), bf16 prefill
    "int8": lambda: DtypePlan(torch.bfloat16, torch.bfloat16, decode_int8=True),
}
PREFILL_MODEL_MIN_TOKENS = 32  # forwards of at least this many tokens use the prefill weights


def pick_threads(setting: int | None) -> int:
    """CPU threads for prefill (settings.threads) and for decode (settings.decode_threads): the setting, else
    the cores that other tasks leave free (at least one). Other tasks = runnable tasks outside this process in
    /proc/loadavg, the least of a few samples a few ms apart (a snapshot, so this process's own recent work
    and its spinning OpenMP workers do not count against it); where that file is missing, one thread once
    the 1-minute load reaches 1.5x the cores. Why it matters: threads wait on each other at every parallel op, so on a shared core a step
    stalls for a whole time slice -- measured here at load 9 on 2 cores, a decode step took ~1 s with 2
    threads and ~0.1 s with 1 (RESULTS.md, "Engine round 2"). Asked at every prefill and every generation,
    so a long-lived engine follows the machine."""
    if setting:
        return setting
    cores = os.cpu_count() or 1
    others = _other_runnable_tasks()
    if others is not None:
        return max(1, cores - others)
    try:
        busy = os.getloadavg()[0] >= 1.5 * cores
    except OSError:
        busy = False
    return 1 if busy and cores > 1 else cores


class DecodeThreadGuard:
    """Decode threads that follow the machine during a generation, not only at its start.

    With 2 OpenMP threads on 2 cores, a process that starts competing mid-generation makes every op wait for a
    descheduled thread: measured here, a decode step went from ~25 ms to ~400 ms (RESULTS.md, "Engine round 4").
    After each step, `step_done(seconds)` compares the step with the fastest one of this run; a step `STALL` times
    slower (and over `STALL_MIN_S`) re-asks `pick_threads`, so the engine drops to the cores left free; while it
    runs on fewer threads than cores it asks again every `RECHECK_STEPS` steps, to take the cores back once free.
    Off when the settings fix decode_threads."""

    STALL, STALL_MIN_S, RECHECK_STEPS = 4.0, 0.05, 32

    def __init__(self, engine: "Engine", cores: int | None = None):
        self.engine, self.cores = engine, cores or os.cpu_count() or 1
        self.auto = not engine.settings.decode_threads
        self.fastest, self.steps = math.inf, 0

    def step_done(self, seconds: float) -> None:
        self.steps += 1
        if not self.auto:
            return
        current = self.engine._decode_threads
        stalled = seconds > self.STALL * self.fastest and seconds > self.STALL_MIN_S
        self.fastest = min(self.fastest, seconds)
        if stalled or (current < self.cores and self.steps % self.RECHECK_STEPS == 0):
            threads = pick_threads(None)
            if threads != current:
                self.engine._decode_threads = threads
                self.fastest = math.inf  # the step time at the new thread count is learnt afresh


def _other_runnable_tasks(samples: int = 3, gap_s: float = 0.003) -> int | None:
    """Runnable tasks on the machine outside this process (/proc/loadavg field 4 minus this process's
    running threads, e.g. OpenMP workers still spinning after the last parallel op), the least of a few
    samples; None where /proc is missing or unreadable."""
    counts = []
    for i in range(samples):
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            own = sum(1 for t in Path("/proc/self/task").iterdir() if _task_running(t))
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(0, running - max(own, 1)))
        if i + 1 < samples:
            time.sleep(gap_s)
    return min(counts)


def _task_running(task: Path) -> bool:
    try:
        stat = (task / "stat").read_text()
    except OSError:  # the thread ended meanwhile
        return False
    return stat[stat.rindex(")") + 2 :].startswith("R")


def cpu_kernels() -> dict[str, bool]:
    """Which C kernels this machine built (m3analyst.kernels; each falls back to PyTorch when False)."""
    from m3analyst.kernels import attn_amx, int8_cpu, msa_cpu, norm_cpu

    return {"msa_decode": msa_cpu.library() is not None, "int8_linear": int8_cpu.library() is not None,
            "amx_prefill_attention": attn_amx.library() is not None, "fused_norm_mlp": norm_cpu.library() is not None}


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {setting!r} requested but CUDA is not available")
    return torch.device(setting)


def pick_dtype(setting: str, device: torch.device) -> DtypePlan:
    if setting == "auto":
        return _AUTO_DTYPE.get(device.type, lambda: DtypePlan(torch.float32))()
    try:
        return _NAMED_PLANS[setting]() if setting in _NAMED_PLANS else DtypePlan(_DTYPES[setting])
    except KeyError:
        raise UsageError(f"unknown dtype {setting!r}; choose auto, {', '.join(sorted(_DTYPES | _NAMED_PLANS))}") from None


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------
def load_engine(settings: EngineSettings | None = None, progress: Reporter | None = None) -> "Engine":
    """Load the model named by settings.model (registry name, HF dir or .gguf), pulling it if needed.

    progress(description, done, total) is called during pull/convert; None draws a Rich progress bar
    on stderr (silent when stderr is not a terminal).
    """
    settings = settings or current().engine
    if settings.model is None:
        raise UsageError("no model selected (--model none)")
    from m3analyst.kernels import msa as kernels_msa

    kernels_msa.configure(settings.kernels)
    torch.set_num_threads(pick_threads(settings.threads))
    if progress is None:
        from m3analyst.engine.progress import rich_reporter

        with rich_reporter() as report:
            hf_dir = ensure_model(settings.model, progress=report)
    else:
        hf_dir = ensure_model(settings.model, progress=progress)
    device = pick_device(settings.device)
    plan = pick_dtype(settings.dtype, device)
    try:
        model, tok = _load_hf(hf_dir, device, plan.decode)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt converted cache: rebuild once
        if is_local_path(settings.model) and not str(settings.model).endswith(".gguf"):
            raise ModelError(f"{hf_dir}: cannot load model: {type(e).__name__}: {e}") from e
        hf_dir = ensure_model(settings.model, progress=progress, rebuild=True)
        model, tok = _load_hf(hf_dir, device, plan.decode)
    fused = _fuse_cpu_modules(model)
    prefill_model = None
    if plan.decode_int8:
        from m3analyst.engine.quant import int8_copy

        prefill_model, model = model, int8_copy(model, plan.decode)
    elif plan.prefill is not None and plan.prefill != plan.decode:
        import copy

        prefill_model = copy.deepcopy(model).to(plan.prefill)
    name = settings.model if not is_local_path(settings.model) else Path(settings.model).name
    spec = MODELS.get(settings.model)
    return Engine(model, tok, settings, name=name, path=hf_dir, context_length=spec.context_length if spec else None,
                  prefill_model=prefill_model, fused_modules=fused)


def _fuse_cpu_modules(model) -> dict[str, int]:
    """bf16 on CPU: RMSNorms and gated MLPs onto the fused C kernels (engine/fuse.py); counts swapped."""
    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype != torch.bfloat16:
        return {}
    from m3analyst.engine.fuse import fuse_modules

    return fuse_modules(model)


def _load_hf(hf_dir: Path, device: torch.device, dtype: torch.dtype):
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    impl = attention.register()
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype, attn_implementation=impl)
    return model.to(device).eval(), tok


def cache_keyword(model) -> str:
    """Name of the forward argument that takes the KV cache: `cache` (transformers >= 5.2x; `past_key_values`
    is deprecated there) or `past_key_values` (older). A wrong name is silently swallowed by **kwargs."""
    kind = type(model)
    if kind not in _CACHE_KEYWORD:
        params = inspect.signature(model.forward).parameters
        _CACHE_KEYWORD[kind] = "cache" if "cache" in params else "past_key_values"
    return _CACHE_KEYWORD[kind]


_CACHE_KEYWORD: dict[type, str] = {}


# ----------------------------------------------------------------------------------------------
# engine
# ----------------------------------------------------------------------------------------------
class Engine:
    def __init__(self, model, tokenizer, settings: EngineSettings, name: str, path: Path | None = None,
                 context_length: int | None = None, prefill_model=None, fused_modules: dict[str, int] | None = None):
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.prefill_model = prefill_model  # optional second copy of the weights for many-token forwards
        self._prefill_threads = pick_threads(settings.threads)
        self._decode_threads = pick_threads(settings.decode_threads)
        self.name, self.path = name, path
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.config = cfg
        self.context_length = int(context_length or getattr(cfg, "max_position_embeddings", 2048))
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.last_result: GenerationResult | None = None
        self.fused_modules = fused_modules or {}  # modules swapped onto fused CPU kernels (load_engine)
        self.track_hits = True  # record block selections (MSA) / attention mass (dense: costs a second q.K pass)
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = {tokenizer.eos_token_id} | set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {int(e) for e in eos if e is not None}

    # --- text -------------------------------------------------------------------------------
    def _add_special(self, text: str) -> bool:
        bos = self.tokenizer.bos_token
        return not (bos and text.startswith(bos))

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of `text` as the engine feeds it, with each token's (start, end) char offsets."""
        enc = self.tokenizer(text, add_special_tokens=self._add_special(text), return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=self._add_special(text))["input_ids"])

    def _encode_suffix(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render_chat(self, messages: list[dict]) -> str:
        """The chat template applied (generation prompt added), as text. Base models: 'role: content' lines."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lines = [f"{m['role']}: {m['content']}" if m["role"] != "user" else m["content"] for m in messages]
        return "\n\n".join(lines) + "\n\n"

    def info(self) -> dict:
        c = self.config
        return {
            "name": self.name, "path": str(self.path), "architecture": type(self.model).__name__,
            "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
            "kv_heads": getattr(c, "num_key_value_heads", c.num_attention_heads),
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            "context_length": self.context_length, "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "prefill_dtype": str(self.prefill_model.dtype if self.prefill_model is not None else self.dtype).replace("torch.", ""),
            "decode_weights": "int8" if any(type(m).__name__ == "Int8Linear" for m in self.model.modules())
            else str(self.dtype).replace("torch.", ""),
            "threads": self._prefill_threads, "decode_threads": self._decode_threads,
            "attention": self.attention_settings().model_dump(),
            "cpu_kernels": cpu_kernels() if self.device.type == "cpu" else {},
            "fused_modules": self.fused_modules,
        }

    # --- running ----------------------------------------------------------------------------
    def attention_settings(self) -> AttentionSettings:
        """The attention settings this engine runs with: scorer "auto" resolved for its device."""
        return resolve_scorer(self.settings.attention, self.device)

    def _new_cache(self, capacity: int, minmax: bool | None = None) -> MSACache:
        """A cache for `capacity` tokens; min/max block summaries kept when the scorer needs them (or minmax=True)."""
        a = self.attention_settings()
        return MSACache(self.config.num_hidden_layers, min(capacity, self.context_length), a.block_size,
                        minmax=needs_minmax(a.scorer) if minmax is None else minmax)  # dtype: the prefill's (bf16 on AMX)

    def _forward(self, ids: list[int], cache: MSACache, ctx: attention.RunContext, all_logits: bool = False):
        """Run ids through the model after the cache's current length; returns logits [T or 1, V] fp32."""
        start = cache.length
        x = torch.tensor([ids], device=self.device)
        pos = torch.arange(start, start + len(ids), device=self.device)[None]
        model = self.prefill_model if self.prefill_model is not None and len(ids) >= PREFILL_MODEL_MIN_TOKENS else self.model
        threads = self._decode_threads if len(ids) == 1 else self._prefill_threads
        if self.device.type == "cpu" and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        calls = ctx.calls
        with attention.active(ctx):
            out = model(input_ids=x, position_ids=pos, use_cache=True, msa=ctx, logits_to_keep=0 if all_logits else 1,
                        **{cache_keyword(model): cache})
        self._check_forward(cache, start + len(ids), ctx, calls)
        return out.logits[0].float()

    def _check_forward(self, cache: MSACache, expect_len: int, ctx: attention.RunContext, calls_before: int) -> None:
        """Fail loudly where attention would otherwise be silently wrong (cache or context not reaching the layers)."""
        import transformers

        where = f"transformers {transformers.__version__}, {type(self.model).__name__}"
        if cache.length != expect_len:
            raise ModelError(f"the model did not write its keys/values into the engine's KV cache ({where}): "
                             "attention would see only the current chunk; use a supported transformers version")
        if ctx.calls == calls_before:
            raise ModelError(f"the MSA attention function did not receive its run context ({where}; attention "
                             f"implementation {self.model.config._attn_implementation!r}): sparse attention and its "
                             "statistics would be silently wrong")

    def _prefill_ids(self, ids: list[int], cache: MSACache, ctx: attention.RunContext) -> torch.Tensor:
        self._prefill_threads = pick_threads(self.settings.threads)
        logits = None
        for i in range(0, len(ids), PREFILL_CHUNK):
            logits = self._forward(ids[i : i + PREFILL_CHUNK], cache, ctx)
        return logits[-1]

    def _check_length(self, n: int) -> None:
        if n == 0:
            raise UsageError("empty prompt: nothing to condition the generation on")
        if n >= self.context_length:
            raise ContextTooLongError(n, self.context_length)

    def _params(self, max_new_tokens, temperature, seed, stop) -> GenParams:
        s = self.settings
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return GenParams(s.max_new_tokens if max_new_tokens is None else int(max_new_tokens),
                         s.temperature if temperature is None else float(temperature),
                         s.seed if seed is None else int(seed), stop)

    def _context(self, cache: MSACache, attention_override: dict | None = None) -> attention.RunContext:
        a = self.attention_settings()
        if attention_override:
            a = a.model_copy(update=attention_override)
        return attention.RunContext(settings=a, cache=cache, mode=a.backend, track=self.track_hits)

    def generate(self, prompt_or_messages, max_new_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, stop=None, stream: bool = False):
        """Generate after a prompt (text) or chat messages (template applied). stream=True yields text pieces."""
        prompt = prompt_or_messages if isinstance(prompt_or_messages, str) else self.render_chat(prompt_or_messages)
        params = self._params(max_new_tokens, temperature, seed, stop)
        ids = self.encode(prompt)[0]
        self._check_length(len(ids))
        cache = self._new_cache(len(ids) + params.max_new_tokens + 1)
        run = _Run(self, cache, prefix_len=0, new_ids=ids, params=params)
        return run.stream() if stream else run.result()

    def prefill(self, prompt_text: str | list[int], reserve: int | None = None) -> "PrefillSession":
        """Compute the KV cache of a long prefix once; continue from it with session.generate/score.

        prompt_text may also be a list of token ids (benchmarks); prefix_offsets are then empty.
        """
        if isinstance(prompt_text, str):
            ids, offsets = self.encode(prompt_text)
        else:
            ids, offsets, prompt_text = list(prompt_text), [], ""
        self._check_length(len(ids))
        reserve = self.settings.max_new_tokens + 256 if reserve is None else reserve
        cache = self._new_cache(len(ids) + reserve)
        ctx = self._context(cache)
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = self._prefill_ids(ids, cache, ctx)
        return PrefillSession(self, prompt_text, ids, offsets, cache, logits, time.perf_counter() - t0)

    def score(self, prefix, continuation: str) -> float:
        """Mean log-prob (nats/token) of `continuation` after `prefix` (text or PrefillSession)."""
        sess = prefix if isinstance(prefix, PrefillSession) else self.prefill(prefix, reserve=256)
        return sess.score(continuation)


class PrefillSession:
    """A prefix whose KV cache is computed once and reused by every generate/score call."""

    def __init__(self, engine: Engine, prompt_text: str, ids: list[int], offsets, cache: MSACache,
                 last_logits: torch.Tensor, prefill_s: float):
        self.engine, self.prompt_text = engine, prompt_text
        self.prefix_ids, self.prefix_offsets = ids, offsets
        self.cache, self.last_logits, self.prefill_s = cache, last_logits, prefill_s

    @property
    def n_tokens(self) -> int:
        return len(self.prefix_ids)

    def generate(self, suffix_text: str = "", max_new_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, stop=None, stream: bool = False):
        eng = self.engine
        params = eng._params(max_new_tokens, temperature, seed, stop)
        ids = eng._encode_suffix(suffix_text) if suffix_text else []
        eng._check_length(self.n_tokens + len(ids))
        run = _Run(eng, self.cache, prefix_len=self.n_tokens, new_ids=ids, params=params,
                   first_logits=None if ids else self.last_logits)
        return run.stream() if stream else run.result()

    def score(self, continuation: str) -> float:
        eng = self.engine
        ids = eng._encode_suffix(continuation)
        if not ids:
            raise UsageError("empty continuation to score")
        eng._check_length(self.n_tokens + len(ids))
        ctx = eng._context(self.cache)
        try:
            with torch.inference_mode():
                logits = eng._forward(ids, self.cache, ctx, all_logits=True) if len(ids) > 1 else None
            rows = [self.last_logits] + ([logits[i] for i in range(len(ids) - 1)] if logits is not None else [])
            lp = torch.stack([torch.log_softmax(r, -1)[t] for r, t in zip(rows, ids)])
        finally:
            self.cache.truncate(self.n_tokens)
        return float(lp.mean())


# ----------------------------------------------------------------------------------------------
# one generation run
# ----------------------------------------------------------------------------------------------
class _Run:
    """Prefill new_ids (after prefix_len cached tokens), then decode token by token; restores the cache after."""

    def __init__(self, engine: Engine, cache: MSACache, prefix_len: int, new_ids: list[int], params: GenParams,
                 first_logits: torch.Tensor | None = None):
        self.eng, self.cache, self.prefix_len, self.new_ids, self.p = engine, cache, prefix_len, new_ids, params
        self.first_logits = first_logits

    def _sample(self, logits: torch.Tensor, gen: torch.Generator | None) -> int:
        if self.p.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / self.p.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=gen))

    def result(self) -> GenerationResult:
        for _ in self.stream():
            pass
        return self.eng.last_result

    def stream(self) -> Iterator[str]:
        eng, p, cache = self.eng, self.p, self.cache
        eng._decode_threads = pick_threads(eng.settings.decode_threads)  # the machine's load now, once per run
        ctx = eng._context(cache)
        gen = torch.Generator().manual_seed(p.seed) if p.temperature > 0 else None
        out_ids: list[int] = []
        text_sent, finish = "", "length"
        hold = max((len(s) for s in p.stop), default=1) - 1
        t_decode = 0.0
        try:
            with torch.inference_mode():
                t0 = time.perf_counter()
                logits = self.first_logits if self.first_logits is not None else eng._prefill_ids(self.new_ids, cache, ctx)
                prefill_s = time.perf_counter() - t0
                n_prompt = cache.length
                ctx.attn_s = 0.0
                guard = DecodeThreadGuard(eng)
                t0 = time.perf_counter()
                while len(out_ids) < p.max_new_tokens:
                    tok = self._sample(logits, gen)
                    if tok in eng.eos_ids:
                        finish = "eos"
                        break
                    out_ids.append(tok)
                    text = eng.tokenizer.decode(out_ids, skip_special_tokens=True)
                    cut = min((i for i in (text.find(s) for s in p.stop) if i >= 0), default=-1)
                    if cut >= 0:
                        text, finish = text[:cut], "stop"
                    elif text.endswith("\ufffd"):
                        text = text[:-1]
                    ready = text if finish == "stop" else text[: max(len(text_sent), len(text) - hold)]
                    if len(ready) > len(text_sent):
                        t_decode += time.perf_counter() - t0
                        yield ready[len(text_sent):]
                        t0 = time.perf_counter()
                        text_sent = ready
                    if finish == "stop":
                        break
                    if len(out_ids) >= p.max_new_tokens:
                        break
                    if cache.length + 1 >= eng.context_length:
                        finish = "context"
                        break
                    ctx.begin_step()
                    t_step = time.perf_counter()
                    logits = eng._forward([tok], cache, ctx)[-1]
                    guard.step_done(time.perf_counter() - t_step)
                t_decode += time.perf_counter() - t0
            final = eng.tokenizer.decode(out_ids, skip_special_tokens=True)
            if finish == "stop":
                final = text
            if len(final) > len(text_sent) and final.startswith(text_sent):
                yield final[len(text_sent):]
            eng.last_result = GenerationResult(final, out_ids, self._stats(ctx, n_prompt, len(out_ids), prefill_s, t_decode),
                                               finish)
        finally:
            cache.truncate(self.prefix_len)

    def _stats(self, ctx: attention.RunContext, n_prompt: int, n_new: int, prefill_s: float, decode_s: float) -> EngineStats:
        a = ctx.settings
        steps = max(n_new - 1, 0)  # the first token comes from the prefill logits
        n_blocks = math.ceil(n_prompt / a.block_size)
        hits, selections = np.zeros(n_blocks), None
        n_layers = self.eng.config.num_hidden_layers
        if ctx.mode == "msa" and ctx.selections:
            any_idx = next((v for step in ctx.selections for v in step.values()), None)
            if any_idx is not None:
                hkv, k = any_idx.shape[1], any_idx.shape[2]
                selections = np.full((len(ctx.selections), n_layers, hkv, k), -1, dtype=np.int32)
                for s, step in enumerate(ctx.selections):
                    for layer, idx in step.items():
                        selections[s, layer] = idx[0].cpu().numpy()
                flat = selections[(selections >= 0) & (selections < n_blocks)]
                hits = np.bincount(flat, minlength=n_blocks).astype(float)[:n_blocks]
        elif ctx.dense_mass is not None:
            mass = ctx.dense_mass[:n_prompt].cpu().numpy()
            hits = np.add.reduceat(mass, np.arange(0, n_prompt, a.block_size)) if n_prompt else hits
        return EngineStats(
            prompt_tokens=n_prompt, new_tokens=n_new, prefill_s=prefill_s, decode_s=decode_s,
            decode_tok_s=steps / decode_s if decode_s > 0 and steps else 0.0,
            attention_share=ctx.attn_s / decode_s if decode_s > 0 and steps else None,
            backend=ctx.mode, block_size=a.block_size, cached_tokens=self.prefix_len, block_hits=hits,
            selections=selections,
        )
