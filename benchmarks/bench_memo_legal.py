"""Legal extractor vs CUAD: per-category precision/recall on N contracts (model-free; deterministic).

    python benchmarks/bench_memo_legal.py [--n 20] [--json out.json]

For each CUAD category our legal spec maps (`cuad:` in domains/legal/spec.yaml):
- presence: predicted = the extractor found a clause; gold = CUAD has >= 1 clause for the category.
- span: a true positive also requires our clause to overlap one of CUAD's clauses in the text.
Contracts: the first N lines of cuad_annotations.jsonl (text versions, read in place from the corpus).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from m3analyst.domains import extract_facts, load_domain
from m3analyst.ingest import load_document
from m3analyst.resources import corpus_dir


def gold_spans(doc, clauses: list[dict]) -> list[tuple[int, int]]:
    spans = []
    for c in clauses:
        text = c.get("text") or ""
        hits = doc.locate(" ".join(text.split()[:40])) if text.strip() else []
        spans += [(h.start, h.start + max(len(text), h.end - h.start)) for h in hits[:1]]
    return spans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    root = corpus_dir() / "legal"
    spec = load_domain("legal")
    cats = {f.name: f.cuad for f in spec.facts if getattr(f, "cuad", None) and f.name not in ("parties", "agreement_date")}
    counts = defaultdict(lambda: defaultdict(int))
    t0 = time.perf_counter()
    lines = [json.loads(x) for x in (root / "cuad_annotations.jsonl").read_text().splitlines()[: args.n]]
    for item in lines:
        doc = load_document(root / item["txt_file"])
        facts = {f.name: f for f in extract_facts(doc, spec)}
        for name, cat in cats.items():
            gold = item["categories"].get(cat, {}).get("clauses", [])
            f = facts.get(name)
            c = counts[cat]
            if f and gold:
                c["tp"] += 1
                ours = (f.extra.get("start", -1), f.extra.get("end", -1))
                c["span_tp"] += any(not (ours[1] <= a or ours[0] >= b) for a, b in gold_spans(doc, gold))
            elif f and not gold:
                c["fp"] += 1
            elif gold:
                c["fn"] += 1
            else:
                c["tn"] += 1
    rows = []
    for cat, c in counts.items():
        pred, gold = c["tp"] + c["fp"], c["tp"] + c["fn"]
        rows.append({"category": cat, "gold": gold, "predicted": pred, "tp": c["tp"],
                     "precision": c["tp"] / pred if pred else None, "recall": c["tp"] / gold if gold else None,
                     "span_precision": c["span_tp"] / pred if pred else None, "span_recall": c["span_tp"] / gold if gold else None})
    fmt = lambda v: "  -  " if v is None else f"{v:5.2f}"  # noqa: E731
    print(f"{len(lines)} contracts, {time.perf_counter() - t0:.1f}s")
    print(f"{'CUAD category':36s} gold pred  P     R     spanP spanR")
    for r in rows:
        print(f"{r['category']:36s} {r['gold']:4d} {r['predicted']:4d} {fmt(r['precision'])} {fmt(r['recall'])} "
              f"{fmt(r['span_precision'])} {fmt(r['span_recall'])}")
    tot = {k: sum(counts[c][k] for c in counts) for k in ("tp", "fp", "fn", "span_tp")}
    p, r = tot["tp"] / max(1, tot["tp"] + tot["fp"]), tot["tp"] / max(1, tot["tp"] + tot["fn"])
    sp, sr = tot["span_tp"] / max(1, tot["tp"] + tot["fp"]), tot["span_tp"] / max(1, tot["tp"] + tot["fn"])
    print(f"{'micro average':36s} {'':9s} {p:5.2f} {r:5.2f} {sp:5.2f} {sr:5.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "micro": {"precision": p, "recall": r, "span_precision": sp, "span_recall": sr}}, f, indent=1)


if __name__ == "__main__":
    main()
