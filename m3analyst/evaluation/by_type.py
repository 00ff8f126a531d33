"""QA accuracy by question type (issue 17): FinanceBench's own `question_type` (metrics-generated, domain-relevant,
novel-generated) per question id, read from the set's annotation file; other sets by the kind of answer `ask`
typed the question as (figure, yesno, label, span, explanation) when the details carry it.

    report["by_question_type"] = qa_by_type(report)     # {type: {"num", "den", "value"}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m3analyst.evaluation.loaders import SET_LOADERS


def financebench_types(data_root: str | Path) -> dict[str, str]:
    """FinanceBench id -> question_type, from the annotation file under the data root ({} when none)."""
    root = Path(data_root)
    for name in SET_LOADERS["financebench"].filenames:
        for path in (root / name, root / "finance" / name):
            if path.is_file():
                out = {}
                for line in path.read_text(encoding="utf-8").splitlines():
                    row = json.loads(line) if line.strip() else {}
                    if "financebench_id" in row:
                        out[str(row["financebench_id"])] = str(row.get("question_type") or "unknown")
                return out
    return {}


def qa_by_type(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """QA accuracy per question type over the report's qa details; {} when no type is known."""
    types = financebench_types(report.get("data_root") or ".") if report.get("set") == "financebench" else {}
    tally: dict[str, list[int]] = {}
    for item in report.get("items", []):
        for d in item.get("details", []):
            if d.get("scorer") != "qa":
                continue
            kind = types.get(str(d.get("question"))) or d.get("answer_kind")
            if kind:
                t = tally.setdefault(kind, [0, 0])
                t[0] += bool(d.get("correct"))
                t[1] += 1
    return {k: {"num": n, "den": m, "value": round(n / m, 3) if m else None} for k, (n, m) in sorted(tally.items())}
