"""Comparison tables across a batch's documents, built from the same fact rows as OUT/facts.csv (so every value shown
equals a facts.csv cell): a finance peer matrix (key figures and margins by company and period), a legal contract x
clause matrix (short answers, flagged clauses) and bio trial effects (estimates with confidence intervals read from the
papers' reported results). The dashboard (index.html) and comparison.xlsx both render these tables. A document shows
in the view its domain's render hints name (`render: {batch_view: statements | clauses | effects}` in its spec)."""

from __future__ import annotations

import re
from typing import Any

FINANCE_KEY = ("revenue", "operating_income", "net_income", "operating_cash_flow", "free_cash_flow", "eps_diluted",
               "gross_margin", "operating_margin", "net_margin", "roa", "current_ratio")
MAX_PERIODS = 3  # latest periods per company
# Clauses that restrict a party or expose it beyond the ordinary (CUAD's categories): flagged in the heatmap.
FLAG_CLAUSES = frozenset({"uncapped_liability", "non_compete", "exclusivity", "change_of_control", "liquidated_damages",
                          "termination_for_convenience", "most_favored_nation", "rofr_rofo_rofn", "covenant_not_to_sue",
                          "minimum_commitment", "non_disparagement", "no_solicit_of_customers", "no_solicit_of_employees",
                          "competitive_restriction_exception", "volume_restriction", "price_restrictions"})
SHORT = 32  # answers up to this many characters are shown as they are; longer clause texts as "Yes"
LEGAL_HEAD = ("document_name", "parties")  # shown as the row's title, not as matrix columns


def _cell(f: dict[str, Any]) -> dict[str, Any]:
    return {"value": f.get("value"), "shown": f.get("shown") or "", "page": f.get("page"), "unit": f.get("unit"),
            "label": f.get("label") or f.get("fact")}


def _ok(rows: list[dict[str, Any]], view: str) -> list[dict[str, Any]]:
    """The rows with facts whose domain's render hints put it in this batch view."""
    from m3analyst.domains import render_hints

    views = {d: render_hints(d).batch_view for d in {str(r.get("domain")) for r in rows}}
    return [r for r in rows if views[str(r.get("domain"))] == view and r.get("facts")]


def finance_matrix(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"columns": [(fact, label, unit)], "rows": [{"id", "period", "cells": {fact: cell}}], "series": {...}}."""
    from m3analyst.text import period_key

    labels: dict[str, tuple[str, str | None]] = {}
    out_rows, series = [], {}
    for r in _ok(rows, "statements"):
        by_period: dict[str, dict[str, dict]] = {}
        for f in r["facts"]:
            if f["fact"] in FINANCE_KEY and f.get("period") and " vs " not in f["period"] and isinstance(f.get("value"), (int, float)):
                by_period.setdefault(f["period"], {}).setdefault(f["fact"], _cell(f))
                labels.setdefault(f["fact"], (f.get("label") or f["fact"], f.get("unit")))
        periods = sorted(by_period, key=period_key, reverse=True)[:MAX_PERIODS]
        for p in periods:
            out_rows.append({"id": r["id"], "period": p, "cells": by_period[p]})
        series[r["id"]] = {name: [(p, by_period[p].get(name, {}).get("value")) for p in reversed(periods)]
                           for name in ("revenue", "operating_margin", "net_margin")}
    columns = [(n, *labels[n]) for n in FINANCE_KEY if n in labels]
    return {"columns": columns, "rows": out_rows, "series": series}


def legal_matrix(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Contracts x clauses: each cell the short answer (the value, or "Yes" for a found clause), its page, flagged."""
    order: dict[str, str] = {}
    out_rows = []
    for r in _ok(rows, "clauses"):
        cells = {}
        for f in r["facts"]:
            name = f["fact"]
            if name in LEGAL_HEAD or name in cells:
                continue
            order.setdefault(name, f.get("label") or name)
            c = _cell(f)
            text = str(c["shown"])
            c["answer"] = text if len(text) <= SHORT else "Yes"
            c["flag"] = name in FLAG_CLAUSES
            cells[name] = c
        head = {f["fact"]: f.get("shown") for f in r["facts"] if f["fact"] in LEGAL_HEAD}
        out_rows.append({"id": r["id"], "title": head.get("document_name") or r["id"], "parties": head.get("parties") or "",
                         "cells": cells})
    columns = sorted(order.items(), key=lambda kv: (-sum(kv[0] in x["cells"] for x in out_rows), kv[0]))
    return {"columns": columns, "rows": out_rows}


_MEASURE = r"(?:(?P<measure>\b(?:S?OR|RR|HR|IRR|MD|SMD|WMD|RD|ARR|RRR)\b|odds ratio|relative risk|hazard ratio|mean difference|prevalence)[^0-9;]{0,25}?)?"
_NUM = r"[-−]?\d+(?:\.\d+)?"
_ESTIMATE = re.compile(
    _MEASURE + r"(?<![\w.])(?P<est>" + _NUM + r")\s*(?:%|[a-zA-Zµ/]{1,6})?\s*[,;(\[]?\s*(?:\(|\[)?\s*95\s*%\s*(?:CI|confidence interval)"
    r"\s*[:=,]?\s*(?P<lo>" + _NUM + r")\s*%?\s*(?:[-–—]|to|,)\s*(?P<hi>" + _NUM + r")", re.I)
BIO_FIELDS = ("design", "sample_size", "primary_outcome", "key_result")


def estimates(text: str) -> list[dict[str, Any]]:
    """Effect estimates with 95 % confidence intervals stated in `text` ("RR: 1.56; 95 % CI: 1.16–2.08")."""
    out = []
    for m in _ESTIMATE.finditer(text or ""):
        est, lo, hi = (float(m.group(k).replace("−", "-")) for k in ("est", "lo", "hi"))
        if lo <= est <= hi and lo < hi:
            out.append({"measure": (m.group("measure") or "estimate").strip(), "estimate": est, "lo": lo, "hi": hi,
                        "text": m.group(0)})
    return out


def bio_effects(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per paper: design, sample size, outcome, key result (facts.csv cells) and the estimates with CIs it states."""
    out_rows = []
    for r in _ok(rows, "effects"):
        cells = {}
        for f in r["facts"]:
            if f["fact"] in BIO_FIELDS or f["fact"] == "title":
                cells.setdefault(f["fact"], _cell(f))
        found = []
        for name in ("key_result", "primary_outcome", "population"):
            for f in r["facts"]:
                if f["fact"] == name:
                    found += [{**e, "fact": name, "page": f.get("page")} for e in estimates(str(f.get("value") or ""))]
        out_rows.append({"id": r["id"], "title": (cells.get("title") or {}).get("shown") or r["id"], "cells": cells,
                         "estimates": found})
    return {"columns": BIO_FIELDS, "rows": out_rows}


# The batch views a spec's render hints may name -> the table built for the documents of those domains.
VIEWS = {"statements": finance_matrix, "clauses": legal_matrix, "effects": bio_effects}


def comparison(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {view: build(rows) for view, build in VIEWS.items()}
