"""Batch summary: summary.csv, facts.csv (every memo's facts, one row each), summary.json, index.html (links every
memo) and the terminal table."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from typing import TYPE_CHECKING, Any

from jinja2 import Environment

from m3analyst.io import write_atomic

if TYPE_CHECKING:
    from m3analyst.batch.runner import BatchOptions, BatchReport

CSV_COLUMNS = (
    "id", "path", "domain", "status", "error", "ingest_s", "memo_s", "total_s", "cpu_s", "pages", "kind",
    "grounding_score", "memo", "memo_html", "memo_json", "memo_mode", "note", "key",
)  # fmt: skip

_INDEX = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>m3analyst batch: {{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4}
.ok{color:#1a7f37}.skipped{color:#555}.failed{color:#b42318}.pending{color:#9a6700}
.err{font-family:monospace;font-size:.8rem;color:#b42318}
</style></head><body>
<h1>Batch: {{ title }}</h1>
<p>{{ counts_text }} &middot; written {{ written }} &middot; every memo's facts: <a href="facts.csv">facts.csv</a></p>
<table>
<tr><th>id</th><th>domain</th><th>status</th><th>memo</th><th>grounding</th><th>pages</th><th>seconds</th>{% for c in extra_cols %}<th>{{ c }}</th>{% endfor %}<th>source / error</th></tr>
{% for r in rows %}
<tr>
<td>{{ r.id }}</td><td>{{ r.domain or "" }}</td><td class="{{ r.status }}">{{ r.status }}</td>
<td>{% for label, href in r.links %}<a href="{{ href }}">{{ label }}</a> {% endfor %}</td>
<td>{{ r.grounding }}</td><td>{{ r.pages or "" }}</td><td>{{ r.seconds }}</td>
{% for c in extra_cols %}<td>{{ r.extra.get(c, "") }}</td>{% endfor %}
<td>{{ r.path }}{% if r.error %}<div class="err">{{ r.error }}</div>{% endif %}{% if r.note %}<div>{{ r.note }}</div>{% endif %}</td>
</tr>
{% endfor %}
</table></body></html>
"""
)


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
    w.writerow([*CSV_COLUMNS, *extras])
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
            w.writerow([r["id"], r.get("domain") or "", *(_cell(f.get(c)) for c in FACT_COLUMNS)])
    return buf.getvalue()


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


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


def index_html(report: BatchReport, opts: BatchOptions) -> str:
    rows = [_index_row(r) for r in report.rows]
    counts_text = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    return _INDEX.render(
        title=opts.input, rows=rows, counts_text=counts_text, extra_cols=extra_columns(report.rows),
        written=time.strftime("%Y-%m-%d %H:%M"),
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
    """Write summary.csv, facts.csv, summary.json and index.html into OUT (each atomically)."""
    files = {
        "summary.csv": summary_csv(report.rows),
        "facts.csv": facts_csv(report.rows),
        "summary.json": summary_json(report, opts),
        "index.html": index_html(report, opts),
    }
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
