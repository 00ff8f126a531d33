"""The batch dashboard (OUT/index.html, from templates/dashboard.html.j2) and OUT/comparison.xlsx: the documents'
list plus the comparison tables of batch/compare.py (finance peer matrix with trend charts, legal clause heatmap, bio
effects with forest plots)."""

from __future__ import annotations

import io
from typing import Any

from m3analyst.batch.compare import comparison
from m3analyst.batch.svgcharts import RATIO_MEASURES, forest, trend_bars


def _money(v: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{v / div:,.1f}{suffix}"
    return f"{v:,.0f}"


def _trends(series: dict[str, list[tuple[str, float | None]]]) -> list[str]:
    charts = []
    for name, fmt, color in (("revenue", _money, "#3c6fd1"), ("operating_margin", lambda v: f"{v:.1f}%", "#2f9e44"),
                             ("net_margin", lambda v: f"{v:.1f}%", "#e8590c")):
        svg = trend_bars(series.get(name) or [], fmt, color=color)
        if svg:
            charts.append({"name": name.replace("_", " "), "svg": svg})
    return charts


def _forests(bio: dict[str, Any]) -> list[dict[str, str]]:
    groups: dict[str, list[dict]] = {}
    for r in bio["rows"]:
        for e in r["estimates"]:
            m = e["measure"].lower()
            kind = "ratios" if m in RATIO_MEASURES else ("prevalence (%)" if m == "prevalence" else "differences and other estimates")
            groups.setdefault(kind, []).append({**e, "label": f"{r['id'][:30]} p.{e['page']}"})
    return [{"title": k, "svg": forest(v)} for k, v in groups.items()]


def dashboard_context(rows: list[dict[str, Any]]) -> dict[str, Any]:
    comp = comparison(rows)
    fin = comp["statements"]
    trends = {company: _trends(series) for company, series in fin["series"].items()}
    return {"comparison": comp, "trends": trends, "forests": _forests(comp["effects"])}


def comparison_xlsx(rows: list[dict[str, Any]]) -> bytes | None:
    """The dashboard's tables as a workbook (None without openpyxl: the [office] extra)."""
    try:
        import openpyxl
    except ImportError:
        return None
    comp = comparison(rows)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    fin, legal, bio = comp["statements"], comp["clauses"], comp["effects"]
    if fin["rows"]:
        ws = wb.create_sheet("Finance peers")
        ws.append(["id", "period", *[f"{label} ({unit})" for _, label, unit in fin["columns"]],
                   *[f"{label} page" for _, label, _ in fin["columns"]]])
        for r in fin["rows"]:
            cells = [r["cells"].get(name) or {} for name, _, _ in fin["columns"]]
            ws.append([r["id"], r["period"], *[c.get("value") for c in cells], *[c.get("page") for c in cells]])
    if legal["rows"]:
        ws = wb.create_sheet("Legal clauses")
        ws.append(["id", "document", *[label for _, label in legal["columns"]]])
        for r in legal["rows"]:
            ws.append([r["id"], r["title"], *[(r["cells"].get(n) or {}).get("answer") for n, _ in legal["columns"]]])
    if bio["rows"]:
        ws = wb.create_sheet("Bio effects")
        ws.append(["id", "title", *bio["columns"], "measure", "estimate", "ci_low", "ci_high", "page"])
        for r in bio["rows"]:
            base = [r["id"], r["title"], *[(r["cells"].get(c) or {}).get("shown") for c in bio["columns"]]]
            for e in r["estimates"] or [{}]:
                ws.append([*base, e.get("measure"), e.get("estimate"), e.get("lo"), e.get("hi"), e.get("page")])
    if not wb.sheetnames:
        wb.create_sheet("No comparison")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
