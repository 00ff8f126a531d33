"""Metric questions answered by the calculator (memo/metrics.py): which metric, which operation, which periods.

Operations read from the question: CAGR over a span ("2-year CAGR", "CAGR from FY2016 to FY2018"), an average
over N years ("3-year average", "average ... between FY2016 and FY2018"), growth between two periods, a ratio of
two lines ("ratio of X to Y", "X as a percentage of Y", "X to Y ratio"), or the metric itself for one period.
The subject is found through the spec's synonym table (metrics, facts, derived facts, metric lines). A question
this module cannot read returns None; one it reads but cannot compute says which input is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.domains.facts import Fact
from m3analyst.domains.spec import DomainSpec
from m3analyst.ingest.model import Document
from m3analyst.memo.metrics import Computed, MetricDef, Table, by_year, evidence_of, input_text, line_specs, row_facts, show
from m3analyst.memo.types import Answer
from m3analyst.memo.trend import named_fact, years_in

_CAGR = re.compile(r"\bcagr\b|\bcompound(?:ed)? annual(?:ized)? growth|\bannuali[sz]ed growth", re.I)
_NUMWORD = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10}
_N_YEAR = re.compile(r"\b(\d+|one|two|three|four|five|six|seven|ten)[- ](?:fiscal[- ])?years?\b", re.I)
_LAST_N = re.compile(r"\b(?:last|past|previous|prior|trailing)\s+(\d+|two|three|four|five|six|seven|ten)\s+(?:fiscal\s+)?years\b", re.I)
_AVERAGE = re.compile(r"\b(average|mean)\b", re.I)
_DEFINES = re.compile(r"\bdefined as\b|\bdefine\b", re.I)
_GROWTH = re.compile(r"\b(growth( rate)?|grow|grew|change[ds]?|increase[ds]?|decrease[ds]?|decline[ds]?|"
                     r"year-over-year|year over year|yoy)\b", re.I)
_RATIO_OF = [
    re.compile(r"\bratio of (?P<a>.+?) (?:to|over) (?P<b>.+?)(?:\?|$| for | in | as of | during | (?:at|by) (?:the )?end| from | between | \(|,)", re.I),
    re.compile(r"\bratio (?:of|between) (?P<a>.+?) and (?P<b>.+?)(?:\?|$| for | in | as of | during | (?:at|by) (?:the )?end| from | between | \(|,)", re.I),
    re.compile(r"\b(?P<a>[\w&' -]+?) as an? (?:percent(?:age)?|%|share|proportion|fraction) of (?:total )?(?P<b>[\w&' -]+?)(?:\?|$| for | in | as of | during | from | between | \(|,)", re.I),
    re.compile(r"\b(?P<a>[\w&' -]+?)[ -]to[ -](?P<b>[\w&' -]+?)[ -]ratio\b", re.I),
    re.compile(r"\b(?P<a>[\w&' -]+?) divided by (?P<b>[\w&' -]+?)(?:\?|$| for | in | as of | during | from | between | \(|,)", re.I),
]
_PERCENT_Q = re.compile(r"percent|%", re.I)
_ROUND = re.compile(r"round(?:ed)?\s+(?:\w+\s+){0,3}to\s+(one|two|three|four|\d)\s+decimal", re.I)
_UNIT = [(re.compile(r"\bbillions?\b", re.I), 1e9), (re.compile(r"\bmillions?\b", re.I), 1e6),
         (re.compile(r"\bthousands?\b", re.I), 1e3)]


@dataclass
class Asked:
    metric: MetricDef
    op: str  # value | growth | cagr | average
    years: list[str]
    n: int | None = None


# ---- reading the question ------------------------------------------------------------------------
def _extra(spec: DomainSpec, table: Table) -> tuple:
    return (*table.defs.values(), *line_specs(spec))


def subject(spec: DomainSpec, table: Table, phrase: str) -> MetricDef | None:
    """The metric, fact or statement line a phrase names, as a metric (a fact is the metric of itself)."""
    named = named_fact(spec, phrase, _extra(spec, table))
    if named is None:
        rows = row_facts(table.doc, spec, phrase)  # a statement line no spec entry names ("research and development")
        if not rows:
            return None
        table.add(rows)
        return MetricDef(rows[0].name, rows[0].title, rows[0].unit or "USD", rows[0].name)
    if named.name in table.defs:
        return table.defs[named.name]
    unit = next((f.unit for fs in table.by_period.values() for n, f in fs.items() if n == named.name), None)
    return MetricDef(named.name, named.label, unit or "USD", named.name, (named.alias,), named.better)


def ratio_of_lines(spec: DomainSpec, table: Table, question: str) -> MetricDef | None:
    """'ratio of A to B', 'A as a percentage of B', 'A-to-B ratio', 'A divided by B': a metric A / B when both
    name a fact, line or metric and no named metric covers the whole phrase."""
    for rx in _RATIO_OF:
        m = rx.search(question)
        if not m:
            continue
        a, b = subject(spec, table, m.group("a")), subject(spec, table, m.group("b"))
        if a is None or b is None or a.name == b.name:
            continue
        pct = _PERCENT_Q.search(m.group(0)) is not None
        expr = f"{'100 * ' if pct else ''}({a.expr}) / ({b.expr})"
        return MetricDef(f"{a.name}_to_{b.name}", f"{a.label} / {b.label}", "%" if pct else "ratio", expr)
    return None


def read_question(spec: DomainSpec, table: Table, question: str) -> Asked | None:
    years = years_in(question)
    named = named_fact(spec, question, _extra(spec, table))
    metric = table.defs.get(named.name) if named else None
    if metric is None or not any(metric.ask and a in question.lower() for a in metric.ask if len(a) > 12):
        metric = ratio_of_lines(spec, table, question) or metric
    defines = bool(_DEFINES.search(question))
    if _CAGR.search(question):
        metric = metric or subject(spec, table, question)
        return Asked(metric, "cagr", years, _n_years(question)) if metric else None
    n = _n_years(question)
    if not defines and _AVERAGE.search(question) and (n or len(years) >= 2) and not _balance_pair(table, metric, years, n):
        metric = metric or subject(spec, table, question)
        return Asked(metric, "average", years, n) if metric else None
    if metric is None:
        return None
    if not defines and _GROWTH.search(question) and len(years) >= 2:
        return Asked(metric, "growth", years)
    return Asked(metric, "value", years)


def _balance_pair(table: Table, metric: MetricDef | None, years: list[str], n: int | None) -> bool:
    """'ROE, net income / average equity of FY2022 and FY2023': the average is the metric's own average of
    opening and closing balances (two consecutive years, a metric defined over avg()), not an N-year mean."""
    if metric is None or n or len(years) < 2:
        return False
    span = int(max(years)) - int(min(years))
    return span == 1 and "prev_" in table.expand(metric.expr)


def _n_years(question: str) -> int | None:
    m = _LAST_N.search(question) or _N_YEAR.search(question)
    if not m:
        return None
    tok = m.group(1).lower()
    return int(tok) if tok.isdigit() else _NUMWORD.get(tok)


# ---- computing the answer -----------------------------------------------------------------------
def answer_metric(doc: Document, spec: DomainSpec, facts: list[Fact], question: str,
                  table: Table | None = None) -> Answer | None:
    """The calculator's answer to a metric question; None when the question names no metric operation."""
    table = table or Table(doc, spec, facts)
    choice = answer_choice(spec, table, question)
    if choice is not None:
        return choice
    asked = read_question(spec, table, question)
    if asked is None:
        return None
    return {"value": _value, "growth": _growth, "cagr": _cagr, "average": _average}[asked.op](table, asked, question)


