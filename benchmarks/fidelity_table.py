"""Markdown tables from fidelity_oracle.py's JSON lines: per variant and context, each document's
perplexity change vs dense / top-1 agreement, and the mean over documents.

Run: python benchmarks/fidelity_table.py benchmarks/fidelity_round2.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(paths: list[str]) -> None:
    rows = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    rows = [r for r in rows if "ppl_vs_dense_pct" in r and r["variant"] != "dense"]
    docs = sorted({r["doc"] for r in rows})
    cell: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for r in rows:  # a later row of the same (variant, context, doc) replaces an earlier one
        cell[r["variant"], r["context"]][r["doc"]] = r
    print("| variant | context | blocks read / step | " + " | ".join(d[:16] for d in docs) + " | mean ppl / top-1 |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in docs) + " | --- |")
    for (variant, ctx), by_doc in sorted(cell.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        vals = [by_doc.get(d) for d in docs]
        txt = [f"{r['ppl_vs_dense_pct']:+.1f}% / {100 * r['top1_agree']:.1f}%" if r else "-" for r in vals]
        got = [r for r in vals if r]
        mean = (f"{sum(r['ppl_vs_dense_pct'] for r in got) / len(got):+.1f}% / "
                f"{100 * sum(r['top1_agree'] for r in got) / len(got):.1f}%")
        print(f"| {variant} | {ctx:,} | {got[0].get('blocks_read_per_step', '-')} | " + " | ".join(txt) + f" | {mean} |")


if __name__ == "__main__":
    main(sys.argv[1:])
