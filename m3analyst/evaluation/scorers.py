"""Scorers (a registry): each takes one gold `EvalItem` and the system's `Prediction` for it and returns
`Score(metrics={name: Ratio(num, den)}, details=[...], categories={...})`.

Ratios are summed over items before dividing (micro average), so an item with 10 facts weighs 10x an
item with one. A metric whose denominator is 0 for an item is simply absent for it.

Metrics (METRICS holds direction and meaning):
    fact_recall, fact_precision     gold facts found / predicted facts (of gold fields) that are right
    qa_accuracy                     questions answered correctly (numeric tolerance, labels exact)
    citation_accuracy               cited pages that hold the gold evidence (or are the gold page)
    unsupported_claim_rate          memo verifier: unsupported claims / claims checked
    section_coverage                expected memo headings present
    clause_precision/recall/f1      CUAD clause detection, micro over categories (per category in `categories`)
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from dataclasses import dataclass, field
from typing import Any, Callable

from m3analyst.evaluation.normalize import (
    YESNO,
    Quantity,
    evidence_in_text,
    is_percent_unit,
    normalize_label,
    normalize_name,
    normalize_text,
    number_matches,
    parse_date,
    parse_number,
    text_matches,
)
from m3analyst.evaluation.schema import EvalItem, GoldFact, GoldQuestion

# ---------------------------------------------------------------------------------------------
# data passed to scorers


@dataclass
class Ratio:
    num: float = 0.0
    den: float = 0.0

    @property
    def value(self) -> float | None:
        return self.num / self.den if self.den else None

    def __add__(self, other: "Ratio") -> "Ratio":
        return Ratio(self.num + other.num, self.den + other.den)


@dataclass
class PredFact:
    """A fact as the memo reports it (m3analyst.memo Fact, normalised to plain fields)."""

    name: str
    value: Any
    unit: str | None = None
    scale: float | None = None
    period: str | None = None
    page: int | None = None
    source_text: str | None = None


@dataclass
class PredAnswer:
    text: str
    value: float | None = None
    citations: list[int] = field(default_factory=list)
    source: str | None = None
    scores: dict[str, Any] | None = None  # a label answer's per-source label probabilities (evaluation/label_scores.py)


@dataclass
class Prediction:
    """What the system produced for one item. `doc` (a Document) lets citation checks read pages."""

    facts: list[PredFact] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    grounding: dict[str, Any] | None = None
    answers: dict[str, PredAnswer] = field(default_factory=dict)
    doc: Any = None
    has_memo: bool = False
    memo: Any = None  # the memo itself, for scorers that read more than facts (findings_score)
    findings: list[Any] = field(default_factory=list)  # the memo's findings (Finding or dict), where it has them


@dataclass
class Score:
    metrics: dict[str, Ratio] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricInfo] = {
    "fact_recall": MetricInfo(True, "gold facts the memo states correctly"),
    "fact_precision": MetricInfo(True, "memo facts (of fields with gold) that are correct"),
    "qa_accuracy": MetricInfo(True, "questions answered correctly"),
    "citation_accuracy": MetricInfo(True, "citations whose page holds the gold evidence"),
    "unsupported_claim_rate": MetricInfo(False, "claims the memo verifier could not support"),
    "section_coverage": MetricInfo(True, "expected memo headings present"),
    "clause_precision": MetricInfo(True, "CUAD clauses reported that are present (micro)"),
    "clause_recall": MetricInfo(True, "CUAD clauses present that are reported (micro)"),
    "clause_f1": MetricInfo(True, "harmonic mean of clause precision and recall"),
}

Scorer = Callable[[EvalItem, Prediction], Score]
SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    def deco(fn: Scorer) -> Scorer:
        SCORERS[name] = fn
        return fn

    return deco


# ---------------------------------------------------------------------------------------------
# value matching

_NO_VALUES = {"", "no", "none", "n a", "not found", "not stated", "absent", "false"}


def _short(value: Any, n: int = 120) -> Any:
    """Long strings cut for report details (reports stay small: CUAD has 41 clauses x 200 contracts)."""
    return value[:n] + "…" if isinstance(value, str) and len(value) > n else value


def _is_absent_value(value: Any) -> bool:
    return value is None or value is False or normalize_text(str(value)) in _NO_VALUES


def _yes(value: Any) -> bool:
    """Yes/No reading of a value: True/'Yes...' -> yes; False/'No...'/empty -> no; any other text (a
    clause quoted by the memo) -> yes, the clause is there."""
    if isinstance(value, bool):
        return value
    words = normalize_text(str(value or "")).split()
    if words and words[0] in ("yes", "no") and len(words) <= 3:  # 'Yes', 'No.', 'Yes (s. 4)'; not 'No later than…'
        return words[0] == "yes"
    return not _is_absent_value(value)


@cache
def _aliases(domain: str) -> dict[str, str]:
    """normalised name / label / CUAD category -> the domain spec's fact name (empty without a spec)."""
    try:
        from m3analyst.domains import load_domain

        spec = load_domain(domain)
    except Exception:  # noqa: BLE001 - no spec: names compare as written
        return {}
    out: dict[str, str] = {}
    for f in spec.facts:
        extra = f.model_extra or {}
        for alias in (f.label, extra.get("cuad"), f.name):
            if alias:
                out[normalize_name(alias)] = f.name
    return out


