"""EDGAR HTML / inline-XBRL loader.

One pass over the parsed tree (lxml.html) produces:
- the visible text, blocks on their own lines, table cells separated by spaces; hidden parts
  (`display:none`, `<ix:header>`, script/style/head) skipped;
- page breaks where the filing marks them (`page-break-before/after` or `break-before/after:
  page` styles, `<hr>` when the filing has no page-break styles); running headers/footers and
  the printed page numbers are then handled by pagelayout, as for PDFs;
- every `<table>` with numbers, kept for `html_tables` (DataFrames, statements);
- the page of every inline-XBRL fact, for `xbrl.facts_frame`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from m3analyst.errors import InputError
from m3analyst.ingest.guard import active_limits, check_pages
from m3analyst.ingest.model import Document
from m3analyst.ingest.pagelayout import clean_pages
from m3analyst.ingest.formats import register_loader
from m3analyst.ingest.xbrl import dei, fact_key, facts_frame

BLOCK_TAGS = {
    "p", "div", "br", "tr", "table", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "section", "article", "header", "footer", "blockquote", "pre", "center", "dl", "dt", "dd", "caption", "title",
}  # fmt: skip
CELL_TAGS = {"td", "th"}
SKIP_TAGS = {"script", "style", "head", "ix:header", "noscript", "template"}
PAGE_BREAK = "\f"
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_BREAK_BEFORE = re.compile(r"(?:page-)?break-before\s*:\s*(?:always|page)", re.IGNORECASE)
_BREAK_AFTER = re.compile(r"(?:page-)?break-after\s*:\s*(?:always|page)", re.IGNORECASE)
_WS = re.compile(r"[ \t\u00a0\u2009\u200b]+")


@dataclass
class WalkResult:
    text: str  # visible text with PAGE_BREAK between pages
    tables: list[tuple[object, int, str]] = field(default_factory=list)  # (element, page index, text before it)
    fact_pages: dict[object, int] = field(default_factory=dict)  # fact_key(element) -> 0-based page index


class TooDeep(Exception):
    """The element tree nests deeper than limits.max_depth."""


class _Walker:
    def __init__(self, hr_breaks: bool, max_depth: int):
        self.max_depth = max_depth
        self.out: list[str] = []
        self.page = 0
        self.hr_breaks = hr_breaks
        self.in_cell = 0  # inside a table cell, blocks become spaces: one table row = one line
        self.res = WalkResult("")

    def brk(self) -> None:
        self.out.append(PAGE_BREAK)
        self.page += 1

    def walk(self, el, depth: int = 0) -> None:
        if depth > self.max_depth:
            raise TooDeep
        tag = el.tag if isinstance(el.tag, str) else ""
        style = el.get("style") or ""
        if tag in SKIP_TAGS or (style and _HIDDEN.search(style)):
            return
        if style and _BREAK_BEFORE.search(style):
            self.brk()
        if tag.startswith("ix:non"):
            self.res.fact_pages[fact_key(el)] = self.page
        if tag == "table":
            before = "".join(self.out[-40:])
            self.res.tables.append((el, self.page, before[-600:]))
        cell = tag in CELL_TAGS
        block = tag in BLOCK_TAGS and not (self.in_cell and tag != "table")
        if block:
            self.out.append("\n")
        elif cell or (self.in_cell and tag in BLOCK_TAGS):
            self.out.append(" ")
        self.in_cell += cell
        if tag == "hr" and self.hr_breaks:
            self.brk()
        if el.text and tag:
            self.out.append(el.text)
        for child in el:
            self.walk(child, depth + 1)
            if child.tail:
                self.out.append(child.tail)
        self.in_cell -= cell
        if block:
            self.out.append("\n")
        if style and _BREAK_AFTER.search(style):
            self.brk()


_PAGE_NUMBER_LINE = re.compile(r"^(?:page\s+)?(\d{1,3})(?:\s+of\s+\d+)?$", re.IGNORECASE)


def split_on_page_numbers(text: str, min_pages: int = 3) -> list[str]:
    """Split after lone page-number lines ("7", "Page 8") that count up by one; else one page."""
    lines = text.split("\n")
    cuts, expected = [], None
    for i, ln in enumerate(lines):
        m = _PAGE_NUMBER_LINE.match(ln.strip())
        if m and (expected is None or int(m.group(1)) == expected):
            cuts.append(i)
            expected = int(m.group(1)) + 1
    if len(cuts) < min_pages:
        return [text]
    pages, lo = [], 0
    for c in cuts:
        pages.append("\n".join(lines[lo : c + 1]))
        lo = c + 1
    if lo < len(lines):
        pages.append("\n".join(lines[lo:]))
    return pages


def _tidy(text: str) -> str:
    lines = (_WS.sub(" ", ln).strip() for ln in text.split("\n"))
    return "\n".join(ln for ln in lines if ln)


def walk_html(body, hr_breaks: bool, max_depth: int = 250) -> WalkResult:
    w = _Walker(hr_breaks, max_depth)
    w.walk(body)
    w.res.text = "".join(w.out)
    return w.res


def _page_map(n_raw: int, keep: list[int]) -> list[int]:
    """1-based page of each raw page index once empty pages are dropped: an empty page's content (a table, a fact)
    belongs to the last kept page before it (the first page when none). One pass; it was a walk back per lookup."""
    kept, out, new = set(keep), [], 0
    for idx in range(n_raw):
        if idx in kept and idx != keep[0]:
            new += 1
        out.append(new + 1)
    return out


def _parse(path: Path, data: bytes):
    import lxml.etree
    import lxml.html

    head = data[:2048].lower()
    src: bytes | str = data
    if b"charset" not in head and b"encoding=" not in head:  # undeclared: UTF-8 (the web default), else cp1252
        try:
            src = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            src = data.decode("cp1252", errors="replace")
    try:
        return lxml.html.document_fromstring(src)
    except (lxml.etree.ParserError, ValueError) as e:
        raise InputError(path, f"HTML cannot be parsed ({e})") from None


@register_loader("html")
def load_html(path: Path, data: bytes) -> Document:
    root = _parse(path, data)
    body = root.find("body")
    if body is None:
        body = next((el for el in root.iter() if el.tag == "body"), None)
    if body is None or not body.text_content().strip():
        raise InputError(path, "HTML has no body text")
    low = data[:4_000_000].lower()
    hr_breaks = b"page-break" not in low and b"break-before:page" not in low and b"break-after:page" not in low
    limit = active_limits().max_depth
    try:
        res = walk_html(body, hr_breaks, limit)
    except TooDeep:
        raise InputError(path, f"HTML nests elements more than {limit} deep (the limit)", "raise limits.max_depth") from None
    raw_pages = [_tidy(p) for p in res.text.split(PAGE_BREAK)]
    if len(raw_pages) == 1:  # no marked breaks: printed page-number footers may still mark them
        raw_pages = split_on_page_numbers(raw_pages[0])
    keep = [i for i, p in enumerate(raw_pages) if p.strip()]  # drop empty pages (consecutive breaks)
    if not keep:
        raise InputError(path, "HTML has no visible text")
    check_pages(path, [raw_pages[i] for i in keep])
    new_page = _page_map(len(raw_pages), keep)
    clean = clean_pages([raw_pages[i] for i in keep])
    doc = Document.from_pages(clean.texts, labels=clean.labels)
    doc.metadata.loader = "html"
    title = root.findtext(".//title")
    if title and title.strip():
        doc.metadata.extra["html_title"] = title.strip()

    def page_of(idx: int) -> int:
        return new_page[min(max(idx, 0), len(new_page) - 1)]

    from m3analyst.ingest.analyze import analyze
    from m3analyst.ingest.html_tables import add_html_tables
    from m3analyst.ingest.statements import warn_missing_statements

    doc.xbrl = facts_frame(root, {k: page_of(v) for k, v in res.fact_pages.items()}, doc.warnings)
    form = dei(doc.xbrl, "DocumentType")
    if form in ("10-K", "10-Q", "8-K"):  # the filing says what it is
        doc.metadata.kind = form
    analyze(doc)
    company = dei(doc.xbrl, "EntityRegistrantName")
    if company:
        doc.metadata.company = company
        doc.metadata.title = f"{company} Form {doc.metadata.kind}"
    period_end = dei(doc.xbrl, "DocumentPeriodEndDate")
    if period_end:
        doc.metadata.dates["period_end"] = period_end
    add_html_tables(doc, [(el, page_of(p), before) for el, p, before in res.tables])
    warn_missing_statements(doc)
    return doc
