"""HTML rendering from the Jinja2 template templates/memo.html.j2 (overridable with `--template DIR`): one styled page
whose every citation is a link opening the cited page's image with the quote or fact highlighted; finance memos carry
charts of the key series and the margins (matplotlib PNGs, inline)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from m3analyst.domains.plugins import render_hints
from m3analyst.errors import UsageError
from m3analyst.memo.citeview import Citations, CiteView, PageImages
from m3analyst.memo.types import Memo, MemoSection
from m3analyst.memo.render_md import _omitted, facts_rows


def _fact_cites(cites: Citations, f, prior) -> list[CiteView]:
    """A fact row's citations: its statement row with the shown values marked, or a derived fact's input pages."""
    if f.derived or not f.page:
        return [cites.page(p) for p in f.pages]
    values = [(f.value, f.scale)] if isinstance(f.value, float) else []
    if prior is not None and prior.page == f.page and prior.source_text == f.source_text and isinstance(prior.value, float):
        values.append((prior.value, prior.scale))
    short = f.value if isinstance(f.value, str) and len(f.value) <= 60 and f.value != f.source_text else ""
    out = [cites.fact(f.page, f.source_text or "", values, (f.extra or {}).get("concept") or "", short)]
    if prior is not None and prior.page and not prior.derived and (prior.page, prior.source_text) != (f.page, f.source_text):
        out.append(cites.fact(prior.page, prior.source_text or "", [(prior.value, prior.scale)],
                              (prior.extra or {}).get("concept") or ""))
    return out


def facts_view(memo: Memo, cites: Citations) -> dict[str, Any]:
    rows = []
    for r in facts_rows(memo):
        f, p = r["fact"], r["prior"]
        shown = (lambda x: "" if x is None else (f"{x.display()} ({x.period})" if x.period else x.display()))  # noqa: E731
        value = f.display() if not isinstance(f.value, str) else f.value
        rows.append({"title": f.title, "derived": f.derived, "latest": shown(f), "prior": shown(p),
                     "value": value, "cites": _fact_cites(cites, f, p)})
    return {"periods": render_hints(memo.domain).facts_table == "periods", "rows": rows}


def charts(memo: Memo) -> list[dict[str, str]]:
    """The charts the domain's render hints name (finance: key series and margins by period), as inline PNGs."""
    names = render_hints(memo.domain).charts
    if not names:
        return []
    from m3analyst.memo.charts import CHARTS

    out = []
    for name in names:
        if name not in CHARTS:
            raise UsageError(f"domain {memo.domain!r}: unknown chart {name!r} in its render hints "
                             f"(known: {', '.join(CHARTS)})")
        alt, draw = CHARTS[name]
        png = draw(memo.facts, memo.chart_series)
        if png:
            out.append({"alt": alt, "src": "data:image/png;base64," + base64.b64encode(png).decode("ascii")})
    return out


def section_view(memo: Memo, s: MemoSection, cites: Citations) -> dict[str, Any]:
    view: dict[str, Any] = {"heading": s.heading, "kind": s.kind}
    if s.kind == "facts":
        return {**view, "facts": facts_view(memo, cites), "charts": charts(memo)}
    claims = [{"text": c.text, "ok": c.ok, "cites": [cites.page(p) for p in c.citations]}
              for c in s.shown_claims(memo.drop_unsupported)]
    quotes = [{"cite": cites.quote(q.page, q.text), "chosen_by": q.chosen_by} for q in s.quotes]
    findings = [finding_view(memo, f, cites) for f in getattr(s, "findings", None) or []]
    if findings:  # a findings section's quotes are its findings' evidence, shown under each finding
        quotes = []
    return {**view, "claims": claims, "quotes": quotes, "findings": findings}


_MARK = re.compile(r"\s*\[p\.(\d+)\]")