def canon(domain: str, name: str) -> str:
    """The key facts are matched on: the domain spec's fact name for any of its aliases, else the
    normalised name ('Notice Period To Terminate Renewal' -> 'notice_to_terminate_renewal')."""
    n = normalize_name(name)
    return _aliases(domain).get(n, n)


def _years(period: str | None) -> set[str]:
    return set(re.findall(r"(?:19|20)\d{2}", period or ""))


_PERIOD_KINDS = (  # first match wins: "Q2 FY2024 (three months ended ...)" is a quarter
    ("quarter", re.compile(r"\b(three months|13 weeks|quarter|q[1-4])\b", re.I)),
    ("half", re.compile(r"\b(six months|26 weeks|half|h[12])\b", re.I)),
    ("nine_months", re.compile(r"\b(nine months|39 weeks)\b", re.I)),
    ("year", re.compile(r"\b(twelve months|52 weeks|53 weeks|year|fy\s?\d{2,4}|fiscal)\b", re.I)),
)


def _period_kind(period: str) -> str | None:
    """quarter / half / nine_months / year, or None (an instant or a bare date/year)."""
    return next((k for k, rx in _PERIOD_KINDS if rx.search(period)), None)


def period_compatible(gold: str | None, pred: str | None) -> bool:
    """Can these two period labels name the same period? Missing labels are compatible. Durations of
    different length are not; two dated labels must be within a week; else the years must overlap."""
    if not gold or not pred:
        return True
    gk, pk = _period_kind(gold), _period_kind(pred)
    if gk and pk and gk != pk:
        return False
    gd, pd = parse_date(gold), parse_date(pred)
    if gd and pd:
        return abs((gd - pd).days) <= 7
    gy, py = _years(gold), _years(pred)
    return not (gy and py) or bool(gy & py)


def _pred_quantity(pf: PredFact) -> Quantity | None:
    if isinstance(pf.value, bool):
        return None
    if isinstance(pf.value, (int, float)):
        # memo facts hold numbers multiplied out (m3analyst.domains.Fact): compare as an absolute amount
        return Quantity(float(pf.value), scale=1.0, percent=is_percent_unit(pf.unit), decimals=12)
    q = parse_number(str(pf.value))
    if q is not None and q.scale is None and pf.scale not in (None, 1, 1.0):
        q = dataclasses.replace(q, scale=pf.scale)
    return q


