"""Legal short-answer scoring: the term sheet (Yes / No / Not found / a value) against gold for CUAD's 12 core
categories, on our dev set (evals/legal.jsonl) and on CUAD (`--set cuad`).

Per category and item the answer is correct when
- the gold is absent ("No" for a clause category, no clause for a value category) and the answer is No / Not found;
- the gold is present and the answer is present with the right value: Yes for a clause category; the same calendar
  date; the same duration (12 months = 1 year); "Perpetual" for a perpetual term; the same governing law (one name
  contains the other after normalisation); for parties, at least two gold party names (or the only one) each named
  by one predicted party. A gold that only marks a clause (CUAD gives no normalised answer, or the value is
  redacted) is matched by any present answer whose quoted clause overlaps the gold clause.
Precision per category: correct present answers / present answers (for Yes / No categories: right Yes / all Yes).

The answers are the memo's term-sheet findings (topic "term") when the memo has them, else the domain's findings
for the document (the same code path the memo uses).
"""

from __future__ import annotations

import re
from typing import Any

from m3analyst.evaluation.normalize import normalize_text, parse_date, text_matches
from m3analyst.evaluation.schema import EvalItem, GoldFact
from m3analyst.evaluation.scorers import METRICS, MetricInfo, Prediction, Ratio, Score, has_clauses, register_scorer

CORE = ("Parties", "Agreement Date", "Effective Date", "Expiration Date", "Renewal Term",
        "Notice Period To Terminate Renewal", "Governing Law", "Termination For Convenience", "Anti-Assignment",
        "Cap On Liability", "Exclusivity", "Non-Compete")
_YESNO_CATS = {"Termination For Convenience", "Anti-Assignment", "Cap On Liability", "Exclusivity", "Non-Compete"}
_ABSENT = {"no", "not found", "none", ""}
METRICS.setdefault("short_answer_accuracy", MetricInfo(True, "legal term-sheet answers right (presence and value)"))
METRICS.setdefault("short_answer_precision", MetricInfo(True, "legal term-sheet answers given (not No / Not found) that are right"))
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_DUR = re.compile(r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirty|sixty|ninety)\s*(?:\(\d+\)\s*)?"
                  r"(?:calendar\s+|business\s+)?(day|week|month|year)s?", re.I)
_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())} | {
    "thirty": 30, "sixty": 60, "ninety": 90}


def _duration(text: str) -> tuple[int, str] | None:
    """(count, unit) of the first duration written, months and years in months: '12 months' == '1 year'."""
    m = _DUR.search(text or "")
    if not m:
        return None
    n = int(m.group(1)) if m.group(1).isdigit() else _WORDS[m.group(1).lower()]
    unit = m.group(2).lower()
    return (n * 12, "month") if unit == "year" else (n, unit)


def _names(text: str) -> list[str]:
    """Party names of a 'A ("X"); B ("Y")' list: definitions and roles dropped."""
    out = []
    for part in str(text).split(";"):
        part = re.sub(r"\([^)]*\)?|[\"“][^\"”]*[\"”]", " ", part)
        n = normalize_text(part)
        if n and not re.match(r"(collectively|each|individually|together|party|parties)\b", n):
            out.append(n)
    return out


def parties_match(pred: str, gold: str) -> bool:
    golds, preds = _names(gold), _names(pred)
    hits = sum(any(text_matches(p, g) or (len(p) > 3 and f" {p} " in f" {g} ") for p in preds) for g in golds)
    return bool(golds) and hits >= min(2, len(golds))


def _shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    w = normalize_text(text).split()
    return {tuple(w[i : i + n]) for i in range(max(0, len(w) - n + 1))}


def quote_overlaps(quote: str, clauses: list[str]) -> bool:
    """The quoted sentence and a gold clause share a good part of their wording (either way)."""
    q = _shingles(quote)
    for c in clauses:
        s = _shingles(c)
        if q and s and len(q & s) >= 0.3 * min(len(q), len(s)):
            return True
    return False


def _marks_only(g: GoldFact) -> bool:
    """Gold that only marks the clause: CUAD's clause text without a normalised answer, or a redacted value."""
    v = str(g.value)
    return v in g.aliases or "[*" in v or "redacted" in v.lower() or "[]" in v


