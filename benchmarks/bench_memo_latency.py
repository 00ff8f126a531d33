"""End-to-end latency of `m3analyst finance FILE` with the default model, broken down by stage.

    python benchmarks/bench_memo_latency.py [FILE] [--model NAME] [--budget TOKENS] [--max-new-tokens N]

Stages: ingest (load_document), model_load, extract (facts), prompt (budgeting + rendering),
prefill (the whole prompt once), decode (per-heading generation), rank (engine scoring of candidate
passages), verify, render (Markdown). Prints one JSON line with the figures and the machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from m3analyst.resources import corpus_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?", default=str(corpus_dir() / "finance" / "3M_2018_10K.pdf"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--budget", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--attention", default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    from m3analyst.engine import load_engine
    from m3analyst.ingest import load_document
    from m3analyst.memo import write_memo
    from m3analyst.memo.render_md import render_markdown
    from m3analyst.settings import Settings

    s = Settings()
    if args.model:
        s.engine.model = args.model
    if args.budget:
        s.memo.budget = args.budget
    if args.max_new_tokens is not None:
        s.engine.max_new_tokens = s.memo.heading_tokens = args.max_new_tokens
    if args.attention:
        s.engine.attention.backend = args.attention
    t = time.perf_counter()
    doc = load_document(args.file)
    ingest = time.perf_counter() - t
    t = time.perf_counter()
    eng = load_engine(s.engine, progress=lambda *a: None) if s.engine.model != "none" else None
    model_load = time.perf_counter() - t
    memo = write_memo(doc, "finance", s, engine=eng)
    t = time.perf_counter()
    md = render_markdown(memo)
    render = time.perf_counter() - t
    total = time.perf_counter() - t0
    stages = {"ingest": ingest, "model_load": model_load, **memo.timings, "render": render, "total": total}
    out = {
        "file": os.path.basename(args.file), "pages": doc.n_pages, "model": s.engine.model,
        "attention": s.engine.attention.backend, "seconds": {k: round(v, 2) for k, v in stages.items()},
        "prompt_tokens": memo.budget["prompt_tokens"], "budget": memo.budget["budget"],
        "new_tokens": (memo.engine or {}).get("new_tokens"), "grounding": memo.grounding,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu", "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "memo_chars": len(md),
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