def fact_value_matches(gold: GoldFact, pf: PredFact) -> bool:
    """Does the predicted fact state the gold value, for a compatible period (`period_compatible`)?"""
    if not period_compatible(gold.period, pf.period):
        return False
    if gold.kind == "number":
        q = _pred_quantity(pf)
        return q is not None and number_matches(q, float(gold.value), gold.scale, gold.tolerance, is_percent_unit(gold.unit))
    text = "" if pf.value is None else str(pf.value)
    if gold.kind == "yesno":
        return _yes(gold.value) == _yes(pf.value)
    if gold.kind == "date":
        gd = parse_date(str(gold.value))
        return gd is not None and parse_date(text) == gd
    return text_matches(text, str(gold.value), gold.aliases)


def answer_correct(q: GoldQuestion, ans: PredAnswer | None) -> bool:
    """QA rule per kind (README): numeric tolerance; yes/no/maybe and labels exact after normalisation."""
    if ans is None:
        return False
    if q.kind == "numeric":
        pct = is_percent_unit(q.unit) or (q.unit is None and q.answer.strip().endswith("%"))
        if ans.value is not None and number_matches(Quantity(float(ans.value), percent=False), q.value, q.scale, q.tolerance, pct):
            return True
        p = parse_number(ans.text)
        return p is not None and number_matches(p, q.value, q.scale, q.tolerance, pct)
    if q.kind in ("yesno", "label") and ans.source == "passage":
        return False  # a quoted passage (model-free fallback) is not a yes/no or label answer
    if q.kind == "yesno":
        labels = tuple(q.labels) or YESNO
        gold = normalize_label(q.answer, labels)
        return gold is not None and normalize_label(ans.text, labels) == gold
    if q.kind == "label":
        gold = normalize_label(q.answer, q.labels)
        return gold is not None and normalize_label(ans.text, q.labels) == gold
    return text_matches(ans.text, q.answer)


def page_holds_evidence(doc: Any, page: int | None, evidence: str, gold_page: int | None) -> bool:
    """A cited page is right when it is the gold page or its text contains the gold evidence."""
    if page is None:
        return False
    if gold_page is not None and page == gold_page:
        return True
    if doc is None or not evidence or not doc.has_page(page):
        return False
    return evidence_in_text(evidence, doc.page_text(page))


@cache
def _clause_keys(domain: str) -> frozenset[str]:
    from m3analyst.evaluation.loaders import CUAD_CATEGORIES

    return frozenset(canon(domain, c) for c in CUAD_CATEGORIES)


def has_clauses(domain: str) -> bool:
    """Whether the domain's spec maps its facts to CUAD clause categories (`cuad:`), as the legal spec does."""
    from m3analyst.domains import load_domain

    return any((f.model_extra or {}).get("cuad") for f in load_domain(domain).facts)


def is_clause_fact(item: EvalItem, f: GoldFact) -> bool:
    """A fact of a clause domain named after a CUAD category (or the spec fact mapped to one) is a clause label."""
    return has_clauses(item.domain) and canon(item.domain, f.field) in _clause_keys(item.domain)


# ---------------------------------------------------------------------------------------------
# scorers


def _gold_fact_fields(item: EvalItem) -> list[GoldFact]:
    """Facts scored by fact recall/precision: all but absent-clause labels (those are clause negatives)."""
    return [f for f in item.facts if not (is_clause_fact(item, f) and not _yes(f.value))]


@register_scorer("facts")
def score_facts(item: EvalItem, pred: Prediction) -> Score:
    golds = _gold_fact_fields(item)
    if not golds or not pred.has_memo:
        return Score() if not golds else Score({"fact_recall": Ratio(0, len(golds))})
    key = lambda name: canon(item.domain, name)  # noqa: E731
    by_name: dict[str, list[PredFact]] = {}
    for pf in pred.facts:
        by_name.setdefault(key(pf.name), []).append(pf)
    details, found = [], 0
    for g in golds:
        cands = by_name.get(key(g.field), [])
        hit = next((pf for pf in cands if fact_value_matches(g, pf)), None)
        found += hit is not None
        details.append({"field": g.field, "gold": _short(g.value), "period": g.period, "correct": hit is not None,
                        "predicted": [_short(pf.value) for pf in cands][:3]})
    # precision judges memo facts that have gold: same name and a compatible period
    relevant = [pf for pf in pred.facts
                if any(key(g.field) == key(pf.name) and period_compatible(g.period, pf.period) for g in golds)]
    right = sum(any(fact_value_matches(g, pf) for g in golds if key(g.field) == key(pf.name)) for pf in relevant)
    metrics = {"fact_recall": Ratio(found, len(golds))}
    if relevant:
        metrics["fact_precision"] = Ratio(right, len(relevant))
    return Score(metrics, details)


