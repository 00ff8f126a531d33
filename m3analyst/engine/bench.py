"""Engine benchmark: prefill seconds and decode tokens/s at given context lengths, MSA and dense.

Used by `m3analyst engine bench` and benchmarks/bench_engine.py. Prompts are real corpus text when
the corpus is present (token ids cut to the exact length), random ids otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import torch

from m3analyst.resources import corpus_dir


@dataclass
class BenchRow:
    backend: str
    context: int
    prefill_s: float
    prefill_tok_s: float
    decode_tok_s: float
    attention_share: float | None
    decode_steps: int
    load: float  # 1-minute load average when the row finished (2 shared cores here)
    prefill_cpu_s: float = 0.0  # CPU seconds (user+sys, all threads) of this process: robust to other load
    decode_cpu_ms_per_token: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_ids(engine, n: int) -> list[int]:
    """n token ids of real text (a CUAD contract batch), or random ids when the corpus is absent."""
    folder = corpus_dir() / "legal" / "contracts_txt"
    ids: list[int] = []
    if folder.is_dir():
        for f in sorted(folder.glob("*.txt")):
            ids += engine._encode_suffix(f.read_text(errors="ignore"))
            if len(ids) >= n:
                return ids[:n]
    g = torch.Generator().manual_seed(0)
    return torch.randint(100, min(engine.tokenizer.vocab_size, 40000), (n,), generator=g).tolist()


def bench_one(engine, ids: list[int], backend: str, steps: int) -> BenchRow:
    engine.settings.attention.backend = backend
    c0 = time.process_time()
    sess = engine.prefill(ids, reserve=steps + 8)
    c1 = time.process_time()
    res = sess.generate("", max_new_tokens=steps + 1, temperature=0.0)
    c2 = time.process_time()
    st = res.stats
    return BenchRow(backend, len(ids), round(sess.prefill_s, 3), round(len(ids) / sess.prefill_s, 1),
                    round(st.decode_tok_s, 2), None if st.attention_share is None else round(st.attention_share, 4),
                    st.new_tokens - 1, os.getloadavg()[0], round(c1 - c0, 2), round((c2 - c1) / max(st.new_tokens, 1) * 1e3, 1))


def run_bench(engine, contexts: list[int], backends=("msa", "dense"), steps: int = 32) -> list[BenchRow]:
    """One prefill + `steps` greedy decode steps per (context, backend); EOS is ignored for timing."""
    original = engine.settings.attention.backend
    eos, track = engine.eos_ids, engine.track_hits
    engine.eos_ids = set()  # time a fixed number of steps
    engine.track_hits = False  # time attention itself, not the bookkeeping of dense attention mass
    rows = []
    try:
        for ctx in contexts:
            if ctx + steps + 2 > engine.context_length:
                ctx = engine.context_length - steps - 2
            ids = corpus_ids(engine, ctx)
            for backend in backends:
                rows.append(bench_one(engine, ids, backend, steps))
    finally:
        engine.settings.attention.backend = original
        engine.eos_ids, engine.track_hits = eos, track
    return rows