def value_correct(category: str, g: GoldFact, answer: str, text: str, quote: str) -> bool:
    """A present answer against present gold (see the module docstring). `text`: the answer with its note."""
    gold = str(g.value)
    if category in _YESNO_CATS:
        return answer.lower() == "yes"
    if _marks_only(g):
        return quote_overlaps(quote, [g.evidence, *g.aliases]) or quote_overlaps(text, [g.evidence, *g.aliases])
    if category == "Parties":
        return parties_match(answer, gold)
    if (gd := parse_date(gold)) is not None and len(gold) <= 12:
        return parse_date(answer) == gd
    if "perpetu" in gold.lower():
        return "perpetu" in text.lower()
    if category == "Governing Law":
        a, b = normalize_text(answer), normalize_text(gold)
        return bool(a and b) and (f" {a} " in f" {b} " or f" {b} " in f" {a} " or text_matches(answer, gold, g.aliases))
    gd, pd = _duration(gold), _duration(text)
    if gd is not None:
        return gd == pd
    return text_matches(text, gold, g.aliases)


def _gold_absent(g: GoldFact) -> bool:
    return normalize_text(str(g.value)) in _ABSENT


def predicted_answers(item: EvalItem, pred: Prediction) -> dict[str, tuple[str, str, str]]:
    """CUAD category -> (answer, answer with its note, quoted evidence), from the memo's term findings or computed."""
    findings = [f for f in (getattr(pred, "findings", None) or []) if _get(f, "topic") == "term"]
    if not findings and pred.doc is not None:
        from m3analyst.domains import load_domain
        from m3analyst.domains.plugins import extract_facts, make_findings

        spec = load_domain(item.domain)
        findings = [f for f in make_findings(pred.doc, spec, extract_facts(pred.doc, spec)) if f.topic == "term"]
    out = {}
    for f in findings:
        extra = _get(f, "extra") or {}
        ev = _get(f, "evidence") or []
        quote = " ".join(str(_get(c, "quote") or "") for c in ev)
        answer = str(_get(f, "label") or "")
        out[str(extra.get("category"))] = (answer, f"{answer} {_get(f, 'claim') or ''}", quote)
    return out


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


@register_scorer("legal_short_answers")
def score_short_answers(item: EvalItem, pred: Prediction) -> Score:
    """Short-answer accuracy and precision over the core categories with gold in this item."""
    golds = {f.field: f for f in item.facts if f.field in CORE}
    if not golds or pred.doc is None or not has_clauses(item.domain):
        return Score()
    answers = predicted_answers(item, pred)
    details, right, given, given_right = [], 0, 0, 0
    for cat, g in golds.items():
        answer, text, quote = answers.get(cat, ("Not found", "", ""))
        present = normalize_text(answer) not in _ABSENT
        ok = (not present) if _gold_absent(g) else present and value_correct(cat, g, answer, text, quote)
        right += ok
        given += present
        given_right += present and ok
        details.append({"category": cat, "gold": str(g.value)[:80], "answer": answer[:80], "present": present,
                        "gold_present": not _gold_absent(g), "correct": ok})
    metrics = {"short_answer_accuracy": Ratio(right, len(golds))}
    if given:
        metrics["short_answer_precision"] = Ratio(given_right, given)
    return Score(metrics, details)


def short_answer_summary(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per category over a run's item records: n, accuracy, answers given, precision (None when none given)."""
    acc: dict[str, list[int]] = {c: [0, 0, 0, 0] for c in CORE}  # n, right, given, given right
    for r in records:
        for d in r.get("details") or []:
            if d.get("scorer") != "legal_short_answers":
                continue
            a = acc[d["category"]]
            a[0] += 1
            a[1] += d["correct"]
            a[2] += d["present"]
            a[3] += d["present"] and d["correct"]
    return {c: {"n": n, "accuracy": r / n if n else None, "given": g, "precision": gr / g if g else None}
            for c, (n, r, g, gr) in acc.items() if n}


def short_answer_table(report: dict[str, Any]):
    """A Rich table of the per-category short-answer figures (None when the run has none)."""
    rows = report.get("short_answers") or {}
    if not rows:
        return None
    from rich.table import Table

    t = Table(title="legal short answers per category", title_justify="left")
    for col in ("category", "n", "accuracy", "answers given", "precision"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for cat, d in rows.items():
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        t.add_row(cat, str(d["n"]), fmt(d["accuracy"]), str(d["given"]), fmt(d["precision"]))
    return t


__all__ = ["CORE", "parties_match", "score_short_answers", "short_answer_summary", "short_answer_table", "value_correct"]
