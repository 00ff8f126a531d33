"""The `Fact` every extractor returns, and how facts are shown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from m3analyst.text import period_key, period_span


@dataclass
class Fact:
    """One extracted fact with provenance.

    value: a float (already multiplied out: `value` is in `unit`, e.g. USD, not millions; `scale` records
    the scale the document printed it in) or a string (clause text value, a date, a law).
    period: the period label the value belongs to ("2018", "FY2023 Q2", "Dec 31 2018"), or None.
    page: 1-based physical page of the source; source_text: the row / clause / sentence it came from.
    derived: computed from other facts (margins, FCF, YoY), not printed as such in the document.
    """

    name: str
    value: float | str | None
    unit: str | None = None
    scale: float = 1.0
    period: str | None = None
    page: int | None = None
    source_text: str = ""
    label: str | None = None
    derived: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def pages(self) -> list[int]:
        """The pages that back the fact: a derived fact's inputs' pages (extra["pages"]), else its own page."""
        return self.extra.get("pages") or ([self.page] if self.page else [])

    def display(self) -> str:
        """Human form: 32,765 (USD millions) -> '$32,765M', EPS '$8.89', margins and returns '22.0%', ratios '1.89'."""
        return format_value(self.value, self.unit, self.scale)


def format_value(value: float | str | None, unit: str | None, scale: float = 1.0) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "USD/share":
        return f"${value:,.3f}" if round(value, 2) != round(value, 3) else f"${value:,.2f}"
    if unit == "USD":
        shown = value / (scale or 1.0)
        suffix = {1e3: "K", 1e6: "M", 1e9: "B"}.get(scale, "")
        sign = "-" if shown < 0 else ""
        decimals = 2 if (suffix == "B" and abs(shown) < 100) or (not suffix and abs(shown) < 100) else 0
        return f"{sign}${abs(shown):,.{decimals}f}{suffix}"
    if unit == "days":
        return f"{value:,.1f} days"
    if unit == "ratio":  # current / quick ratio, turnover: always two decimals (1.89, 1.29, 3.97)
        return f"{value:,.2f}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def current_and_prior(series: list[Fact]) -> tuple[Fact | None, Fact | None]:
    """The latest fact and the comparable prior one (same span: quarter vs quarter, YTD vs YTD)."""
    if not series:
        return None, None
    cur = max(series, key=lambda f: period_key(f.period))
    same = [f for f in series if period_span(f.period) == period_span(cur.period) and period_key(f.period) < period_key(cur.period)]
    return cur, max(same, key=lambda f: period_key(f.period), default=None)