def _mark_cite(memo: Memo, finding, page: int, cites: Citations) -> CiteView:
    """What a finding's [p.N] points at: its evidence quote on that page, else the statement row of a figure's fact
    printed there (values marked), else the bare page."""
    for c in finding.evidence:
        if c.page == page and c.quote:
            return cites.citation(c)
    wanted = {(g.fact, g.period) for g in finding.figures if g.fact and not g.derived}
    rows = [f for f in memo.facts if (f.name, f.period) in wanted and f.page == page and not f.derived and f.source_text]
    if rows:
        row = [f for f in rows if f.source_text == rows[0].source_text]
        return cites.fact(page, rows[0].source_text, [(f.value, f.scale) for f in row if isinstance(f.value, float)],
                          (rows[0].extra or {}).get("concept") or "")
    return cites.page(page)


def finding_view(memo: Memo, finding, cites: Citations) -> dict[str, Any]:
    """A finding as text runs and citation links: each [p.N] in its claim becomes a link; evidence on other pages
    follows the claim."""
    from m3analyst.memo.textfix import repair

    parts: list[dict[str, Any]] = []
    pos, marked = 0, set()
    claim = repair(finding.claim, cites.vocab)
    for m in _MARK.finditer(claim):
        parts.append({"text": claim[pos : m.start()]})
        parts.append({"cite": _mark_cite(memo, finding, int(m.group(1)), cites)})
        marked.add(int(m.group(1)))
        pos = m.end()
    parts.append({"text": claim[pos:]})
    extra = [cites.citation(c) for c in finding.evidence if c.page not in marked and not c.quote]
    evidence = [cites.citation(c) for c in finding.evidence if c.quote and c.quote not in finding.claim]
    return {"parts": parts, "label": finding.label, "topic": finding.topic, "cites": extra, "evidence": evidence}


def appendix_view(memo: Memo) -> dict[str, Any]:
    g, b = memo.grounding, memo.budget
    omitted = "; ".join(_omitted(o) for o in b["omitted"][:12])
    return {"g": g, "b": b, "omitted": omitted, "timings": memo.timings,
            "time_budget": (memo.engine or {}).get("time_budget")}


def memo_context(memo: Memo, cites: Citations, images: PageImages) -> dict[str, Any]:
    d = memo.document
    sections = [section_view(memo, s, cites) for s in memo.sections]
    pages = []
    for p in cites.pages:
        w, h = images.size(p)
        pages.append({"number": p, "src": images.src(p), "width": w, "height": h})
    return {
        "memo": memo, "title": memo.title, "kind": d.get("kind"), "n_pages": d.get("pages"),
        "source": (d.get("source") or "").split("/")[-1],
        "mode": f"engine: {memo.engine['name']}" if memo.engine else "extractive: no model, passages chosen lexically",
        "sections": sections, "appendix": appendix_view(memo), "cites": cites.all(), "pages": pages,
        "has_images": any(p["src"] for p in pages),
        "html_source": bool(re.search(r"\.x?html?$", d.get("source") or "", re.I)),
    }


def citations_for(memo: Memo, doc=None, images: PageImages | None = None):
    """The memo's citation builder over its source: the PDF's pages, or (written beside the memo) an EDGAR filing's
    marked local copy; page-only citations when the source is gone."""
    from m3analyst.memo.filing_copy import FilingCopy
    from m3analyst.memo.textfix import Vocabulary

    source = images.source if images is not None else None
    filing = FilingCopy.for_memo(memo.document, images.folder, images.link_prefix) if images is not None else None
    vocab = Vocabulary(doc.text) if doc is not None else (source.vocabulary() if source else Vocabulary())
    return Citations(source, vocab, filing)


def render_html(memo: Memo, doc=None, out_file: Path | None = None, template_dir: str | Path | None = None) -> str:
    """The memo as one HTML page. With `out_file`, cited pages (or an HTML filing's marked copy) go to
    `<stem>_pages/` beside it; else page images are inlined (a self-contained page)."""
    from m3analyst.memo.pages import PageSource
    from m3analyst.memo.templating import render

    source = PageSource.for_memo(memo.document)
    images = PageImages.beside(source, out_file) if out_file is not None else PageImages(source)
    cites = citations_for(memo, doc, images)
    try:
        html = render("memo.html.j2", template_dir, **memo_context(memo, cites, images))
        if cites.filing is not None:
            cites.filing.write()
        return html
    finally:
        if source is not None:
            source.close()
