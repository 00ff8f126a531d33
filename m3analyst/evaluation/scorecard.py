"""Report renderers: a Rich results table and a self-contained HTML page with matplotlib plots
(PNG, base64-inlined). Both read the report dict of `runner.run_eval` (and optionally the comparison
of `runner.compare_reports`)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from rich.table import Table

from m3analyst.evaluation.label_scores import majority_note
from m3analyst.evaluation.scorers import METRICS


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _cmp_rows(comparison: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {r["metric"]: r for r in (comparison or {}).get("metrics", [])}


def results_table(report: dict[str, Any], comparison: dict[str, Any] | None = None) -> Table:
    """Metric | value | n (num/den) [| old | delta]; regressions in red, FAILED where past --fail-on."""
    cmp = _cmp_rows(comparison)
    t = Table(title=header_line(report), title_justify="left", min_width=60)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("n", justify="right")
    if cmp:
        t.add_column("old", justify="right")
        t.add_column("Δ", justify="right")
    for name, value in report["metrics"].items():
        c = report["counts"].get(name)
        n = f"{c['num']:g}/{c['den']:g}" if c else ""
        row = [name, _fmt(value), n]
        if cmp:
            r = cmp.get(name, {})
            delta = r.get("delta")
            style = "red" if r.get("regressed") else "green" if delta else ""
            mark = " FAILED" if r.get("failed") else ""
            row += [_fmt(r.get("old")), f"[{style}]{'—' if delta is None else f'{delta:+.3f}'}{mark}[/]" if style else
                    ("—" if delta is None else f"{delta:+.3f}")]
        t.add_row(*row)
    t.caption = footer_line(report)
    return t


def footer_line(report: dict[str, Any]) -> str:
    tm = report["timings"]
    line = (f"wall {tm['wall_s']} s, {tm['mean_item_s']} s/item, {report['n_errors']} item errors · "
            f"commit {(report['git'].get('commit') or '?')[:10]}") + majority_note(report)
    e = report.get("engine_totals")
    if e:
        line += (f" · memo engine: {e['prompt_tokens']:.0f} prompt tokens, prefill {e['prefill_s']:.1f} s, "
                 f"{e['new_tokens']:.0f} new tokens at {e['decode_tok_s']} tok/s")
    return line


def header_line(report: dict[str, Any]) -> str:
    return (f"eval {report['domain']} · set {report['set']} · model {report['model']} · "
            f"attention {report['attention']} · {report['n_items']} items")


def category_table(report: dict[str, Any]) -> Table | None:
    """CUAD per-category precision/recall/F1 (None when the run has no clause labels)."""
    if not report.get("per_category"):
        return None
    t = Table(title="per category: CUAD clause detection, or the label answered (label questions)", title_justify="left")
    for col in ("category", "tp", "fp", "fn", "P", "R", "F1"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for cat, d in report["per_category"].items():
        t.add_row(cat, str(d["tp"]), str(d["fp"]), str(d["fn"]), _fmt(d["precision"]), _fmt(d["recall"]), _fmt(d["f1"]))
    return t


def type_table(report: dict[str, Any]) -> Table | None:
    """QA accuracy per question type (evaluation/by_type.py); None when no type is known."""
    rows = report.get("by_question_type") or {}
    if not rows:
        return None
    t = Table(title="qa accuracy per question type", title_justify="left")
    for col in ("type", "value", "n"):
        t.add_column(col, justify="left" if col == "type" else "right")
    for kind, d in rows.items():
        t.add_row(kind, _fmt(d["value"]), f"{d['num']}/{d['den']}")
    return t


# ---------------------------------------------------------------------------------------------
# HTML


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(report: dict[str, Any], comparison: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(caption, base64 PNG) pairs: metrics (vs old), time per item, CUAD F1 per category."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = []
    names = [m for m, v in report["metrics"].items() if v is not None]
    if names:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1))
        y = range(len(names))
        ax.barh([i + 0.2 for i in y], [report["metrics"][n] for n in names], height=0.4, label="this run")
        cmp = _cmp_rows(comparison)
        if cmp:
            ax.barh([i - 0.2 for i in y], [cmp.get(n, {}).get("old") or 0 for n in names], height=0.4, label="old")
            ax.legend(loc="lower right")
        ax.set_yticks(list(y), names)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("score (unsupported_claim_rate: lower is better)")
        out.append(("Aggregate metrics", _png(fig)))
    times = [(r["id"], r["timings"].get("total_s", 0.0)) for r in report["items"]]
    if times:
        fig, ax = plt.subplots(figsize=(7, 2.5))
        ax.bar(range(len(times)), [t for _, t in times])
        ax.set_xlabel("item")
        ax.set_ylabel("seconds")
        out.append(("Time per item (load + memo + questions)", _png(fig)))
    cats = report.get("per_category") or {}
    if cats:
        names = list(cats)
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1))
        ax.barh(range(len(names)), [cats[c]["f1"] or 0 for c in names])
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("F1")
        out.append(("Clause detection F1 per CUAD category", _png(fig)))
    return out


_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}
.err{color:#b00}code{background:#f4f4f4;padding:1px 4px}"""


