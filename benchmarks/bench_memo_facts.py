"""Finance facts vs the gold facts of evals/finance.jsonl (value within tolerance AND on the gold page).

    python benchmarks/bench_memo_facts.py [--tolerance 0.001]
"""

from __future__ import annotations

import argparse
import json
import time

from m3analyst.domains import extract_facts, load_domain
from m3analyst.ingest import load_document
from m3analyst.resources import corpus_dir, resource_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tolerance", type=float, default=0.001)
    args = ap.parse_args()
    spec = load_domain("finance")
    total = ok = 0
    misses = []
    t0 = time.perf_counter()
    for line in (resource_dir("evals") / "finance.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if not item.get("document"):
            continue
        doc = load_document(corpus_dir() / item["document"])
        facts = extract_facts(doc, spec)
        for g in item.get("facts", []):
            if not isinstance(g.get("value"), (int, float)):
                continue
            total += 1
            gold = g["value"] * g.get("scale", 1)
            hit = [f for f in facts if f.name == g["field"] and isinstance(f.value, float)
                   and abs(f.value - gold) <= args.tolerance * abs(gold) + 1e-9 and f.page == g.get("page")]
            ok += bool(hit)
            if not hit:
                misses.append((item["document"], g["field"], g.get("period"), g["value"]))
    for m in misses:
        print("MISS", *m)
    print(f"{ok}/{total} gold finance facts matched (value within {args.tolerance:.1%} and same page); {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
