"""The embedded engine: tokenize, prefill once, generate (MSA or dense), score.

    eng = load_engine()                          # engine/load.py: pulls + converts the default model on first use
    res = eng.generate([{"role": "user", "content": "Hi"}], max_new_tokens=32)
    sess = eng.prefill(document_prompt)            # engine/session.py: KV cache of the long prefix, computed once
    res = sess.generate("\nQuestion: ...", max_new_tokens=64)   # reuses the prefix cache

The rest lives beside it: the host (device, dtype, threads) in host.py, the decode loop in decode.py.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import torch

from m3analyst.engine import attention
from m3analyst.engine.kv_cache import MSACache
from m3analyst.engine.decode import DecodeRun, EngineStats, GenerationResult, GenParams
from m3analyst.engine.fastdecode import FastDecoder, kv_cache_dtype
from m3analyst.engine.host import cpu_kernels, cpu_op_paths, pick_threads
from m3analyst.engine.msa_ops import needs_minmax, resolve_scorer
from m3analyst.engine.session import PrefillSession
from m3analyst.errors import ContextTooLongError, ModelError, UsageError
from m3analyst.settings import AttentionSettings, EngineSettings

__all__ = ["Engine", "EngineStats", "GenerationResult", "PrefillSession", "cache_keyword"]

PREFILL_CHUNK = 8192  # tokens per prefill forward (bounds activation memory; one causal SDPA call up to this)
METER_CHUNK = 512  # with a progress meter, prompts over twice this prefill in chunks of it (progress between them)
PREFILL_MODEL_MIN_TOKENS = 32  # forwards of at least this many tokens use the prefill weights


def cache_keyword(model) -> str:
    """Name of the forward argument that takes the KV cache: `cache` (transformers >= 5.2x; `past_key_values`
    is deprecated there) or `past_key_values` (older). A wrong name is silently swallowed by **kwargs."""
    kind = type(model)
    if kind not in _CACHE_KEYWORD:
        params = inspect.signature(model.forward).parameters
        _CACHE_KEYWORD[kind] = "cache" if "cache" in params else "past_key_values"
    return _CACHE_KEYWORD[kind]


_CACHE_KEYWORD: dict[type, str] = {}


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
        self.fast_decoder = FastDecoder.build(model) if self.device.type == "cpu" else None  # C decode step, or None
        self.kv_dtype = kv_cache_dtype(settings.kv_cache, self.fast_decoder)
        # int8 decode weights with fp32 activations (CPUs without bf16) multiply several rows by dequantizing every
        # weight tile per call: any forward of 2+ tokens (session scoring, short suffixes) takes the fp32 prefill copy
        self._prefill_min_tokens = 2 if self.dtype == torch.float32 else PREFILL_MODEL_MIN_TOKENS
        self.meter = None  # progress.EngineMeter: prefill / decode progress on stderr (set by load_engine)
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
        from m3analyst.kernels.cbuild import cpu_flags

        c = self.config
        prefill = self.prefill_model if self.prefill_model is not None else self.model
        decode_int8 = any(type(m).__name__ == "Int8Linear" for m in self.model.modules())
        on_cpu = self.device.type == "cpu"
        return {
            "name": self.name, "path": str(self.path), "architecture": type(self.model).__name__,
            "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
            "kv_heads": getattr(c, "num_key_value_heads", c.num_attention_heads),
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            "context_length": self.context_length, "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
            "prefill_dtype": str(self.prefill_model.dtype if self.prefill_model is not None else self.dtype).replace("torch.", ""),
            "decode_weights": "int8" if decode_int8 else str(self.dtype).replace("torch.", ""),
            "kv_cache": str(self.kv_dtype or prefill.dtype).replace("torch.", ""),
            "threads": self._prefill_threads, "decode_threads": self._decode_threads,
            "attention": self.attention_settings().model_dump(),
            "cpu_kernels": cpu_kernels() if on_cpu else {},
            "cpu_flags": " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma", "asimd", "sve"))))
            if on_cpu else "",
            "op_paths": cpu_op_paths(decode_int8, prefill.dtype, bool(self.fused_modules), self.fast_decoder) if on_cpu else {},
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
                        minmax=needs_minmax(a.scorer) if minmax is None else minmax,
                        dtype=self.kv_dtype)  # None: the prefill's (bf16 on AMX)

    def _forward(self, ids: list[int], cache: MSACache, ctx: attention.RunContext, all_logits: bool = False):
        """Run ids through the model after the cache's current length; returns logits [T or 1, V] fp32."""
        start = cache.length
        x = torch.tensor([ids], device=self.device)
        pos = torch.arange(start, start + len(ids), device=self.device)[None]
        model = self.prefill_model if self.prefill_model is not None and len(ids) >= self._prefill_min_tokens else self.model
        threads = self._decode_threads if len(ids) == 1 else self._prefill_threads
        if self.device.type == "cpu" and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        calls = ctx.calls
        if len(ids) == 1 and model is self.model and self.fast_decoder is not None:
            logits = self.fast_decoder.step(ids[0], start, cache, ctx)  # None: not taken, the model runs below
            if logits is not None:
                self._check_forward(cache, start + 1, ctx, calls)
                return logits
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
        step = PREFILL_CHUNK if self.meter is None or len(ids) <= 2 * METER_CHUNK else METER_CHUNK
        if self.meter is not None:
            self.meter.begin("prefill")
        for i in range(0, len(ids), step):
            logits = self._forward(ids[i : i + step], cache, ctx)
            if self.meter is not None:
                self.meter("prefill", min(i + step, len(ids)), len(ids))
        return logits[-1]

    def _check_length(self, n: int) -> None:
        if n == 0:
            raise UsageError("empty prompt: nothing to condition the generation on")
        if n >= self.context_length:
            raise ContextTooLongError(n, self.context_length)

    def _params(self, max_new_tokens, temperature, seed, stop, deadline: float | None = None) -> GenParams:
        s = self.settings
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return GenParams(s.max_new_tokens if max_new_tokens is None else int(max_new_tokens),
                         s.temperature if temperature is None else float(temperature),
                         s.seed if seed is None else int(seed), stop, deadline)

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
        run = DecodeRun(self, cache, prefix_len=0, new_ids=ids, params=params)
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
