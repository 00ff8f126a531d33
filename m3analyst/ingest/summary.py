"""Rich summary of a Document for `m3analyst ingest`, and a compact JSON-able dict of the same."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group
from rich.table import Table as RichTable

from m3analyst.ingest.model import Document

MAX_OUTLINE_ROWS = 60  # deeper levels / longer outlines are summarised, not listed
MAX_LEVEL = 2


def _pages(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


def summary_dict(doc: Document) -> dict[str, Any]:
    """kind, title, who, dates, pages, outline (levels <= 2), tables found, XBRL count, self-check, warnings."""
    m = doc.metadata
    return {
        "file": m.source,
        "kind": m.kind,
        "title": m.title,
        "company": m.company,
        "parties": m.parties,
        "authors": m.authors,
        "dates": m.dates,
        "pages": doc.n_pages,
        "outline": [
            {"title": s.title, "kind": s.kind, "level": s.level, "pages": _pages(s.page_start, s.page_end)}
            for s in doc.sections
            if s.level <= MAX_LEVEL
        ],
        "tables": [
            {"id": t.id, "page": t.page, "kind": t.kind, "title": t.title, "periods": t.periods, "scale": t.scale, "rows": len(t.df)}
            for t in doc.tables
        ],
        "xbrl_facts": 0 if doc.xbrl is None else len(doc.xbrl),
        "missing": doc.outline.missing,
        "problems": doc.outline.problems,
        "warnings": doc.warnings,
    }


def _head(doc: Document) -> RichTable:
    m = doc.metadata
    head = RichTable.grid(padding=(0, 2))
    head.add_row("file", str(m.source))
    head.add_row("kind", m.kind)
    if m.title:
        head.add_row("title", m.title)
    who = m.company or " / ".join(m.parties) or ", ".join(m.authors[:5])
    if who:
        head.add_row("who", who)
    if m.dates:
        head.add_row("dates", ", ".join(f"{k}: {v}" for k, v in m.dates.items()))
    labels = [p.label for p in doc.pages if p.label]
    head.add_row("pages", f"{doc.n_pages}" + (f" ({len(labels)} with a printed page number)" if labels else ""))
    stm = [t for t in doc.tables if t.kind]
    head.add_row("tables", f"{len(doc.tables)}" + (f" ({len(stm)} financial statements)" if stm else ""))
    head.add_row("XBRL facts", str(0 if doc.xbrl is None else len(doc.xbrl)))
    return head


def _outline(doc: Document) -> RichTable:
    outline = RichTable(title="Outline", show_lines=False, title_justify="left")
    for col in ("section", "kind", "pages"):
        outline.add_column(col)
    shown = [s for s in doc.sections if s.level <= MAX_LEVEL]
    for s in shown[:MAX_OUTLINE_ROWS]:
        outline.add_row("  " * (s.level - 1) + s.title[:80], s.kind, _pages(s.page_start, s.page_end))
    hidden = len(doc.sections) - min(len(shown), MAX_OUTLINE_ROWS)
    if hidden > 0:
        outline.add_row(f"… {hidden} more (deeper levels or beyond row {MAX_OUTLINE_ROWS}; see --json)", "", "")
    return outline


def _statements(doc: Document) -> RichTable | None:
    stm = [t for t in doc.tables if t.kind]
    if not stm:
        return None
    tab = RichTable(title="Financial statements", title_justify="left")
    for col in ("kind", "page", "periods", "scale", "rows", "title"):
        tab.add_column(col)
    for t in stm:
        tab.add_row(t.kind or "", str(t.page), ", ".join(t.periods), f"{t.scale:g}", str(len(t.df)), (t.title or "")[:50])
    return tab


def render_summary(doc: Document, as_text: bool = False):
    parts: list[Any] = [_head(doc), _outline(doc)]
    stm = _statements(doc)
    if stm is not None:
        parts.append(stm)
    notes = [f"missing: {k}" for k in doc.outline.missing] + doc.outline.problems + doc.warnings
    if notes:
        parts.append("[yellow]warnings:[/]\n" + "\n".join(f"  - {n}" for n in notes))
    group = Group(*parts)
    if not as_text:
        return group
    c = Console(width=120, record=True, file=io.StringIO())
    c.print(group)
    return c.export_text()