def _metrics_html(report: dict[str, Any], comparison: dict[str, Any] | None) -> str:
    cmp = _cmp_rows(comparison)
    head = "<tr><th>metric</th><th>value</th><th>n</th>" + ("<th>old</th><th>Δ</th>" if cmp else "") + "<th>meaning</th></tr>"
    rows = []
    for name, v in report["metrics"].items():
        c = report["counts"].get(name)
        cells = [html.escape(name), _fmt(v), f"{c['num']:g}/{c['den']:g}" if c else ""]
        if cmp:
            r = cmp.get(name, {})
            d = r.get("delta")
            cls = "bad" if r.get("regressed") else "ok"
            cells += [_fmt(r.get("old")), f"<span class={cls}>{'—' if d is None else f'{d:+.3f}'}"
                      f"{' FAILED' if r.get('failed') else ''}</span>"]
        meaning = METRICS[name].description if name in METRICS else ""
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + f"<td>{html.escape(meaning)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _items_html(report: dict[str, Any], regressed: set[str]) -> str:
    names = [m for m in METRICS if any(m in r["metrics"] for r in report["items"])]
    head = "<tr><th>item</th>" + "".join(f"<th>{n}</th>" for n in names) + "<th>s</th><th>error</th></tr>"
    rows = []
    for r in report["items"]:
        cells = [f"<td{' class=bad' if r['id'] in regressed else ''}>{html.escape(r['id'])}</td>"]
        for n in names:
            m = r["metrics"].get(n)
            cells.append("<td></td>" if not m else f"<td>{m['num']:g}/{m['den']:g}</td>")
        cells.append(f"<td>{r['timings'].get('total_s', 0):.1f}</td>")
        cells.append(f"<td class=err>{html.escape(r['error'] or '')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(report: dict[str, Any], comparison: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page: settings summary, metrics (vs old), plots, per-item table."""
    g = report.get("git") or {}
    regressed = {r["id"] for r in (comparison or {}).get("item_regressions", [])}
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>m3analyst eval {html.escape(report['domain'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>m3analyst eval: {html.escape(report['domain'])} / {html.escape(str(report['set']))}</h1>",
        f"<p>model <code>{html.escape(str(report['model']))}</code> · attention <code>{html.escape(str(report['attention']))}</code>"
        f" · {report['n_items']} items ({report['n_errors']} errors) · started {html.escape(report['started_at'])}"
        f" · commit <code>{html.escape(str(g.get('commit') or '?')[:12])}</code>{' (dirty)' if g.get('dirty') else ''}"
        f"</p><p>{html.escape(footer_line(report))}</p>",
        "<h2>Metrics</h2>", _metrics_html(report, comparison),
    ]
    if comparison:
        o = comparison["old"]
        parts.append(f"<p>compared with a run of model <code>{html.escape(str(o.get('model')))}</code>, attention "
                     f"<code>{html.escape(str(o.get('attention')))}</code>, started {html.escape(str(o.get('started_at')))}; "
                     f"{len(comparison['item_regressions'])} item-level regressions"
                     f"{'; FAILED: ' + ', '.join(comparison['failed']) if comparison['failed'] else ''}.</p>")
    for caption, png in _plots(report, comparison):
        parts.append(f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>")
    parts += ["<h2>Items</h2>", _items_html(report, regressed), "</body></html>"]
    return "\n".join(parts)