@register_scorer("qa")
def score_qa(item: EvalItem, pred: Prediction) -> Score:
    if not item.questions:
        return Score()
    details, right = [], 0
    for q in item.questions:
        ans = pred.answers.get(q.id)
        ok = answer_correct(q, ans)
        right += ok
        details.append({"question": q.id, "kind": q.kind, "gold": _short(q.answer), "answer": None if ans is None else _short(ans.text, 300),
                        "correct": ok})
    return Score({"qa_accuracy": Ratio(right, len(item.questions))}, details)


@register_scorer("citations")
def score_citations(item: EvalItem, pred: Prediction) -> Score:
    """Answers: right if any cited page holds the evidence. Facts: each correctly valued fact's page.
    Not scored on one-page documents (plain-text contracts, inline contexts): any citation is page 1."""
    r, details = Ratio(), []
    if pred.doc is not None and pred.doc.n_pages <= 1:
        return Score()
    for q in item.questions:
        ans = pred.answers.get(q.id)
        if ans is None or not ans.citations or (q.page is None and not q.evidence):
            continue
        ok = any(page_holds_evidence(pred.doc, p, q.evidence, q.page) for p in ans.citations)
        r += Ratio(ok, 1)
        details.append({"question": q.id, "cited": ans.citations, "gold_page": q.page, "correct": ok})
    by_name: dict[str, list[GoldFact]] = {}
    for g in _gold_fact_fields(item):
        by_name.setdefault(canon(item.domain, g.field), []).append(g)
    for pf in pred.facts:
        if pf.page is None:
            continue
        golds = [g for g in by_name.get(canon(item.domain, pf.name), []) if fact_value_matches(g, pf)]
        if not golds:
            continue
        ok = any(page_holds_evidence(pred.doc, pf.page, g.evidence, g.page) for g in golds)
        r += Ratio(ok, 1)
        details.append({"fact": pf.name, "cited": pf.page, "gold_page": golds[0].page, "correct": ok})
    return Score({"citation_accuracy": r} if r.den else {}, details)


def _claims_checked(g: dict[str, Any]) -> float | None:
    for key in ("claims", "n_claims", "claims_checked", "checked_claims", "sentences", "generated_sentences"):
        if isinstance(g.get(key), (int, float)):
            return float(g[key])
    if isinstance(g.get("supported_claims"), (int, float)):
        return float(g["supported_claims"]) + float(g.get("unsupported_claims") or 0)
    return None


@register_scorer("grounding")
def score_grounding(item: EvalItem, pred: Prediction) -> Score:
    """From the memo verifier's `memo.grounding`: unsupported claims / claims checked when the verifier
    counts claims; otherwise the share of generated characters it could not verify
    ((generated_chars - verified_chars) / generated_chars)."""
    g = pred.grounding or {}
    unsupported = g.get("unsupported_claims")
    if isinstance(unsupported, list):
        unsupported = len(unsupported)
    total = _claims_checked(g)
    detail = {k: g.get(k) for k in ("unsupported_claims", "dropped_sentences", "grounding_score") if k in g}
    if unsupported is not None and total:
        return Score({"unsupported_claim_rate": Ratio(float(unsupported), total)}, [detail | {"claims": total, "basis": "claims"}])
    gen, ver = g.get("generated_chars"), g.get("verified_chars")
    if isinstance(gen, (int, float)) and isinstance(ver, (int, float)) and gen > 0:
        return Score({"unsupported_claim_rate": Ratio(max(gen - ver, 0.0), float(gen))}, [detail | {"basis": "chars"}])
    return Score()


