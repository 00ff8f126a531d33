"""Batch summary: summary.csv, facts.csv (every memo's facts, one row each), summary.json, index.html (a dashboard
comparing the documents, and linking every memo), comparison.xlsx and the terminal table."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from typing import Any

from m3analyst.batch.job import BatchOptions, BatchReport
from m3analyst.io import write_atomic

CSV_COLUMNS = (
    "id", "path", "domain", "status", "error", "ingest_s", "memo_s", "total_s", "cpu_s", "pages", "kind",
    "grounding_score", "memo", "memo_html", "memo_json", "memo_mode", "note", "key",
)  # fmt: skip

def extra_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Manifest columns carried into the summary, in first-seen order."""
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r.get("extra") or {}))
    return [c for c in cols if c not in CSV_COLUMNS]


def summary_csv(rows: list[dict[str, Any]]) -> str:
    extras = extra_columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CSV_COLUMNS, *map(_cell, extras)])
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in CSV_COLUMNS] + [_cell((r.get("extra") or {}).get(c)) for c in extras])
    return buf.getvalue()


def facts_csv(rows: list[dict[str, Any]]) -> str:
    """Every finished document's facts, one row each: id, domain, then FACT_COLUMNS (values as extracted, e.g. USD
    not millions; `shown` as the memo prints it), so filings can be compared in a spreadsheet."""
    from m3analyst.batch.work import FACT_COLUMNS

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "domain", *FACT_COLUMNS])
    for r in rows:
        for f in r.get("facts") or []:
            w.writerow([_cell(r["id"]), _cell(r.get("domain")), *(_cell(f.get(c)) for c in FACT_COLUMNS)])
    return buf.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _cell(v: Any) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading ' (OWASP CSV
    injection advice); plain numbers such as -1.5 stay numbers."""
    s = "" if v is None else str(v)
    if s.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(s):
        return "'" + s
    return s


def summary_json(report: BatchReport, opts: BatchOptions) -> str:
    return json.dumps(
        {
            "input": opts.input,
            "out": str(opts.out),
            "backend": report.backend,
            "workers": report.workers,
            "domain": opts.domain,
            "formats": list(opts.formats),
            "settings": opts.settings.model_dump(mode="json"),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "interrupted": report.interrupted,
            "wall_s": round(report.wall_s, 3),
            "processed": report.processed,
            "docs_per_min": None if report.docs_per_min is None else round(report.docs_per_min, 3),
            "counts": report.counts,
            "ignored": [str(p) for p in report.ignored],
            "rows": [{k: v for k, v in r.items() if k != "facts"} for r in report.rows],
        },
        indent=1,
        ensure_ascii=False,
        default=str,
    )


def index_html(report: BatchReport, opts: BatchOptions, xlsx: bool = False) -> str:
    """The dashboard (templates/dashboard.html.j2): comparison tables (batch/dashboard.py) and the documents."""
    from m3analyst.batch.dashboard import dashboard_context
    from m3analyst.memo.templating import render

    rows = [_index_row(r) for r in report.rows]
    counts_text = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    return render(
        "dashboard.html.j2", opts.template_dir, title=opts.input, rows=rows, counts_text=counts_text,
        extra_cols=extra_columns(report.rows), written=time.strftime("%Y-%m-%d %H:%M"), xlsx=xlsx,
        **dashboard_context(report.rows),
    )  # fmt: skip


def _index_row(r: dict[str, Any]) -> dict[str, Any]:
    links = [(label, r[col]) for label, col in (("html", "memo_html"), ("md", "memo"), ("json", "memo_json")) if r.get(col)]
    return {
        **r,
        "links": links,
        "grounding": "" if r.get("grounding_score") is None else f"{r['grounding_score']:.2f}",
        "seconds": "" if r.get("total_s") is None else f"{r['total_s']:.1f}",
    }


def write_summary(report: BatchReport, opts: BatchOptions) -> dict[str, str]:
    """Write summary.csv, facts.csv, summary.json, index.html (the dashboard) and comparison.xlsx (its tables, with
    the [office] extra) into OUT (each atomically)."""
    from m3analyst.batch.dashboard import comparison_xlsx

    xlsx = comparison_xlsx(report.rows)
    files: dict[str, str | bytes] = {
        "summary.csv": summary_csv(report.rows),
        "facts.csv": facts_csv(report.rows),
        "summary.json": summary_json(report, opts),
        "index.html": index_html(report, opts, xlsx=xlsx is not None),
    }
    if xlsx is not None:
        files["comparison.xlsx"] = xlsx
    return {name: str(write_atomic(report.out / name, text)) for name, text in files.items()}


def summary_table(report: BatchReport, max_rows: int = 40):
    """A Rich table for the terminal: failures first, then the rest, up to `max_rows` rows."""
    from rich.markup import escape
    from rich.table import Table

    order = {"failed": 0, "pending": 1, "ok": 2, "skipped": 3}
    rows = sorted(report.rows, key=lambda r: order.get(r["status"], 9))
    t = Table(title=f"batch → {os.path.relpath(report.out)}", show_lines=False)
    for col in ("id", "domain", "status", "grounding", "s", "memo / error"):
        t.add_column(col, overflow="fold")
    style = {"ok": "green", "failed": "red", "skipped": "dim", "pending": "yellow"}
    for r in rows[:max_rows]:
        t.add_row(
            escape(r["id"]),
            r.get("domain") or "",
            f"[{style.get(r['status'], '')}]{r['status']}[/]",
            "" if r.get("grounding_score") is None else f"{r['grounding_score']:.2f}",
            "" if r.get("total_s") is None else f"{r['total_s']:.1f}",
            escape(r.get("error") or r.get("memo_html") or r.get("memo") or ""),
        )
    if len(rows) > max_rows:
        t.caption = f"{len(rows) - max_rows} more rows in summary.csv"
    return t
