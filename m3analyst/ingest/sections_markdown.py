"""Markdown headings ("# Title", "## Methods") as sections: the fallback outline for text documents."""

from __future__ import annotations

import re

from m3analyst.ingest.model import Document, Section
from m3analyst.ingest.sections_contract import close_spans

_ATX = re.compile(r"(?m)^(?P<hashes>#{1,6})[ \t]+(?P<title>[^\n#][^\n]*?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"(?m)^(?P<title>[^\n]{1,120})\n(?P<rule>=+|-+)[ \t]*$")


def has_markdown_headings(text: str) -> bool:
    return bool(_ATX.search(text)) or bool(_SETEXT.search(text))


def detect_markdown_sections(doc: Document) -> list[Section]:
    """One section per ATX ('## x') or setext ('x' over '===') heading; kind 'heading', level = depth."""
    found = []
    for m in _ATX.finditer(doc.text):
        found.append((m.start(), len(m.group("hashes")), m.group("title").strip()))
    for m in _SETEXT.finditer(doc.text):
        if m.group("title").strip() and not m.group("title").lstrip().startswith(("-", "*", "|")):
            found.append((m.start(), 1 if m.group("rule")[0] == "=" else 2, m.group("title").strip()))
    sections = [
        Section(title[:160], "heading", level, start, start, doc.page_at(start), doc.page_at(start))
        for start, level, title in found
    ]
    return close_spans(doc, sections)