def _heading_present(expected: str, titles: list[str]) -> bool:
    e = normalize_text(expected)
    return any(e == t or f" {e} " in f" {t} " for t in (normalize_text(x) for x in titles))


@register_scorer("sections")
def score_sections(item: EvalItem, pred: Prediction) -> Score:
    if not item.sections:
        return Score()
    present = [s for s in item.sections if _heading_present(s, pred.sections)]
    missing = [s for s in item.sections if s not in present]
    return Score({"section_coverage": Ratio(len(present), len(item.sections))}, [{"missing_sections": missing}])


@register_scorer("clauses")
def score_clauses(item: EvalItem, pred: Prediction) -> Score:
    """CUAD clause detection: gold present = clause fact not 'No'/empty; predicted present = the memo
    reports a fact of that category whose value is not 'No'/empty. Counted per category."""
    gold = {canon(item.domain, f.field): _yes(f.value) for f in item.facts if is_clause_fact(item, f)}
    if not gold or not pred.has_memo:
        return Score()
    said = {canon(item.domain, pf.name) for pf in pred.facts if _yes(pf.value)}
    cats: dict[str, dict[str, int]] = {}
    for cat, present in gold.items():
        p = cat in said
        cats[cat] = {"tp": int(present and p), "fp": int(p and not present), "fn": int(present and not p)}
    tp, fp, fn = (sum(c[k] for c in cats.values()) for k in ("tp", "fp", "fn"))
    metrics = {"clause_recall": Ratio(tp, tp + fn)} if tp + fn else {}
    if tp + fp:
        metrics["clause_precision"] = Ratio(tp, tp + fp)
    return Score(metrics, [], cats)


# ---------------------------------------------------------------------------------------------
# aggregation


def score_item(item: EvalItem, pred: Prediction, scorers: list[str] | None = None) -> Score:
    """Run the chosen scorers (default: all registered) and merge their results."""
    out = Score()
    for name in scorers or list(SCORERS):
        s = SCORERS[name](item, pred)
        out.metrics.update(s.metrics)
        out.details.extend({"scorer": name, **d} for d in s.details)
        out.categories.update(s.categories)
    return out


def f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def aggregate(scores: list[Score]) -> tuple[dict[str, Ratio], dict[str, dict[str, float | int | None]]]:
    """Micro-averaged metrics over items, and per-CUAD-category P/R/F1 with counts."""
    total: dict[str, Ratio] = {}
    cats: dict[str, dict[str, int]] = {}
    for s in scores:
        for k, r in s.metrics.items():
            total[k] = total.get(k, Ratio()) + r
        for c, d in s.categories.items():
            acc = cats.setdefault(c, {"tp": 0, "fp": 0, "fn": 0})
            for k in acc:
                acc[k] += d[k]
    per_cat: dict[str, dict[str, float | int | None]] = {}
    for c, d in sorted(cats.items()):
        p = d["tp"] / (d["tp"] + d["fp"]) if d["tp"] + d["fp"] else None
        r = d["tp"] / (d["tp"] + d["fn"]) if d["tp"] + d["fn"] else None
        per_cat[c] = {**d, "precision": p, "recall": r, "f1": f1(p, r)}
    return total, per_cat


def metric_values(total: dict[str, Ratio]) -> dict[str, float | None]:
    """Ratios -> values, with clause_f1 derived from micro precision/recall."""
    vals = {k: r.value for k, r in total.items()}
    if "clause_precision" in vals or "clause_recall" in vals:
        p = vals.get("clause_precision", 0.0 if "clause_recall" in vals else None)
        vals["clause_f1"] = f1(p, vals.get("clause_recall"))
    return {k: vals[k] for k in METRICS if k in vals} | {k: v for k, v in vals.items() if k not in METRICS}
