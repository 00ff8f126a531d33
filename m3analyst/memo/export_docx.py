"""The memo as a Word document (python-docx, the `[office]` extra): headings, the facts table with each fact's page,
findings, sentences and quoted passages each followed by its citation, and a closing list of every citation with its
page and quoted words (the reader's key to checking them)."""

from __future__ import annotations

import io
import re

from m3analyst.domains.plugins import render_hints
from m3analyst.memo.export_xlsx import require
from m3analyst.memo.types import Memo
from m3analyst.memo.render_md import facts_rows


def _italic(doc, text: str) -> None:
    doc.add_paragraph().add_run(text).italic = True


def _facts_table(doc, memo: Memo) -> None:
    rows = facts_rows(memo)
    if not rows:
        _italic(doc, "No facts could be extracted.")
        return
    periods = render_hints(memo.domain).facts_table == "periods"
    head = ["Fact", "Latest", "Prior", "Page"] if periods else ["Fact", "Value", "Page"]
    table = doc.add_table(rows=1, cols=len(head))
    table.style = "Light List Accent 1"
    for cell, text in zip(table.rows[0].cells, head):
        cell.text = text
    for r in rows:
        f, p = r["fact"], r["prior"]
        shown = (lambda x: "" if x is None else (f"{x.display()} ({x.period})" if x.period else x.display()))  # noqa: E731
        pages = " ".join(f"[p.{n}]" for n in f.pages)
        title = f.title + (" (derived)" if f.derived else "")
        values = [title, shown(f), shown(p), pages] if periods else [title, f.display(), pages]
        for cell, text in zip(table.add_row().cells, values):
            cell.text = text


def _cited(doc, text: str, pages: list[int], style: str | None = None, sources: list | None = None, quote: str = ""):
    para = doc.add_paragraph(style=style)
    para.add_run(text + " ")
    for p in pages:
        run = para.add_run(f"[p.{p}]")
        run.bold = True
        if sources is not None:
            sources.append((p, quote or text))
    return para


def _section(doc, memo: Memo, s, vocab, sources: list) -> None:
    from m3analyst.memo.textfix import repair

    doc.add_heading(s.heading, level=1)
    if s.kind == "facts":
        _facts_table(doc, memo)
        return
    for f in getattr(s, "findings", None) or []:
        label = f"{f.label}: " if f.label else ""
        inline = [int(p) for p in re.findall(r"\[p\.(\d+)\]", f.claim)]
        quote = " … ".join(c.quote for c in f.evidence if c.quote) or repair(f.claim, vocab)
        for p in inline:
            sources.append((p, quote))
        _cited(doc, label + repair(f.claim, vocab), [p for p in f.pages if p not in inline], "List Bullet", sources, quote)
    for c in s.shown_claims(memo.drop_unsupported):
        _cited(doc, c.text + ("" if c.ok else " [unsupported]"), c.citations, None, sources)
    for q in s.quotes:
        text = repair(q.text, vocab)
        _cited(doc, f"\u201c{text}\u201d", [q.page], "Quote", sources, text)
    if not s.quotes and not s.claims and not getattr(s, "findings", None):
        _italic(doc, "Nothing in the document matched this heading.")


def memo_docx(memo: Memo, vocab=None) -> bytes:
    docx = require("docx", "docx")
    from m3analyst.memo.textfix import Vocabulary

    vocab = vocab or Vocabulary()
    d = memo.document
    doc = docx.Document()
    doc.add_heading(memo.title, level=0)
    mode = f"engine: {memo.engine['name']}" if memo.engine else "extractive: no model, passages chosen lexically"
    _italic(doc, f"{d.get('kind')} · {d.get('pages')} pages · {(d.get('source') or '').split('/')[-1]} · {mode}")
    sources: list[tuple[int, str]] = []
    for s in memo.sections:
        _section(doc, memo, s, vocab, sources)
    doc.add_heading("Citations", level=1)
    doc.add_paragraph(f"Every [p.N] above is page N of {(d.get('source') or 'the source').split('/')[-1]} "
                      f"(physical page, 1 = the file's first page); the words each one cites:")
    for page, text in sources:
        doc.add_paragraph(f"p.{page}: {text[:400]}", style="List Number")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
