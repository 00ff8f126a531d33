"""Charts for memos and batch dashboards (matplotlib, Agg, PNG bytes).

Every bar carries its value label; a missing value is left out (no bar, "n/a" on the axis) and never drawn as 0.
"""

from __future__ import annotations

import io
import math
from typing import Callable, Mapping, Sequence

from m3analyst.domains.facts import Fact

UNIT_NAMES = {1e6: "USD millions", 1e3: "USD thousands", 1e9: "USD billions", 1.0: "USD"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def grouped_bars(series: Mapping[str, Mapping[str, float | None]], groups: Sequence[str], ylabel: str,
                 fmt: Callable[[float], str], size: tuple[float, float] = (8, 3.6), on_bars=None) -> bytes | None:
    """Bars per group (x) for each series, labelled with `fmt(value)`; None when nothing is drawable.
    `on_bars((name, xs, ys, labels))` sees each series' bars as drawn."""
    if not groups or not any(not _missing(s.get(g)) for s in series.values() for g in groups):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=size, dpi=110)
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [j + i * width for j, g in enumerate(groups) if not _missing(values.get(g))]
        ys = [values[g] for g in groups if not _missing(values.get(g))]
        labels = [fmt(y) for y in ys]
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        if on_bars is not None:
            on_bars((name, [round(x, 6) for x in xs], ys, labels))
        for j, g in enumerate(groups):
            if _missing(values.get(g)):
                ax.annotate("n/a", (j + i * width, 0), ha="center", va="bottom", fontsize=7, color="#8a93a6")
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(groups))], list(groups), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="#b5bcc9", linewidth=0.8)
    ax.margins(y=0.15)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False, ncols=min(len(series), 4), loc="upper left", bbox_to_anchor=(0, -0.12))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _series(facts: Sequence[Fact], names: Sequence[str], scale_of: Callable[[Fact], float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    by_name = {n: i for i, n in enumerate(names)}
    for f in sorted(facts, key=lambda f: by_name.get(f.name, 99)):
        if f.name in by_name and isinstance(f.value, float) and f.period and " vs " not in f.period:
            out.setdefault(f.title, {})[f.period] = f.value / scale_of(f)
    return out


def _periods(series: Mapping[str, Mapping[str, float]]) -> list[str]:
    from m3analyst.text import period_key

    return sorted({p for s in series.values() for p in s}, key=period_key)


def key_series_png(facts: Sequence[Fact], names: Sequence[str]) -> bytes | None:
    """The spec's chart series (amounts) by period, in the scale the document printed them."""
    amounts = [f for f in facts if f.name in names and not f.derived and f.unit == "USD"]
    scale = next((f.scale for f in amounts if f.scale), 1.0)
    series = _series(amounts, names, lambda f: scale)
    periods = _periods(series)
    if len(periods) < 2:
        return None
    return grouped_bars(series, periods, UNIT_NAMES.get(scale, "USD"), lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}")


MARGINS = ("gross_margin", "operating_margin", "ebitda_margin", "net_margin")


def margins_png(facts: Sequence[Fact], names: Sequence[str] = MARGINS) -> bytes | None:
    """Margins (percent) by period."""
    series = _series([f for f in facts if f.unit == "%"], names, lambda f: 1.0)
    periods = _periods(series)
    if not periods:
        return None
    return grouped_bars(series, periods, "% of revenue", lambda v: f"{v:.1f}%")


# The charts a domain's render hints may name (spec `render: {charts: [...]}`): name -> (caption, fn(facts, the
# memo's chart series) -> PNG bytes or None).
CHARTS: dict[str, tuple[str, Callable[[Sequence[Fact], Sequence[str]], bytes | None]]] = {
    "key_series": ("Key series by period", key_series_png),
    "margins": ("Margins by period", lambda facts, _names: margins_png(facts)),
}
