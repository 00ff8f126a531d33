"""One generation run: prefill the new tokens, then a loop of small steps (gpt-fast style).

    run = DecodeRun(engine, cache, prefix_len, new_ids, params)
    for piece in run.stream(): ...        # or run.result()

Each step is a function of its own: `sample` picks the next token from the logits, `TextStream.push` detokenizes
and holds back text that may still become a stop string (emit), `_stop_reason` says why the loop ends, and
`_step` runs the one-token forward. The cache is truncated back to the prefix when the run ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from m3analyst.engine import attention
from m3analyst.engine.kv_cache import MSACache
from m3analyst.engine.host import DecodeThreadGuard, pick_threads

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
    finish_reason: str = "length"  # "length" | "eos" | "stop" | "context" | "deadline"


@dataclass(frozen=True)
class GenParams:
    max_new_tokens: int
    temperature: float
    seed: int
    stop: tuple[str, ...]
    deadline: float | None = None  # time.monotonic() after which decoding stops (finish_reason "deadline")


def sample(logits: torch.Tensor, temperature: float, gen: torch.Generator | None) -> int:
    """Greedy at temperature 0, else a draw from softmax(logits / temperature)."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


class TextStream:
    """The generated ids as text, released piece by piece: text that could still become the start of a stop
    string is held back, a stop string cuts the text, a trailing partial character waits for its next token."""

    def __init__(self, tokenizer, stop: tuple[str, ...]):
        self.tokenizer, self.stop = tokenizer, stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.text, self.sent, self.stopped = "", "", False

    def push(self, ids: list[int]) -> str:
        """The new piece of text ready after `ids` (possibly empty)."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, self.stopped = text[:cut], True
        elif text.endswith("\ufffd"):
            text = text[:-1]
        self.text = text
        ready = text if self.stopped else text[: max(len(self.sent), len(text) - self.hold)]
        return self._release(ready)

    def finish(self, ids: list[int]) -> tuple[str, str]:
        """(the final text, its piece not yet released)."""
        final = self.text if self.stopped else self.tokenizer.decode(ids, skip_special_tokens=True)
        return final, self._release(final) if final.startswith(self.sent) else ""

    def _release(self, ready: str) -> str:
        if len(ready) <= len(self.sent):
            return ""
        piece, self.sent = ready[len(self.sent):], ready
        return piece


class _Clock:
    """Decode time, without the time the consumer of the stream spends between pieces."""

    def __init__(self):
        self.total, self.t0 = 0.0, time.perf_counter()

    def pause(self) -> None:
        self.total += time.perf_counter() - self.t0

    def resume(self) -> None:
        self.t0 = time.perf_counter()


class DecodeRun:
    """Prefill new_ids (after prefix_len cached tokens), then decode token by token; restores the cache after."""

    def __init__(self, engine, cache: MSACache, prefix_len: int, new_ids: list[int], params: GenParams,
                 first_logits: torch.Tensor | None = None):
        self.eng, self.cache, self.prefix_len, self.new_ids, self.p = engine, cache, prefix_len, new_ids, params
        self.first_logits = first_logits
        self.out_ids: list[int] = []
        self.finish = "length"

    def result(self) -> GenerationResult:
        for _ in self.stream():
            pass
        return self.eng.last_result

    def stream(self) -> Iterator[str]:
        eng = self.eng
        eng._decode_threads = pick_threads(eng.settings.decode_threads)  # the machine's load now, once per run
        ctx = eng._context(self.cache)
        text = TextStream(eng.tokenizer, self.p.stop)
        try:
            with torch.inference_mode():
                t0 = time.perf_counter()
                logits = self.first_logits if self.first_logits is not None else \
                    eng._prefill_ids(self.new_ids, self.cache, ctx)
                prefill_s, n_prompt = time.perf_counter() - t0, self.cache.length
                ctx.attn_s = 0.0
                clock = _Clock()
                yield from self._loop(logits, ctx, text, clock)
                clock.pause()
            final, piece = text.finish(self.out_ids)
            if piece:
                yield piece
            stats = self._stats(ctx, n_prompt, len(self.out_ids), prefill_s, clock.total)
            eng.last_result = GenerationResult(final, self.out_ids, stats, self.finish)
        finally:
            self.cache.truncate(self.prefix_len)

    def _loop(self, logits: torch.Tensor, ctx: attention.RunContext, text: TextStream, clock: _Clock) -> Iterator[str]:
        p, eos = self.p, self.eng.eos_ids
        gen = torch.Generator().manual_seed(p.seed) if p.temperature > 0 else None
        guard = DecodeThreadGuard(self.eng)
        while len(self.out_ids) < p.max_new_tokens:
            tok = sample(logits, p.temperature, gen)
            if tok in eos:
                self.finish = "eos"
                return
            self.out_ids.append(tok)
            piece = text.push(self.out_ids)
            if piece:
                clock.pause()
                yield piece
                clock.resume()
            reason = self._stop_reason(text)
            if reason:
                self.finish = reason
                return
            logits = self._step(tok, ctx, guard)

    def _stop_reason(self, text: TextStream) -> str | None:
        """Why the loop ends after the token just added, or None to go on."""
        if text.stopped:
            return "stop"
        if len(self.out_ids) >= self.p.max_new_tokens:
            return "length"
        if self.cache.length + 1 >= self.eng.context_length:
            return "context"
        if self.p.deadline is not None and time.monotonic() >= self.p.deadline:
            return "deadline"
        return None

    def _step(self, tok: int, ctx: attention.RunContext, guard: DecodeThreadGuard) -> torch.Tensor:
        """One decode step: the token's forward, its time told to the thread guard; the next logits."""
        ctx.begin_step()
        t = time.perf_counter()
        logits = self.eng._forward([tok], self.cache, ctx)[-1]
        guard.step_done(time.perf_counter() - t)
        if self.eng.meter is not None:
            if len(self.out_ids) == 1:
                self.eng.meter.begin("decode")
            self.eng.meter("decode", len(self.out_ids), self.p.max_new_tokens)
        return logits

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
