"""Trend questions about one finance fact, answered by arithmetic over its extracted series.

"Has AMCOR's quick ratio improved or declined between FY2023 and FY2022?", "Was there any drop in cash and
cash equivalents between FY2023 and Q2 of FY2024?", "Does Corning have positive working capital based on
FY2022 data?", "Are Best Buy's gross margins historically consistent (not fluctuating more than roughly 2%
each year)?": the fact the question names (reported or derived, domain spec `ask` phrases) is compared across
its periods and the answer states the figures with their pages. Direction words are read against the fact's
`better` direction ("improved" for debt means it fell). Nothing here is generated: a question this module
cannot read (no named fact, fewer periods than it needs, "how much" questions, which are numeric look-ups)
gets None and `ask` goes on to its other answerers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.domains.facts import Fact, current_and_prior
from m3analyst.domains.spec import DomainSpec
from m3analyst.memo.types import Answer
from m3analyst.memo.verify import page_marks
from m3analyst.text import period_key, period_span

_UP = re.compile(r"\b(increas\w*|grow\w*|grew|rise|rose|risen|rising|higher|expand\w*|gain\w*)\b", re.I)
_DOWN = re.compile(r"\b(drop\w*|declin\w*|decreas\w*|fall|fell|fallen|falling|lower|shr[iau]nk\w*|reduc\w*|"
                   r"contract(ed|ion)|deteriorat\w*|worsen\w*)\b", re.I)
_BETTER = re.compile(r"\bimprov\w*\b", re.I)
_CHANGED = re.compile(r"\bchange[ds]?\b", re.I)
_SIGN = re.compile(r"\b(positive|negative)\b", re.I)
_STABLE = re.compile(r"\b(consistent\w*|stable|steady|fluctuat\w*|volatil\w*)\b", re.I)
_THRESHOLD = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent(?:age points?)?)", re.I)
_HOW_MUCH = re.compile(r"\b(how much|by how much|how many|what (is|was|were|are)|calculate|compute)\b", re.I)
_CAUSE = re.compile(r"\b(because|due to|driven by|owing to|as a result of|thanks to|caused by)\b", re.I)  # not "explain why"
_POLAR = re.compile(r"^\s*(is|are|was|were|has|have|had|does|do|did)\b", re.I)
_YEAR = re.compile(r"(?:FY\s?|fiscal (?:year )?)?((?:19|20)\d{2})", re.I)
DEFAULT_STABLE = 2.0  # % (points for % facts): the change a "consistent" series may show between periods


@dataclass(frozen=True)
class Named:
    """The fact a question names: its name, label, the phrase found and which direction is better."""

    name: str
    label: str
    better: str
    alias: str


def named_fact(spec: DomainSpec, question: str, extra: tuple = ()) -> Named | None:
    """The fact or derived fact (or one of `extra`: metrics, metric lines, anything with name, label, better and
    ask) whose `ask` phrase occurs earliest in the question (longest on ties); a phrase met as such ("repurchases
    of common stock") before one whose words all occur, in any order and inflection, in the question ("How much
    common stock did Microsoft repurchase?")."""
    q = question.lower()
    stems: dict[str, int] = {}
    for m in re.finditer(r"[a-z]+", q):
        stems.setdefault(_stem(m.group(0)), m.start())
    hits = []
    for f in [*spec.facts, *spec.derived, *extra]:
        for alias in f.ask:
            named = Named(f.name, f.label or f.name, f.better, alias.lower())
            m = alias_at(alias, q, plural=True)  # "gross margins" names "gross margin"
            if m:
                hits.append((0, m.start(), -len(alias), named))
                continue
            words = [_stem(w) for w in re.findall(r"[a-z]+", alias.lower()) if w not in _GLUE]
            if len(words) >= 2 and all(w in stems for w in words):
                hits.append((1, min(stems[w] for w in words), -len(alias), named))
    return min(hits, key=lambda h: h[:3])[3] if hits else None


def alias_at(alias: str, q: str, plural: bool = False) -> re.Match | None:
    """Where a fact's `ask` phrase occurs in the (lower-cased) question as whole words (plural: or with an 's')."""
    return re.search(rf"(?<!\w){re.escape(alias.lower())}{'s?' if plural else ''}(?!\w)", q)


_GLUE = {"of", "the", "and", "to", "in", "on", "for", "a"}


def _stem(word: str) -> str:
    """Crude inflection stripping for matching question words to fact phrases: repurchasing / repurchased /
    repurchases / repurchase -> repurchas."""
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def answer_trend(spec: DomainSpec, facts: list[Fact], question: str, extra: tuple = ()) -> Answer | None:
    """Yes / no (or improved / declined) from the named fact's series; None when the question is not one.
    `extra`: further named series (the metric calculator's metrics, facts among `facts`)."""
    if _HOW_MUCH.search(question) or _CAUSE.search(question):
        return None  # an amount (a look-up), or a cause ("Did revenue grow because of prices?"): not a trend
    named = named_fact(spec, question, extra)
    if named is None:
        return None
    series = [f for f in facts if f.name == named.name and isinstance(f.value, float) and f.period]
    if not series:
        return None
    polar = bool(_POLAR.search(question))
    if _STABLE.search(question):
        return _stability(named, series, question)
    if _SIGN.search(question) and polar:
        return _sign(named, series, question)
    improve, up, down = bool(_BETTER.search(question)), bool(_UP.search(question)), bool(_DOWN.search(question))
    if not (improve or up or down or _CHANGED.search(question)) or not (polar or ((improve or up) and down)):
        return None  # "Why did sales decline?" asks for reasons, not for the direction
    pair = _pair(in_asked_span(series, question), question)
    if pair is None:
        return _one_period(named, series) if len({f.period for f in series}) == 1 else None
    return _direction(named, *pair, improve=improve, up=up, down=down, polar=polar)


# ---- the kinds of answer ----------------------------------------------------------------------------
def _direction(named: Named, a: Fact, b: Fact, *, improve: bool, up: bool, down: bool, polar: bool) -> Answer:
    """"Has X improved?" -> Yes / No; "improved or declined?" / "increased or decreased?" -> the direction;
    "Was there any drop / increase / change?" -> Yes / No."""
    went = "up" if b.value > a.value else "down" if b.value < a.value else "flat"
    moved = {"up": "rose", "down": "fell", "flat": "was unchanged"}[went]
    facts_text = f"{named.label} {moved} from {_shown(a)} ({a.period}) to {_shown(b)} ({b.period}){_delta(a, b)}"
    choice = not polar or (up and down) or (improve and (up or down))
    if improve:
        good = "up" if named.better == "higher" else "down"
        verdict = "improved" if went == good else "unchanged" if went == "flat" else "worsened"
        lead = verdict.capitalize() if choice else ("Yes" if verdict == "improved" else "No")
    elif choice:
        lead = {"up": "Increased", "down": "Decreased", "flat": "Unchanged"}[went]
    elif up or down:
        lead = "Yes" if went == ("up" if up else "down") else "No"
    else:  # "any change?"
        lead = "No" if went == "flat" else "Yes"
    return _answer(f"{lead}: {facts_text}", [a, b], named, _printed(b, b.value - a.value), b.unit)


def _one_period(named: Named, series: list[Fact]) -> Answer:
    """Only one period of the fact could be read or computed (a ratio over average balances needs the balance
    sheet before the earliest one shown): the figure, and that the trend cannot be stated from this document."""
    f = series[0]
    text = (f"{named.label} can be stated for {f.period} only: {_shown(f)}{derivation(f)}; no earlier period's figure can be "
            f"read or computed from this document, so no trend is stated")
    return _answer(text, [f], named, _printed(f, f.value), f.unit)


def _sign(named: Named, series: list[Fact], question: str) -> Answer:
    f = _at_year(series, question) or max(series, key=lambda x: period_key(x.period))
    asked_positive = _SIGN.search(question).group(1).lower() == "positive"
    holds = f.value > 0 if asked_positive else f.value < 0
    text = f"{'Yes' if holds else 'No'}: {named.label} for {f.period} was {_shown(f)}{derivation(f)}"
    return _answer(text, [f], named, _printed(f, f.value), f.unit)


def _stability(named: Named, series: list[Fact], question: str) -> Answer | None:
    """Consistent when no change between consecutive periods exceeds the question's threshold (default 2 %;
    percentage points for % facts, relative change otherwise)."""
    span = period_span(max(series, key=lambda x: period_key(x.period)).period)
    ordered = sorted((f for f in series if period_span(f.period) == span), key=lambda x: period_key(x.period))
    if len(ordered) < 2:
        return None
    m = _THRESHOLD.search(question)
    limit = float(m.group(1)) if m else DEFAULT_STABLE
    steps = [change(x, y) for x, y in zip(ordered, ordered[1:])]
    worst = max(steps, key=abs)
    unit = " points" if ordered[0].unit == "%" else "%"
    values = ", ".join(f"{_shown(f)} ({f.period})" for f in ordered)
    lead = "Yes" if abs(worst) <= limit else "No"
    text = (f"{lead}: {named.label} was {values}; the largest change between consecutive periods was "
            f"{worst:+.1f}{unit} (threshold {limit:g}{unit})")
    return _answer(text, ordered, named, worst, "%")  # percentage points for % facts, relative change otherwise


# ---- helpers ---------------------------------------------------------------------------------------
def _pair(series: list[Fact], question: str) -> tuple[Fact, Fact] | None:
    """(earlier, later) facts the question compares: the two years it names when both are periods of the
    series, else the year it names (or the latest period) and the comparable period before it."""
    years = years_in(question)
    picked = [f for f in (_latest_in(series, y) for y in years) if f is not None]
    picked = sorted({id(f): f for f in picked}.values(), key=lambda f: period_key(f.period))
    if len(picked) >= 2 and len(years) >= 2 and period_span(picked[0].period) == period_span(picked[-1].period):
        return picked[0], picked[-1]
    anchor = picked[-1] if len(picked) == 1 and len(years) == 1 else None
    pool = series if anchor is None else [f for f in series if period_key(f.period) <= period_key(anchor.period)]
    cur, prev = current_and_prior(pool)
    return (prev, cur) if cur is not None and prev is not None else None


_SPAN_Q = re.compile(r"\b(three|six|nine|twelve) months\b|\b(quarter|q[1-4])\b", re.I)


def in_asked_span(series: list[Fact], question: str) -> list[Fact]:
    """The facts of the span a question names ("six months ended ...", "the second quarter" = three months);
    all of them when it names none or none has that span."""
    m = _SPAN_Q.search(question)
    if not m:
        return series
    span = (m.group(1) or "three").lower() + " months"
    return [f for f in series if period_span(f.period) == span] or series


def years_in(question: str) -> list[str]:
    """The years a question names, in order, once each ("FY2023", "fiscal 2022", "2021")."""
    return list(dict.fromkeys(m.group(1) for m in _YEAR.finditer(question)))


def _latest_in(series: list[Fact], year: str) -> Fact | None:
    return max((f for f in series if year in f.period), key=lambda f: period_key(f.period), default=None)


def _at_year(series: list[Fact], question: str) -> Fact | None:
    years = years_in(question)
    return _latest_in(series, years[-1]) if years else None


def change(a: Fact, b: Fact) -> float:
    """From a to b: percentage points for rates (% facts), else the relative change in % (0 when a is 0)."""
    if a.unit == "%":
        return b.value - a.value
    return 100.0 * (b.value - a.value) / abs(a.value) if a.value else 0.0


def _delta(a: Fact, b: Fact) -> str:
    if a.unit == "%":
        return f", {change(a, b):+.1f} percentage points"
    return f", {change(a, b):+.1f}%" if a.value else ""


def derivation(f: Fact) -> str:
    """' = <expression>' for a derived fact (how it was computed), '' for a reported one."""
    return f" = {f.source_text}" if f.derived and f.source_text else ""


def _shown(f: Fact) -> str:
    return f"{f.value:.2f}" if f.unit == "ratio" else f.display()


def _printed(f: Fact, value: float) -> float:
    """An amount in the scale the document prints the fact in (USD millions for a 10-K): what `ask` returns."""
    return value / (f.scale or 1.0) if f.unit == "USD" else value


def _answer(text: str, used: list[Fact], named: Named, value: float, unit: str | None) -> Answer:
    pages = sorted({p for f in used for p in f.pages})
    return Answer(f"{text} {page_marks(pages)}.", round(value, 6), pages, "facts",
                  unit, named.name, [{"source_text": f.source_text, "period": f.period} for f in used])