def _annual(table: Table) -> list[str]:
    return table.periods("")


def period_at(table: Table, year: str | None) -> str | None:
    periods = _annual(table)
    if year is None:
        return periods[-1] if periods else None
    return by_year(periods, year)


def _value(table: Table, asked: Asked, question: str) -> Answer | None:
    year = max(asked.years) if asked.years else None
    period = period_at(table, year)
    if period is None:
        return cannot(asked.metric, f"no statement period for {'FY' + year if year else 'the latest year'} was found")
    c = table.compute(asked.metric, period)
    if c.value is None:
        return cannot(asked.metric, f"missing {', '.join(c.missing)}", c)
    value = _scaled(c.value, asked.metric.unit, c.scale, question)
    text = f"{asked.metric.label} for {period}: {c.shown()} = {c.formula()}"
    return _answer(text, value, asked.metric, [c], question, f"computed from the statements as {asked.metric.expr}")


def _span(table: Table, asked: Asked) -> tuple[str | None, str | None, int | None]:
    """(start period, end period, years between) for growth / CAGR / average questions."""
    periods = _annual(table)
    ys = sorted(asked.years)
    end = period_at(table, ys[-1] if ys else None)
    if len(ys) >= 2:
        return period_at(table, ys[0]), end, int(ys[-1]) - int(ys[0])
    if end is None:
        return None, None, None
    n = asked.n
    if n is None:
        earlier = [p for p in periods if p != end]
        return (earlier[0] if earlier else None), end, len(periods) - 1
    span = n if asked.op == "cagr" else n - 1
    want = str(int(re.findall(r"(?:19|20)\d{2}", end)[-1]) - span)
    return period_at(table, want), end, span


def _growth(table: Table, asked: Asked, question: str) -> Answer | None:
    return _between(table, asked, question, _change_of)


def _cagr(table: Table, asked: Asked, question: str) -> Answer | None:
    return _between(table, asked, question, _cagr_of)


