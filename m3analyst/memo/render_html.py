"""HTML rendering: one self-contained styled page; finance memos embed a chart of the key series
(matplotlib, Agg backend, PNG as base64)."""

from __future__ import annotations

import base64
import io
from html import escape

from m3analyst.memo.model import Memo, MemoSection
from m3analyst.memo.render_md import _omitted, facts_rows

CSS = """
body{font:15px/1.5 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{border-bottom:1px solid #d8dde6;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#5b6476;font-style:italic} table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{border-bottom:1px solid #e4e8ef;padding:.3rem .5rem;text-align:left;vertical-align:top} td.num{text-align:right;white-space:nowrap}
blockquote{margin:.8rem 0;padding:.5rem .9rem;border-left:4px solid #3c6fd1;background:#f4f7fc}
.cite{color:#3c6fd1;font-weight:600;white-space:nowrap} .derived{color:#7a8294;font-size:.85em}
.unsupported{background:#fff1f0;text-decoration:line-through} .appendix{font-size:.9rem;color:#3a4254}
.chart{text-align:center;margin:1rem 0}
"""


def _cite(pages) -> str:
    return " ".join(f'<span class="cite">[p.{p}]</span>' for p in pages if p)


def _facts_table(memo: Memo) -> str:
    rows = facts_rows(memo)
    if not rows:
        return "<p><em>No facts could be extracted.</em></p>"
    if memo.domain == "finance":
        head = "<tr><th>Fact</th><th>Latest</th><th>Prior</th><th>Page</th></tr>"
        body = []
        for r in rows:
            f, p = r["fact"], r["prior"]
            tag = ' <span class="derived">(derived)</span>' if f.derived else ""
            cell = lambda x: "" if x is None else escape(f"{x.display()} ({x.period})" if x.period else x.display())  # noqa: E731
            body.append(f"<tr><td>{escape(f.title)}{tag}</td><td class=num>{cell(f)}</td><td class=num>{cell(p)}</td>"
                        f"<td>{_cite(f.pages)}</td></tr>")
        return f"<table>{head}{''.join(body)}</table>"
    body = [f"<tr><td>{escape(r['fact'].title)}</td><td>{escape(str(r['fact'].display()))}</td><td>{_cite(r['fact'].pages)}</td></tr>"
            for r in rows]
    return f"<table><tr><th>Fact</th><th>Value</th><th>Page</th></tr>{''.join(body)}</table>"


def chart_png(memo: Memo) -> bytes | None:
    """Bar chart of the spec's chart series across annual periods (None when fewer than 2 periods)."""
    from m3analyst.domains.finance import period_key

    series: dict[str, dict[str, float]] = {}
    for f in memo.facts:
        if f.name in memo.chart_series and isinstance(f.value, float) and f.period and not f.derived:
            series.setdefault(f.title, {})[f.period] = f.value / (f.scale or 1.0)
    periods = sorted({p for s in series.values() for p in s}, key=period_key)
    if len(periods) < 2 or not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = next((f.scale for f in memo.facts if f.name in memo.chart_series and f.scale), 1.0)
    unit = {1e6: "USD millions", 1e3: "USD thousands", 1e9: "USD billions"}.get(scale, "USD")
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(periods))]
        ax.bar(xs, [values.get(p, 0.0) for p in periods], width, label=name)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(periods))], periods, fontsize=8)
    ax.set_ylabel(unit)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _section(memo: Memo, s: MemoSection) -> str:
    parts = [f"<h2>{escape(s.heading)}</h2>"]
    if s.kind == "facts":
        parts.append(_facts_table(memo))
        if memo.domain == "finance":
            png = chart_png(memo)
            if png:
                b64 = base64.b64encode(png).decode("ascii")
                parts.append(f'<div class="chart"><img alt="key series by period" src="data:image/png;base64,{b64}"></div>')
        return "\n".join(parts)
    shown = s.shown_claims(memo.drop_unsupported)
    if shown:
        sents = [f'<span class="{"" if c.ok else "unsupported"}">{escape(c.text)}</span>' for c in shown]
        parts.append(f"<p>{' '.join(sents)}</p>")
    if s.findings:  # findings: the claim, then its quoted evidence
        items = "".join(f"<li>{'<b>' + escape(f.label) + '</b>: ' if f.label else ''}{escape(f.claim)}"
                        + "".join(f"<blockquote>\u201c{escape(c.quote)}\u201d {_cite([c.page])}</blockquote>"
                                  for c in f.evidence if c.quote and c.quote not in f.claim) + "</li>" for f in s.findings)
        return "\n".join(parts + [f"<ul class=findings>{items}</ul>"])
    for q in s.quotes:
        parts.append(f"<blockquote>\u201c{escape(q.text)}\u201d {_cite([q.page])}</blockquote>")
    if not shown and not s.quotes:
        parts.append("<p><em>Nothing in the document matched this heading.</em></p>")
    return "\n".join(parts)


def render_html(memo: Memo) -> str:
    d, g, b = memo.document, memo.grounding, memo.budget
    mode = (f"engine: {memo.engine['name']}" if memo.engine else "extractive: no model, passages chosen lexically")
    src = (d.get("source") or "").split("/")[-1]
    omitted = "; ".join(_omitted(o) for o in b["omitted"][:12])
    appendix = (
        f"<ul class=appendix><li>Grounding: {g['quoted_chars']:,} characters quoted; {g['generated_chars']:,} generated, "
        f"{g['verified_chars']:,} verified; {g['dropped_sentences']} dropped; {g['unsupported_claims']} unsupported; "
        f"grounding score {g['grounding_score']:.2f}.</li>"
        f"<li>Prompt: {b['prompt_tokens']:,} of {b['budget']:,} tokens; document {b['document_tokens_kept']:,} of "
        f"{'~' if b.get('total_estimated') else ''}{b['document_tokens_total']:,} tokens kept.</li>"
        + (f"<li>Left out for length: {escape(omitted)}.</li>" if omitted else "") + "</ul>"
    )
    body = "\n".join(_section(memo, s) for s in memo.sections)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(memo.title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(memo.title)}</h1>"
            f"<p class=meta>{escape(str(d.get('kind')))} · {d.get('pages')} pages · {escape(src)} · {escape(mode)}</p>"
            f"{body}<h2>Appendix</h2>{appendix}</body></html>\n")
