"""The metric calculator: any metric a question names, computed from the filing's multi-year statements.

What it answers (model-free, every input shown with its figure and page):
- a named metric through the domain spec's synonym table (`metrics`: current / quick ratio, DSO, DIO, DPO, cash
  conversion cycle, capex intensity, interest coverage, payout ratio, ROA, ROE, turnovers ...), whose expression
  is arithmetic over facts, `metric_lines` (extra statement lines), derived facts and other metrics; `avg(x)` is
  the average of the period's and the prior period's balance;
- any ratio of two lines the question names ("ratio of R&D to revenue", "capex as a percentage of revenue");
- growth between two periods, CAGR over any span the question names, averages over N years, of any of these.

An input that cannot be read makes the answer say which one is missing; a component figure is never returned as
if it were the metric. Period arithmetic is by fiscal year: a period is the one whose label holds the year
(FY2023 of a January year-end is "January 28, 2023").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from m3analyst.text import parse_date
from m3analyst.domains.facts import Fact, format_value
from m3analyst.domains.finance.extract import (
    Row,
    _eval,
    _facts_from_statement,
    _near_best,
    facts_from_xbrl,
    period_key,
    period_span,
    split_row,
    statements,
)
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.ingest.model import Citation, Document

_NAME = re.compile(r"\b[a-z_][a-z0-9_]*\b")
_AVG = re.compile(r"\bavg\(\s*([a-z_][a-z0-9_]*)\s*\)")


@dataclass(frozen=True)
class MetricDef:
    name: str
    label: str
    unit: str
    expr: str
    ask: tuple[str, ...] = ()
    better: str = "higher"


@dataclass
class Computed:
    """One metric for one period: its value (None when an input is missing), the inputs with their figures and
    pages, and the names of the missing inputs."""

    metric: MetricDef
    period: str
    value: float | None
    inputs: list[Fact] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    scale: float = 1.0

    @property
    def pages(self) -> list[int]:
        return sorted({p for f in self.inputs for p in f.pages})

    def shown(self) -> str:
        return show(self.value, self.metric.unit, self.scale)

    def as_fact(self) -> Fact:
        return Fact(self.metric.name, self.value, self.metric.unit, self.scale, self.period,
                    self.pages[0] if self.pages else None, self.formula(), self.metric.label, True,
                    extra={"pages": self.pages, "metric": True})

    def formula(self) -> str:
        return f"{self.metric.expr} with " + "; ".join(input_text(f) for f in self.inputs)


def show(value: float | None, unit: str, scale: float = 1.0) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "days":
        return f"{value:.1f} days"
    return format_value(value, unit, scale)


def input_text(f: Fact) -> str:
    """'revenue 2018 = $32,765M [p.56]'."""
    pages = " ".join(f"[p.{p}]" for p in f.pages)
    return f"{f.title.lower()} {f.period} = {f.display() if f.unit != 'ratio' else f'{f.value:.2f}'} {pages}".strip()


# ---- the spec's table ---------------------------------------------------------------------------
_DEFS: dict[int, tuple] = {}


def metric_defs(spec: DomainSpec) -> tuple[MetricDef, ...]:
    """The spec's `metrics` (synonym table), a derived fact's expression where a metric gives none."""
    if id(spec) not in _DEFS or _DEFS[id(spec)][0] is not spec:
        _DEFS[id(spec)] = (spec, _defs(spec))
    return _DEFS[id(spec)][1]


def _defs(spec: DomainSpec) -> tuple[MetricDef, ...]:
    derived = {d.name: d for d in spec.derived}
    out = []
    for m in (spec.model_extra or {}).get("metrics", []) or []:
        d = derived.get(m["name"]) if not m.get("expr") else None
        expr = m.get("expr") or (d.expr if d else "")
        if not expr:
            continue
        unit = (d.unit if d is not None else None) or m.get("unit") or "ratio"  # one definition per name: the derived fact's
        out.append(MetricDef(m["name"], m.get("label") or m["name"], unit, expr,
                             tuple(a.lower() for a in m.get("ask", [])), m.get("better", "higher")))
    return tuple(out)


def line_specs(spec: DomainSpec) -> list[FactSpec]:
    return [FactSpec(**d) for d in (spec.model_extra or {}).get("metric_lines", []) or []]


def line_facts(doc: Document, spec: DomainSpec, have: set[str]) -> list[Fact]:
    """The spec's `metric_lines`: inline-XBRL concepts first, then the primary statements (the facts extractor's
    matching rules); a line already among the facts (`have`) is not read again."""
    lines = [fs for fs in line_specs(spec) if fs.name not in have]
    out = facts_from_xbrl(doc, spec.model_copy(update={"facts": lines})) if lines else []
    found = {f.name for f in out}
    sts = statements(doc, spec)
    for fs in lines:
        if fs.name in found:
            continue
        for st in _near_best(sts, getattr(fs, "statement", None)):
            got = _facts_from_statement(st, fs)
            if got:
                out.extend(got)
                break
    return out


def canonical_period(period: str) -> str:
    """'September 28, 2024' and '2024-09-28' are one period (XBRL facts and page-parsed lines meet); year-only
    labels and spans ('three months to ...') are kept as written."""
    if period_span(period) or re.fullmatch(r"\s*(?:19|20)\d{2}\s*", period):
        return period
    d = parse_date(period)
    return d.isoformat() if d else period


_ABBREV = {"ppne": "property plant equipment net", "pp&e": "property plant equipment", "ppe": "property plant equipment",
           "cogs": "cost of goods sold", "sg&a": "selling general administrative", "r&d": "research development"}


def row_facts(doc: Document, spec: DomainSpec, question: str) -> list[Fact]:
    """Facts for the statement line item whose label best matches the question (all its words in it)."""
    q = question.lower()
    for k, v in _ABBREV.items():
        q = re.sub(rf"(?<![\w&]){re.escape(k)}(?![\w&])", v, q)
    qwords = set(re.findall(r"[a-z]+", q))
    best: tuple[float, Row, object] | None = None
    for st in statements(doc, spec):
        if st.score < 3:
            continue
        for r in st.rows:
            words = [w for w in re.findall(r"[a-z]+", r.label) if w not in ("and", "of", "the", "less")]
            if len(words) < 2 or re.search(r"\d", r.label):
                continue
            hit = sum(1 for w in words if w in qwords) / len(words)
            score = hit + 0.01 * len(words) + 0.002 * st.score
            if hit >= 0.99 and (best is None or score > best[0]):
                best = (score, r, st)
    if best is None:
        return []
    _, r, st = best
    parsed = split_row(r.text.split("\n")[-1])
    label = (parsed[0] if parsed and parsed[0] else r.label).strip()
    name = re.sub(r"\W+", "_", r.label).strip("_")
    scale = 1.0 if r.decimals else st.scale
    return [Fact(name, v * scale, "USD" if not r.decimals else "USD/share", scale, p, st.page, r.text, label)
            for p, v in zip(st.periods, r.values) if v is not None]


# ---- computing -----------------------------------------------------------------------------------
class Table:
    """Facts by period (reported, derived and metric lines) and the metrics over them."""

    def __init__(self, doc: Document, spec: DomainSpec, facts: list[Fact]):
        self.spec = spec
        self.defs = {d.name: d for d in metric_defs(spec)}
        numeric = [f for f in facts if isinstance(f.value, float) and f.period and not f.extra.get("yoy")
                   and not f.name.endswith("_yoy")]
        numeric += line_facts(doc, spec, {f.name for f in numeric})
        self.doc, self.by_period = doc, {}
        self.add(numeric)

    def add(self, facts: list[Fact]) -> None:
        for f in facts:
            self.by_period.setdefault(canonical_period(f.period), {}).setdefault(f.name, f)

    def periods(self, span: str = "") -> list[str]:
        return sorted((p for p in self.by_period if period_span(p) == span), key=period_key)

    def prior(self, period: str) -> str | None:
        earlier = [p for p in self.by_period if period_span(p) == period_span(period) and period_key(p) < period_key(period)]
        return max(earlier, key=period_key) if earlier else None

    def expand(self, expr: str, depth: int = 0) -> str:
        """Metric names inside an expression replaced by their own expressions; avg(x) by ((x + prev_x) / 2)."""
        expr = _AVG.sub(lambda m: f"(({m.group(1)} + prev_{m.group(1)}) / 2)", expr)
        if depth > 4:
            return expr
        def sub(m: re.Match) -> str:
            d = self.defs.get(m.group(0))
            reported = any(m.group(0) in fs and not fs[m.group(0)].derived for fs in self.by_period.values())
            return f"({self.expand(d.expr, depth + 1)})" if d and not reported else m.group(0)
        return _NAME.sub(sub, expr)

    def compute(self, metric: MetricDef, period: str) -> Computed:
        expr = self.expand(metric.expr)
        here, prev = self.by_period.get(period, {}), self.by_period.get(self.prior(period) or "", {})
        env, inputs, missing = {}, [], []
        for name in dict.fromkeys(_NAME.findall(expr)):
            base, pool = (name[5:], prev) if name.startswith("prev_") else (name, here)
            f = pool.get(base)
            if f is None:
                missing.append(f"{self.title(base)} ({self.prior(period) or 'the prior period'})" if pool is prev
                               else f"{self.title(base)} ({period})")
                continue
            env[name] = f.value
            inputs.append(f)
        value = None if missing else _eval(expr, env)
        scale = next((f.scale for f in inputs if f.unit == "USD"), 1.0)
        return Computed(metric, period, value, inputs, missing, scale if metric.unit == "USD" else 1.0)

    def title(self, name: str) -> str:
        fs = self.spec.fact(name) or next((x for x in line_specs(self.spec) if x.name == name), None)
        return (fs.title if fs else name.replace("_", " ")).lower()

    def series(self, metric: MetricDef, span: str = "") -> list[Computed]:
        return [c for c in (self.compute(metric, p) for p in self.periods(span)) if c.value is not None]

    def all_facts(self) -> list[Fact]:
        """Every computable metric, every period, as derived facts (for trend questions); computed once."""
        if getattr(self, "_all", None) is None:
            self._all = self._compute_all()
        return self._all

    def _compute_all(self) -> list[Fact]:
        have = {n for fs in self.by_period.values() for n in fs}
        out = []
        for d in self.defs.values():
            if d.name in have:
                continue
            for p in self.by_period:
                c = self.compute(d, p)
                if c.value is not None:
                    out.append(c.as_fact())
        return out


def evidence_of(inputs: list[Fact]) -> list[Citation]:
    """One page citation per input, quoting the statement row it was read from."""
    out, seen = [], set()
    for f in inputs:
        for p in f.pages:
            key = (p, f.source_text)
            if key not in seen:
                seen.add(key)
                out.append(Citation.page_only(p, " ".join(f.source_text.split())[:200]))
    return out


def by_year(periods: list[str], year: str) -> str | None:
    """The latest period whose label holds `year` (fiscal-year arithmetic)."""
    hits = [p for p in periods if year in p]
    return max(hits, key=period_key) if hits else None
