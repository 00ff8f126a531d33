"""Rich summary of a Document for `m3analyst ingest`."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table as RichTable

from m3analyst.ingest.model import Document


def render_summary(doc: Document, as_text: bool = False):
    m = doc.metadata
    head = RichTable.grid(padding=(0, 2))
    head.add_row("file", str(m.source))
    head.add_row("kind", m.kind)
    if m.title:
        head.add_row("title", m.title)
    who = m.company or ", ".join(m.parties) or ", ".join(m.authors[:5])
    if who:
        head.add_row("who", who)
    head.add_row("pages", str(doc.n_pages))
    head.add_row("tables", str(len(doc.tables)))
    head.add_row("XBRL facts", str(0 if doc.xbrl is None else len(doc.xbrl)))
    outline = RichTable(title="Outline", show_lines=False)
    for col in ("section", "kind", "pages"):
        outline.add_column(col)
    for s in doc.sections:
        pages = f"{s.page_start}" if s.page_start == s.page_end else f"{s.page_start}-{s.page_end}"
        outline.add_row("  " * (s.level - 1) + s.title[:70], s.kind, pages)
    parts = [head, outline]
    notes = [f"missing: {k}" for k in doc.outline.missing] + doc.outline.problems + doc.warnings
    if notes:
        parts.append("[yellow]warnings:[/]\n" + "\n".join(f"  - {n}" for n in notes))
    group = Group(*parts)
    if not as_text:
        return group
    c = Console(width=120, record=True, file=open("/dev/null", "w"))
    c.print(group)
    return c.export_text()
