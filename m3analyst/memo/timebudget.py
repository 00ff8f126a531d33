"""The memo's time budget (`--time-budget`, default 120 s): binding on every phase that runs the model.

The clock starts when the command starts (ingest and model load count). Costs are estimated from the model's
prefill and decode rates on this machine (engine/auto.py's calibration, scaled to the load now) and corrected by
what this run measures as it goes. The writer asks before each phase whether it still fits:

- the document prompt is capped at what its share of the time left prefills (`prompt_cap`); when even the smallest
  prompt (facts and task) does not fit, the document is not read by the model and passages are chosen lexically;
- each generation gets at most the tokens the time left decodes, and a deadline that stops it mid-way;
- passage / driver scoring and the model's rephrasings run while they fit, the rephrasings first.

Whatever was cut is listed (`cuts`) and shown in the memo's appendix and JSON (`engine.time_budget`).
"""

from __future__ import annotations

import time

MARGIN = 0.05  # of the budget kept free for rendering and the unexpected
DECODE_PER_PREFILL = 1 / 6  # decode tok/s per prefill tok/s before any decode is measured (0.5B, this AVX2 VM: 3.2/18.8)


class TimeBudget:
    def __init__(self, seconds: float, start: float | None = None, prefill_tok_s: float = 50.0,
                 decode_tok_s: float | None = None, source: str = ""):
        self.seconds = float(seconds)
        self.start = time.monotonic() if start is None else start
        self.deadline = self.start + self.seconds * (1 - MARGIN)
        self.prefill_tok_s = max(prefill_tok_s, 0.1)
        self.decode_tok_s = max(decode_tok_s or self.prefill_tok_s * DECODE_PER_PREFILL, 0.05)
        self.source = source
        self.cuts: list[str] = []
        self.prompt_cap: int | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def cost(self, n_in: int, n_out: int = 0) -> float:
        """Seconds `n_in` prompt tokens and `n_out` generated ones are expected to take."""
        return n_in / self.prefill_tok_s + n_out / self.decode_tok_s

    def affords_tokens(self, n_in: int, n_out: int = 0, keep: float = 0.0) -> bool:
        return self.cost(n_in, n_out) <= self.left() - keep

    def tokens_out(self, n_in: int, keep: float = 0.0) -> int:
        """How many tokens may be generated after `n_in` prompt tokens with `keep` seconds left over."""
        return max(0, int((self.left() - keep - n_in / self.prefill_tok_s) * self.decode_tok_s))

    def prefill_tokens(self, seconds: float) -> int:
        return max(0, int(seconds * self.prefill_tok_s))

    def observe(self, stats) -> None:
        """Follow this run's measured speed: a generation's EngineStats (suffix prefill and decode)."""
        if getattr(stats, "prefill_s", 0) > 0.5 and stats.prompt_tokens - stats.cached_tokens >= 16:
            self.prefill_tok_s = (stats.prompt_tokens - stats.cached_tokens) / stats.prefill_s
        if getattr(stats, "decode_s", 0) > 0.5 and stats.new_tokens >= 4:
            self.decode_tok_s = (stats.new_tokens - 1) / stats.decode_s

    def observe_prefill(self, tokens: int, seconds: float) -> None:
        if seconds > 0.5 and tokens >= 16:
            self.prefill_tok_s = tokens / seconds

    def cut(self, what: str) -> None:
        self.cuts.append(what)

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "spent_s": round(time.monotonic() - self.start, 1),
                "prefill_tok_s": round(self.prefill_tok_s, 2), "decode_tok_s": round(self.decode_tok_s, 2),
                "rates_from": self.source, "prompt_cap": self.prompt_cap, "cuts": list(self.cuts)}


def for_engine(engine, seconds: float, start: float | None = None) -> TimeBudget | None:
    """The budget of a local engine on CPU (None for a remote backend or a GPU: no calibration there)."""
    device = getattr(engine, "device", None)
    if device is None or device.type != "cpu":
        return None
    from m3analyst.engine.auto import engine_rates

    prefill, decode, source = engine_rates(engine)
    return TimeBudget(seconds, start, prefill, decode, source)
