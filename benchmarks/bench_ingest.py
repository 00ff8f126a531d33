"""Benchmark: full ingest of a 10-K PDF and an EDGAR HTML 10-K (wall time, CPU time, peak RSS).

    python benchmarks/bench_ingest.py                       # 3M 2018 10-K PDF + Apple 2024 10-K HTML, 3 runs each
    python benchmarks/bench_ingest.py FILE ... --runs 5 --stages

Each run is a fresh child process (so peak RSS is per document); the time is `load_document`
only (imports are done before the clock starts). `--stages` also times the PDF stages one by one.
Reported: median wall s, median CPU s (user+sys of the child: less sensitive to a busy machine),
max peak RSS MiB, and the 1-minute load average before the runs (2-core machine shared with others).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT.parent / "shared/corpus/finance/3M_2018_10K.pdf", ROOT.parent / "shared/corpus/finance/aapl-10-k-2024-11-01.html"]

CHILD = r"""
import json, resource, sys, time
from m3analyst.ingest import load_document
import m3analyst.ingest.pdf, m3analyst.ingest.html, m3analyst.ingest.analyze, m3analyst.ingest.pdf_tables  # imports off the clock
import pdfplumber, lxml.html  # noqa
t0, c0 = time.perf_counter(), time.process_time()
doc = load_document(sys.argv[1])
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mib": rss, "pages": doc.n_pages, "tables": len(doc.tables),
                  "statements": sorted(t.kind for t in doc.tables if t.kind in ("income_statement", "balance_sheet", "cash_flow")),
                  "sections": len(doc.sections),
                  "xbrl": 0 if doc.xbrl is None else len(doc.xbrl)}))
"""

STAGES = r"""
import json, sys, time
from pathlib import Path
from m3analyst.ingest.pdf import extract_page_texts, text_layer_report
from m3analyst.ingest.pagelayout import clean_pages
from m3analyst.ingest.model import Document
from m3analyst.ingest.analyze import analyze
from m3analyst.ingest.pdf_tables import add_statement_tables, find_statement_pages
import pdfplumber  # noqa
p = Path(sys.argv[1]); data = p.read_bytes(); out = {}
t = time.perf_counter(); raw = extract_page_texts(p, data); out["pdfium_text"] = time.perf_counter() - t
t = time.perf_counter(); clean = clean_pages(raw); doc = Document.from_pages(clean.texts, labels=clean.labels); out["clean_pages"] = time.perf_counter() - t
t = time.perf_counter(); analyze(doc); out["analyze"] = time.perf_counter() - t
t = time.perf_counter(); pages = find_statement_pages(doc); out["find_statement_pages"] = time.perf_counter() - t
t = time.perf_counter(); add_statement_tables(doc, p, data); out["pdfplumber_tables"] = time.perf_counter() - t
out["statement_pages"] = sorted({n for v in pages.values() for n in v})
print(json.dumps(out))
"""


def run_child(code: str, path: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stages", action="store_true", help="also time the PDF stages separately")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, python {platform.python_version()}; "
          f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load avg (1/5/15 min) {os.getloadavg()}")
    print("| document | pages | statements | wall s (median) | CPU s (median) | peak RSS MiB | load 1-min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for f in args.files:
        load = os.getloadavg()[0]
        runs = [run_child(CHILD, f) for _ in range(args.runs)]
        r0 = runs[-1]
        print(f"| {f.name} | {r0['pages']} | {len(r0['statements'])} | {statistics.median(r['wall'] for r in runs):.2f} | "
              f"{statistics.median(r['cpu'] for r in runs):.2f} | {max(r['rss_mib'] for r in runs):.0f} | {load:.2f} |")
        if args.stages and f.suffix.lower() == ".pdf":
            st = run_child(STAGES, f)
            print("|   stages: " + ", ".join(f"{k} {v:.2f}s" if isinstance(v, float) else f"{k} {v}" for k, v in st.items()) + " | | | | | | |")


if __name__ == "__main__":
    main()
