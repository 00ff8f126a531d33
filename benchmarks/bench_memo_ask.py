"""`ask` accuracy on FinanceBench dev questions about the corpus PDFs (numeric within 1%).

    python benchmarks/bench_memo_ask.py [--model none|smollm2-135m-instruct|PATH] [--json out.json]

A question counts as numeric when its gold answer is a number (e.g. "$1577.00", "30.8%", "0.01");
our answer is correct when Answer.value is within 1% of it (units as the question asks: the answer
scales to "USD millions/billions" when the question says so). Non-numeric questions are listed
with our answer's source but not scored automatically.
"""

from __future__ import annotations

import argparse
import json
import re
import time

from m3analyst.ingest import load_document
from m3analyst.memo import answer_question
from m3analyst.resources import corpus_dir
from m3analyst.settings import Settings

_NUM = re.compile(r"^\s*\$?\s*(-?\d[\d,]*\.?\d*)\s*%?\s*$")


def gold_number(answer: str) -> float | None:
    m = _NUM.match(answer.strip())
    return float(m.group(1).replace(",", "")) if m else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="none")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    s = Settings()
    s.engine.model = args.model
    engine = None
    if args.model != "none":
        from m3analyst.engine import load_engine

        engine = load_engine(s.engine)
    root = corpus_dir() / "finance"
    items = [json.loads(x) for x in (root / "financebench_dev.jsonl").read_text().splitlines() if x.strip()]
    docs: dict[str, object] = {}
    rows, t0 = [], time.perf_counter()
    for it in items:
        doc = docs.get(it["doc_name"]) or docs.setdefault(it["doc_name"], load_document(root / f"{it['doc_name']}.pdf"))
        t = time.perf_counter()
        ans = answer_question(doc, it["question"], s, engine, domain="finance")
        gold = gold_number(it["answer"])
        ok = None if gold is None else (ans.value is not None and abs(ans.value - gold) <= 0.01 * abs(gold) + 1e-9)
        gold_pages = [e["evidence_page_num"] + 1 for e in it.get("evidence", [])]
        rows.append({"doc": it["doc_name"], "question": it["question"][:120], "gold": it["answer"][:80], "value": ans.value,
                     "source": ans.source, "citations": ans.citations, "gold_pages": gold_pages, "correct": ok,
                     "cites_gold_page": bool(set(ans.citations) & set(gold_pages)), "seconds": round(time.perf_counter() - t, 2)})
    numeric = [r for r in rows if r["correct"] is not None]
    correct = sum(1 for r in numeric if r["correct"])
    for r in rows:
        mark = {True: "OK ", False: "BAD", None: " - "}[r["correct"]]
        print(f"{mark} {r['doc'][:18]:18s} {r['source']:8s} value={r['value']!s:12s} gold={r['gold'][:30]!r:34s} "
              f"pages={r['citations'][:3]} gold_pages={r['gold_pages']}")
    print(f"\nmodel={args.model}: numeric questions {len(numeric)}, correct within 1%: {correct} ({correct / max(1, len(numeric)):.0%}); "
          f"all {len(rows)} questions: cited a gold evidence page in {sum(r['cites_gold_page'] for r in rows)}; "
          f"{time.perf_counter() - t0:.1f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "numeric": len(numeric), "correct": correct, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