def _between(table: Table, asked: Asked, question: str, how) -> Answer | None:
    """A figure over two periods of the metric (growth, CAGR): both computed, then `how(metric, a, b, n)` ->
    (value, text, reason) or a reason it cannot be stated."""
    start, end, n = _span(table, asked)
    pair = _pair(table, asked.metric, start, end)
    if isinstance(pair, Answer):
        return pair
    a, b = pair
    got = how(asked.metric, a, b, n)
    if isinstance(got, str):
        return cannot(asked.metric, got)
    value, text, reason = got
    pages = " ".join(f"[p.{p}]" for p in sorted(set(a.pages) | set(b.pages)))
    reason += "; inputs: " + "; ".join(input_text(f) for f in a.inputs + b.inputs)  # the derivation, with every input's page
    return _answer(f"{text} {pages}".strip(), _rounded(value, question), asked.metric, [a, b], question, reason, unit="%")


def _change_of(metric: MetricDef, a: Computed, b: Computed, n: int | None):
    if metric.unit == "%":
        delta, what = b.value - a.value, "percentage points"
    else:
        delta, what = 100.0 * (b.value - a.value) / abs(a.value), "%"
    text = f"{metric.label} changed from {a.shown()} in {a.period} to {b.shown()} in {b.period} ({delta:+.1f} {what})"
    return delta, text, f"the change from {a.period} to {b.period}"


def _cagr_of(metric: MetricDef, a: Computed, b: Computed, n: int | None):
    if not n or a.value <= 0 or b.value <= 0:
        return "a CAGR needs two positive values at least one year apart"
    rate = 100.0 * ((b.value / a.value) ** (1.0 / n) - 1.0)
    text = f"{metric.label} CAGR {a.period} to {b.period} ({n} years): {rate:.2f}% = ({b.shown()} / {a.shown()})^(1/{n}) - 1"
    return rate, text, f"compound annual growth over {n} years, (end / start)^(1/{n}) - 1"


def _average(table: Table, asked: Asked, question: str) -> Answer | None:
    start, end, _ = _span(table, asked)
    if start is None or end is None:
        return cannot(asked.metric, "the statements do not cover every year of the span asked")
    annual = _annual(table)
    periods = annual[annual.index(start): annual.index(end) + 1]
    cs = [table.compute(asked.metric, p) for p in periods]
    missing = [m for c in cs for m in c.missing]
    if missing:
        return cannot(asked.metric, f"missing {', '.join(missing)}", *cs)
    mean = sum(c.value for c in cs) / len(cs)
    scale = cs[-1].scale
    shown = ", ".join(f"{c.shown()} ({c.period})" for c in cs)
    text = (f"Average {asked.metric.label} over {len(cs)} years ({cs[0].period} to {cs[-1].period}): "
            f"{show(mean, asked.metric.unit, scale)}; yearly: {shown}; " + "; ".join(input_text(f) for c in cs for f in c.inputs))
    return _answer(text, _scaled(mean, asked.metric.unit, scale, question), asked.metric, cs, question,
                   f"the mean of the {len(cs)} yearly values")


def _pair(table: Table, metric: MetricDef, start: str | None, end: str | None) -> tuple[Computed, Computed] | Answer:
    if start is None or end is None or start == end:
        return cannot(metric, "the statements do not show both ends of the span asked")
    a, b = table.compute(metric, start), table.compute(metric, end)
    if a.value is None or b.value is None:
        return cannot(metric, f"missing {', '.join(a.missing + b.missing)}", a, b)
    return a, b


# ---- shaping -------------------------------------------------------------------------------------
def _scaled(value: float, unit: str, scale: float, question: str) -> float:
    if unit == "USD":
        target = next((s for rx, s in _UNIT if rx.search(question)), scale or 1.0)
        value = value / target
    elif unit == "%" and _QUOTIENT_DEF.search(question) and not _PERCENT_Q.search(question):
        value = value / 100.0  # the question defines the metric as a plain quotient: answered as that fraction
    return _rounded(value, question)


# "ROA is defined as: net income / average total assets" (no x 100, no percent): the asked form is a fraction.
_QUOTIENT_DEF = re.compile(r"\bdefined as\b(?![^?.]*\b100\b)[^?]*/", re.I)


def _rounded(value: float, question: str) -> float:
    m = _ROUND.search(question)
    if m:
        tok = m.group(1).lower()
        return round(value, int(tok) if tok.isdigit() else {"one": 1, "two": 2, "three": 3, "four": 4}[tok])
    return round(value, 6)


