"""Batch throughput: documents per minute with --workers 1, --workers 2 and local Ray actors.

Each configuration runs the same documents into a fresh output folder (nothing skipped), through
`run_batch` exactly as `m3analyst batch` does. Two rates are reported:
  end-to-end  = documents / whole run (worker or Ray start-up and model loads included)
  steady      = (documents - 1) / time from the first to the last finished document
and the workers' CPU seconds per document (time.process_time in the worker), which does not depend on
how busy the machine is: on C free cores the CPU-bound ceiling is C * 60 / (CPU s per document).

    python benchmarks/bench_batch.py                       # finance PDFs, model-free memos
    python benchmarks/bench_batch.py --model smollm2-135m-instruct --configs w1,w2 --limit 4 --smallest \
        --input '../shared/corpus/legal/contracts_txt/*.txt'
    python benchmarks/bench_batch.py --configs w1,w2 --input '../shared/corpus/legal/contracts_txt/*.txt' --limit 20
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from m3analyst.batch import BatchOptions, run_batch
from m3analyst.resources import corpus_dir
from m3analyst.settings import Settings

# name -> (workers, ray target)
CONFIGS = {"w1": (1, None), "w2": (2, None), "ray": (2, "local")}


class _Clock:
    """Runner events -> time of the first and last finished document."""

    def __init__(self) -> None:
        self.first = self.last = None

    def planned(self, rows, todo) -> None:
        pass

    def finished(self, row) -> None:
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now

    def note(self, text) -> None:
        pass


def _manifest(paths: list[str], folder: Path) -> Path:
    man = folder / "bench.jsonl"
    import json

    man.write_text("".join(json.dumps({"path": p}) + "\n" for p in paths))
    return man


def bench(config: str, manifest: Path, settings: Settings) -> dict:
    workers, ray = CONFIGS[config]
    out = Path(tempfile.mkdtemp(prefix=f"bench-batch-{config}-"))
    clock = _Clock()
    t0 = time.perf_counter()
    report = run_batch(BatchOptions(str(manifest), out, settings, workers=workers, ray=ray), clock)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    n = report.processed
    steady = (n - 1) / (clock.last - clock.first) * 60 if n > 1 and clock.last > clock.first else float("nan")
    rows = [r for r in report.rows if r["status"] == "ok"]
    return {
        "config": config,
        "docs": n,
        "ok": report.counts["ok"],
        "failed": report.counts["failed"],
        "wall_s": wall,
        "startup_s": clock.first - t0 if clock.first else float("nan"),
        "end_to_end_dpm": n / wall * 60,
        "steady_dpm": steady,
        "mean_ingest_s": sum(r["ingest_s"] for r in rows) / max(1, len(rows)),
        "mean_memo_s": sum(r["memo_s"] for r in rows) / max(1, len(rows)),
        "cpu_s": sum(r["cpu_s"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(corpus_dir() / "finance" / "*.pdf"), help="glob of documents")
    ap.add_argument("--limit", type=int, default=0, help="first N documents only (0: all)")
    ap.add_argument("--smallest", action="store_true", help="take the smallest files first (with --limit)")
    ap.add_argument("--model", default="none", help="'none' (model-free extractive memos) or a model name")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per worker (default: cores / workers)")
    ap.add_argument("--configs", default="w1,w2,ray", help="comma list of " + ", ".join(CONFIGS))
    args = ap.parse_args()

    paths = sorted(glob.glob(args.input), key=os.path.getsize if args.smallest else None)[: args.limit or None]
    if not paths:
        sys.exit(f"no documents match {args.input}")
    settings = Settings()
    settings.engine.model = args.model
    settings.engine.threads = args.threads
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    manifest = _manifest(paths, folder)
    print(f"# {len(paths)} documents from {args.input}; model={args.model}; threads/worker={args.threads or 'cores/workers'}; cpus={os.cpu_count()}")
    print(f"# load before: {os.getloadavg()}")
    print("| config | docs | ok | failed | wall s | start-up s | docs/min end-to-end | docs/min steady | mean ingest s | mean memo s | worker CPU s/doc |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for config in args.configs.split(","):
        r = bench(config.strip(), manifest, settings)
        print(
            f"| {r['config']} | {r['docs']} | {r['ok']} | {r['failed']} | {r['wall_s']:.1f} | {r['startup_s']:.1f} "
            f"| {r['end_to_end_dpm']:.2f} | {r['steady_dpm']:.2f} | {r['mean_ingest_s']:.2f} | {r['mean_memo_s']:.2f} "
            f"| {r['cpu_s'] / max(1, r['ok']):.2f} |",
            flush=True,
        )
        print(f"# load after {config}: {os.getloadavg()}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
