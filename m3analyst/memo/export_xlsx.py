"""The memo as an Excel workbook (openpyxl, the `[office]` extra): one sheet per financial statement (facts as rows,
periods as columns, each value's page beside it), then every fact, the findings and the quoted passages.

Values are written as extracted (USD, not millions) with a number format that shows the document's scale, so a
cell read back equals the fact's value exactly.
"""

from __future__ import annotations

import io
from typing import Any, Iterable

from m3analyst.domains.facts import Fact
from m3analyst.memo.types import Memo

STATEMENT_SHEETS = {"income_statement": "Income statement", "balance_sheet": "Balance sheet", "cash_flow": "Cash flow"}
FACT_COLUMNS = ("fact", "label", "period", "value", "unit", "scale", "shown", "page", "pages", "derived", "statement", "source_text")
_SCALE_FORMAT = {1e9: '#,##0.00,,,"B"', 1e6: '#,##0,,"M"', 1e3: '#,##0,"K"'}


def require(module: str, fmt: str):
    """Import an optional output library, or fail with one line naming the extra to install."""
    import importlib

    from m3analyst.errors import UsageError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"--format {fmt} needs the '{module}' package: pip install 'm3analyst[office]'") from None
    except OSError as e:  # WeasyPrint imports but cannot load the system's Pango / HarfBuzz libraries
        raise UsageError(f"--format {fmt}: '{module}' cannot load its system libraries ({e}); install Pango "
                         "(Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0)") from None


def number_format(f: Fact) -> str:
    if f.unit == "USD":
        return _SCALE_FORMAT.get(f.scale or 1.0, "#,##0.00")
    if f.unit == "%":
        return '0.0"%"'
    return "0.00" if f.unit in ("ratio", "USD/share", "days") else "General"


def _statement_of(f: Fact) -> str | None:
    if f.derived:
        return "derived"
    return (f.extra or {}).get("statement")


def statement_tables(facts: Iterable[Fact]) -> dict[str, dict[str, Any]]:
    """{statement: {"periods": [...], "rows": {fact name: {"title", "cells": {period: Fact}}}}}, document order."""
    from m3analyst.text import period_key

    out: dict[str, dict[str, Any]] = {}
    for f in facts:
        st = _statement_of(f)
        if st is None or not isinstance(f.value, float) or not f.period:
            continue
        t = out.setdefault(st, {"periods": set(), "rows": {}})
        t["periods"].add(f.period)
        t["rows"].setdefault(f.name, {"title": f.title, "cells": {}})["cells"][f.period] = f
    for t in out.values():
        t["periods"] = sorted(t["periods"], key=period_key, reverse=True)
    return out


def _statement_sheet(wb, name: str, table: dict[str, Any]) -> None:
    ws = wb.create_sheet(name[:31])
    header = ["Fact"]
    for p in table["periods"]:
        header += [p, f"{p} page"]
    ws.append(header)
    for row in table["rows"].values():
        line: list[Any] = [row["title"]]
        for p in table["periods"]:
            f = row["cells"].get(p)
            line += [None, None] if f is None else [f.value, ", ".join(map(str, f.pages)) if f.derived else f.page]
        ws.append(line)
        for j, p in enumerate(table["periods"]):
            f = row["cells"].get(p)
            if f is not None:
                ws.cell(ws.max_row, 2 + 2 * j).number_format = number_format(f)
    _style(ws, [40] + [16, 8] * len(table["periods"]))


def _style(ws, widths: list[int]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "B2"
    for i, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(i)].width = w


def _facts_sheet(wb, memo: Memo) -> None:
    ws = wb.create_sheet("Facts")
    ws.append(list(FACT_COLUMNS))
    for f in memo.facts:
        ws.append([f.name, f.title, f.period, f.value, f.unit, f.scale, f.display(), f.page,
                   ", ".join(map(str, f.pages)), f.derived, _statement_of(f), f.source_text])
        if isinstance(f.value, float):
            ws.cell(ws.max_row, 4).number_format = number_format(f)
    _style(ws, [22, 30, 12, 18, 9, 10, 14, 6, 10, 8, 16, 60])


def _findings_sheet(wb, memo: Memo, vocab) -> None:
    import re

    from m3analyst.memo.textfix import repair

    ws = wb.create_sheet("Findings")
    ws.append(["section", "topic", "label", "claim", "pages", "figures", "evidence", "source"])
    for s in memo.sections:
        for f in getattr(s, "findings", None) or []:
            pages = sorted(set(f.pages) | {int(p) for p in re.findall(r"\[p\.(\d+)\]", f.claim)})
            figures = "; ".join(f"{g.fact or '?'} {g.period or ''} = {g.text}".replace("  ", " ") for g in f.figures)
            ws.append([s.heading, f.topic, f.label, repair(f.claim, vocab), ", ".join(map(str, pages)), figures,
                       " | ".join(f"[p.{c.page}] {repair(c.quote, vocab)}" for c in f.evidence), f.source])
    _style(ws, [24, 12, 14, 70, 10, 50, 70, 8])


def _quotes_sheet(wb, memo: Memo, vocab) -> None:
    from m3analyst.memo.textfix import repair

    ws = wb.create_sheet("Quotes")
    ws.append(["section", "page", "quote", "chosen by"])
    for s in memo.sections:
        for q in s.quotes:
            ws.append([s.heading, q.page, repair(q.text, vocab), q.chosen_by])
    _style(ws, [24, 6, 100, 18])


def memo_xlsx(memo: Memo, vocab=None) -> bytes:
    openpyxl = require("openpyxl", "xlsx")
    from m3analyst.memo.textfix import Vocabulary

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    tables = statement_tables(memo.facts)
    for key, title in {**STATEMENT_SHEETS, "derived": "Derived"}.items():
        if key in tables:
            _statement_sheet(wb, title, tables[key])
    _facts_sheet(wb, memo)
    vocab = vocab or Vocabulary()
    _findings_sheet(wb, memo, vocab)
    _quotes_sheet(wb, memo, vocab)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