def _answer(text: str, value: float, metric: MetricDef, cs: list[Computed], question: str, how: str,
            unit: str | None = None) -> Answer:
    inputs = [f for c in cs for f in c.inputs]
    pages = sorted({p for c in cs for p in c.pages})
    reason = f"{metric.label}: {how}, every input read from the statements."
    return Answer(f"{text}.", value, pages, "facts", unit or metric.unit, metric.name,
                  [{"source_text": f.source_text, "period": f.period} for f in inputs], kind="figure",
                  reason=reason, evidence=evidence_of(inputs), confidence=0.9)


def cannot(metric: MetricDef, why: str, *cs: Computed) -> Answer:
    """No figure: the answer says which input is missing (never a component figure as the answer)."""
    inputs = [f for c in cs for f in c.inputs]
    missing = [m for c in cs for m in c.missing] or [why]
    pages = sorted({p for f in inputs for p in f.pages})
    text = f"{metric.label} cannot be computed from this document: {why} ({metric.label} = {metric.expr})."
    return Answer(text, None, pages, "facts", metric.unit, metric.name, [], kind="figure",
                  reason=f"not computed: {why}.", evidence=evidence_of(inputs), confidence=0.0, missing=missing)


def metric_names(spec: DomainSpec, table: Table) -> tuple:
    """The calculator's named series (metrics and metric lines) for trend questions' fact matching."""
    return _extra(spec, table)


# ---- choice among named lines ---------------------------------------------------------------------
# "Among operations, investing, and financing activities, which brought in the most (or lost the least) cash flow
# in FY2023?": the options listed before `which`, the direction word after it.
_CHOICE = re.compile(r"\b(?:among|between|of|out of)\s+(?:the\s+|its\s+)?(?P<opts>[\w&' -]+(?:,\s*(?:and\s+|or\s+)?[\w&' -]+)+)"
                     r",?\s+which\b(?P<pred>[^?]*?)\b(?P<dir>most|least|highest|lowest|largest|smallest|biggest|greatest)\b", re.I)
_MAX_WORDS = {"most", "highest", "largest", "biggest", "greatest"}
_FIVE = re.compile(r"[a-z]{3,}")


def _options(text: str) -> list[str]:
    parts = re.split(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", text.strip())
    return [p.strip() for p in parts if p.strip()]


def _option_metric(spec: DomainSpec, table: Table, option: str, question: str) -> MetricDef | None:
    """The fact or line an elliptic option names ("operations" among "operations, investing, and financing
    activities ... cash flow"): the one whose `ask` phrase holds every word of the option (by first five letters) and
    most of its other words in the question."""
    own = {w[:5] for w in _FIVE.findall(option.lower())}
    context = own | {w[:5] for w in _FIVE.findall(question.lower())}
    best, key = None, (0.0, 0)
    for f in [*spec.facts, *spec.derived, *_extra(spec, table)]:
        for alias in getattr(f, "ask", ()) or ():
            words = {w[:5] for w in _FIVE.findall(alias.lower()) if w not in _GLUE_WORDS}
            if not words or not own <= words:
                continue
            k = (len(words & context) / len(words), len(words & context))
            if k > key:
                best, key = f, k
    if best is None or key[0] < 0.75:
        return None
    return subject(spec, table, (best.ask or [best.name])[0])


_GLUE_WORDS = {"the", "and", "for", "from"}


def answer_choice(spec: DomainSpec, table: Table, question: str) -> Answer | None:
    """Which of the lines a question lists is largest / smallest for the year asked (signed: an outflow is below any
    inflow); None when it lists no options or one of them names no line."""
    m = _CHOICE.search(question)
    if not m:
        return None
    opts = _options(m.group("opts"))
    metrics = [_option_metric(spec, table, o, question) for o in opts]
    if len(opts) < 2 or any(x is None for x in metrics) or len({x.name for x in metrics}) < len(opts):
        return None
    years = years_in(question)
    period = period_at(table, max(years) if years else None)
    if period is None:
        return None
    cs = [table.compute(x, period) for x in metrics]
    if any(c.value is None for c in cs):
        return cannot(metrics[0], f"missing {', '.join(x for c in cs for x in c.missing)}", *cs)
    pick = (max if m.group("dir").lower() in _MAX_WORDS else min)(range(len(cs)), key=lambda i: cs[i].value)
    c = cs[pick]
    pred = " ".join(f"{m.group('pred')} {m.group('dir')}".split())
    pages = " ".join(f"[p.{p}]" for p in c.pages)
    text = f"{opts[pick][:1].upper()}{opts[pick][1:]} {pred}: {c.metric.label.lower()} {c.shown()} in {period} {pages}."
    others = "; ".join(f"{o}: {x.metric.label.lower()} {x.shown()}" for o, x in zip(opts, cs))
    how = f"compared for {period}: {others}"
    ans = _answer(text, _scaled(c.value, c.metric.unit, c.scale, question), c.metric, cs, question, how)
    ans.text, ans.kind, ans.label = text, "label", opts[pick]
    return ans
