"""Check an eval set against its documents: every gold `evidence` must be on its `page` of the loaded
Document (what citation accuracy relies on), and numeric gold values should appear in their evidence.

    python -m m3analyst.evaluation.check evals/finance.jsonl [--data-root ../shared/corpus]

Prints one line per problem and a summary; exit status 1 when any evidence is not on its page.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from m3analyst.evaluation.normalize import evidence_in_text, is_percent_unit, number_matches, parse_quantities
from m3analyst.evaluation.schema import EvalItem, read_eval_file


@dataclass
class Problem:
    item: str
    what: str  # "fact revenue" / "question q1"
    problem: str
    severe: bool = True

    def __str__(self) -> str:
        return f"{self.item}: {self.what}: {self.problem}"


def _found_on(doc, evidence: str) -> list[int]:
    return [n for n in range(1, doc.n_pages + 1) if evidence_in_text(evidence, doc.page_text(n))]


def check_item(item: EvalItem, doc) -> list[Problem]:
    """Problems of one item against its loaded Document."""
    out: list[Problem] = []
    golds = [(f"fact {f.field} ({f.period or ''})", f.page, f.evidence, f) for f in item.facts]
    golds += [(f"question {q.id}", q.page, q.evidence, q) for q in item.questions if q.evidence]
    for what, page, evidence, g in golds:
        if page is None:
            continue
        if not doc.has_page(page):
            out.append(Problem(item.id, what, f"page {page} beyond the document's {doc.n_pages} pages"))
            continue
        if not evidence_in_text(evidence, doc.page_text(page)):
            pages = _found_on(doc, evidence)
            hint = f"found on page(s) {pages[:5]}" if pages else "not found on any page"
            out.append(Problem(item.id, what, f"evidence not on page {page} ({hint}): {evidence[:60]!r}"))
        value = getattr(g, "value", None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            pct = is_percent_unit(getattr(g, "unit", None))
            scale = getattr(g, "scale", 1.0)
            if not any(number_matches(q, sign * float(value), scale, 1e-9, pct)
                       for q in parse_quantities(evidence) for sign in (1, -1)):
                out.append(Problem(item.id, what, f"value {value} not written in its evidence (derived?)", severe=False))
    return out


def check_set(items: list[EvalItem], data_root: Path, progress=None) -> list[Problem]:
    from m3analyst.evaluation.harness import load_item_document

    problems: list[Problem] = []
    for item in items:
        if progress:
            progress(item)
        try:
            doc = load_item_document(item, data_root)
        except Exception as e:  # noqa: BLE001 - report and go on
            problems.append(Problem(item.id, "document", f"cannot load: {e}"))
            continue
        problems += check_item(item, doc)
    return problems


def main(argv: list[str] | None = None) -> int:
    from m3analyst.resources import corpus_dir

    ap = argparse.ArgumentParser(prog="python -m m3analyst.evaluation.check", description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--data-root", type=Path, default=corpus_dir())
    args = ap.parse_args(argv)
    severe = 0
    for f in args.files:
        items = read_eval_file(f)
        problems = check_set(items, args.data_root, progress=lambda it: print(f"  checking {it.id}", file=sys.stderr))
        for p in problems:
            print(("ERROR " if p.severe else "note  ") + str(p))
        n = sum(p.severe for p in problems)
        severe += n
        print(f"{f}: {len(items)} items, {n} evidence problems, {len(problems) - n} notes")
    return 1 if severe else 0


if __name__ == "__main__":
    sys.exit(main())
