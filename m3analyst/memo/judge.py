"""Judgement questions over computed metrics: "Does Verizon have a reasonably healthy liquidity profile based on its
quick ratio?", "Is the company highly leveraged?", "Is this a capital-intensive business?".

The judgement (liquidity, leverage, coverage, profitability, capital intensity ...) and its thresholds come from the
domain spec (`judgements`); the metric is the one the question names among the judgement's metrics, else the
first one the statements allow. The answer states the metric, the threshold and the verdict ("quick ratio 0.80 <
1.00 -> weak") with every input's page. Nothing is generated.
"""

from __future__ import annotations

import operator
import re

from m3analyst.domains.spec import DomainSpec
from m3analyst.memo.calculate import cannot, period_at
from m3analyst.memo.metrics import Computed, Table, evidence_of
from m3analyst.memo.types import Answer
from m3analyst.memo.trend import years_in

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_COND = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_POLAR = re.compile(r"^\s*(is|are|was|were|has|have|had|does|do|did|can|could|would|will)\b", re.I)


def _word_at(word: str, q: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}", q) is not None


def _judgement(spec: DomainSpec, table: Table, q: str) -> tuple[dict, str] | None:
    """(judgement, metric name) the question asks about: a judgement word in it, or one of a judgement's
    metrics named together with an evaluative word."""
    judgements = (spec.model_extra or {}).get("judgements") or []
    for j in judgements:
        if any(_word_at(w, q) for w in j.get("words", [])):
            return j, _metric_in(table, j, q)
    for j in judgements:
        named = [m for m in j.get("metrics", []) if m in table.defs and any(_word_at(a, q) for a in table.defs[m].ask)]
        if named and _EVALUATIVE.search(q):
            return j, named[0]
    return None


def _metric_in(table: Table, j: dict, q: str) -> str:
    for m in j.get("metrics", []):
        if m in table.defs and any(_word_at(a, q) for a in table.defs[m].ask):
            return m
    return ""


_EVALUATIVE = re.compile(r"\b(healthy|unhealthy|strong|weak|good|poor|reasonabl\w*|adequate|sufficient|solid|concern\w*|"
                         r"high(ly)?|low|comfortabl\w*|efficient\w*|intensive|heav(y|ily)|light)\b", re.I)


def answer_judgement(spec: DomainSpec, table: Table, question: str) -> Answer | None:
    """A verdict for a polar or evaluative question about a judgement ("Is its liquidity healthy?"); None for
    others ("What does the company say about liquidity risk?" asks for a passage)."""
    if not (_POLAR.search(question) or _EVALUATIVE.search(question)):
        return None
    q = question.lower()
    found = _judgement(spec, table, q)
    if found is None:
        return None
    j, named = found
    years = years_in(question)
    period = period_at(table, max(years) if years else None)
    if period is None:
        return None
    order = [named] if named else [m for m in j.get("metrics", []) if m in table.defs]
    tried = [table.compute(table.defs[m], period) for m in order if m in table.defs]
    c = next((x for x in tried if x.value is not None), None)
    if c is None:
        return cannot(table.defs[order[0]], f"missing {', '.join(tried[0].missing)}", *tried[:1]) if tried else None
    cond = _COND.match(str(j.get("good", {}).get(c.metric.name, "")))
    if cond is None:
        return None
    return _verdict(spec, j, c, cond.group(1), float(cond.group(2)), question)


def _verdict(spec: DomainSpec, j: dict, c: Computed, op: str, limit: float, question: str) -> Answer:
    q = question.lower()
    good = _OPS[op](c.value, limit)
    first, second = j.get("verdicts", ["favourable", "unfavourable"])[:2]
    verdict = first if good else second
    neg = [*(spec.model_extra or {}).get("judgement_unfavourable_words", []), *j.get("second_words", [])]
    asks_second = any(_word_at(w, q) for w in [*neg, second])  # "Is its leverage high?" names the second verdict
    shown = f"{c.value:.2f}" if c.metric.unit in ("ratio",) else c.shown()
    sign = op if good else {">=": "<", "<=": ">", ">": "<=", "<": ">="}[op]
    rule = f"{c.metric.label} {shown} {sign} {limit:g} \u2192 {verdict}"
    if _POLAR.search(question):
        label = "Yes" if (verdict == second) == asks_second else "No"
    else:
        label = verdict.capitalize()
    text = f"{label}: {j['topic']} is {verdict} for {c.period}: {rule} (= {c.formula()})."
    reason = (f"{j['topic'].capitalize()} judged from {c.metric.label.lower()} against the spec's threshold "
              f"({c.metric.name} {op} {limit:g} is {first}): {rule}.")
    return Answer(text, round(c.value, 6), c.pages, "rules", c.metric.unit, c.metric.name,
                  [{"source_text": f.source_text, "period": f.period} for f in c.inputs], kind="yesno" if _POLAR.search(question)
                  else "label", label=label, reason=reason, evidence=evidence_of(c.inputs), confidence=0.7)
