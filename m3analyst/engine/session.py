"""A prefix computed once: its KV cache is reused by every generate / score call after it."""

from __future__ import annotations


import torch

from m3analyst.engine.kv_cache import MSACache
from m3analyst.engine.decode import DecodeRun
from m3analyst.errors import UsageError

class PrefillSession:
    """A prefix whose KV cache is computed once and reused by every generate/score call."""

    def __init__(self, engine, prompt_text: str, ids: list[int], offsets, cache: MSACache,
                 last_logits: torch.Tensor, prefill_s: float):
        self.engine, self.prompt_text = engine, prompt_text
        self.prefix_ids, self.prefix_offsets = ids, offsets
        self.cache, self.last_logits, self.prefill_s = cache, last_logits, prefill_s

    @property
    def n_tokens(self) -> int:
        return len(self.prefix_ids)

    def generate(self, suffix_text: str = "", max_new_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, stop=None, stream: bool = False, deadline: float | None = None):
        """Generate after the cached prefix and `suffix_text`; `deadline` (time.monotonic()) stops the decode."""
        eng = self.engine
        params = eng._params(max_new_tokens, temperature, seed, stop, deadline)
        ids = eng._encode_suffix(suffix_text) if suffix_text else []
        eng._check_length(self.n_tokens + len(ids))
        run = DecodeRun(eng, self.cache, prefix_len=self.n_tokens, new_ids=ids, params=params,
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
