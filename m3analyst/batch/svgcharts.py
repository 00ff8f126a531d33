"""Small inline SVG charts for the batch dashboard (no image files, crisp at any zoom): trend bars with value labels
(a missing period shows "n/a", never a zero bar) and a forest plot of estimates with their confidence intervals."""

from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence


def trend_bars(points: Sequence[tuple[str, float | None]], fmt: Callable[[float], str], width: int = 150,
               height: int = 54, color: str = "#3c6fd1") -> str:
    """Bars for (period, value) in order, each labelled; '' when no value exists."""
    values = [v for _, v in points if v is not None]
    if not values:
        return ""
    top = max(max(values), 0.0)
    bottom = min(min(values), 0.0)
    span = (top - bottom) or 1.0
    n = len(points)
    slot = width / n
    plot_top, plot_h = 12, height - 24
    zero_y = plot_top + plot_h * top / span
    parts = [f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, (period, v) in enumerate(points):
        x = i * slot + slot * 0.15
        w = slot * 0.7
        cx = x + w / 2
        parts.append(f'<text x="{cx:.1f}" y="{height - 2}" text-anchor="middle" class="ax">{escape(str(period)[-4:])}</text>')
        if v is None:
            parts.append(f'<text x="{cx:.1f}" y="{zero_y - 2:.1f}" text-anchor="middle" class="na">n/a</text>')
            continue
        y = plot_top + plot_h * (top - max(v, 0.0)) / span
        h = max(plot_h * abs(v) / span, 0.8)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}"><title>{escape(period)}: '
                     f'{escape(fmt(v))}</title></rect>')
        label_y = y - 2 if v >= 0 else y + h + 9
        parts.append(f'<text x="{cx:.1f}" y="{label_y:.1f}" text-anchor="middle" class="val">{escape(fmt(v))}</text>')
    parts.append("</svg>")
    return "".join(parts)


RATIO_MEASURES = {"or", "sor", "rr", "hr", "irr", "odds ratio", "relative risk", "hazard ratio"}


def forest(rows: Sequence[dict], width: int = 760, row_h: int = 22) -> str:
    """One line per estimate: label, CI whisker, point, and the value label 'est [lo, hi]'. Ratio measures on a log
    axis with a line at 1; differences on a linear axis with a line at 0; prevalences without a null line."""
    if not rows:
        return ""
    log = all(r["measure"].lower() in RATIO_MEASURES for r in rows) and all(r["lo"] > 0 for r in rows)
    tx = math.log if log else (lambda v: v)
    lo = min(tx(r["lo"]) for r in rows)
    hi = max(tx(r["hi"]) for r in rows)
    null = None if any(r["measure"].lower() == "prevalence" for r in rows) else 0.0  # log(1) = 0 on a log axis
    if null is not None:
        lo, hi = min(lo, null), max(hi, null)
    left, right = 230, 200
    span = (hi - lo) or 1.0
    xs = lambda v: left + (width - left - right) * (tx(v) - lo) / span  # noqa: E731
    height = row_h * len(rows) + 24
    parts = [f'<svg class="forest" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    if null is not None:
        x0 = left + (width - left - right) * (null - lo) / span
        parts.append(f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="4" y2="{height - 18}" class="null"/>'
                     f'<text x="{x0:.1f}" y="{height - 4}" text-anchor="middle" class="ax">{"1" if log else "0"}</text>')
    for i, r in enumerate(rows):
        y = 12 + i * row_h
        parts.append(f'<text x="4" y="{y + 4}" class="lab">{escape(r["label"][:38])}</text>')
        parts.append(f'<line x1="{xs(r["lo"]):.1f}" x2="{xs(r["hi"]):.1f}" y1="{y}" y2="{y}" class="ci"/>')
        parts.append(f'<rect x="{xs(r["estimate"]) - 4:.1f}" y="{y - 4}" width="8" height="8" class="pt"/>')
        parts.append(f'<text x="{width - right + 8}" y="{y + 4}" class="val">{escape(r["measure"])} {r["estimate"]:g} '
                     f'[{r["lo"]:g}, {r["hi"]:g}]</text>')
    parts.append(f'<text x="{width - right}" y="{height - 4}" text-anchor="end" class="ax">{"log scale" if log else ""}</text></svg>')
    return "".join(parts)
