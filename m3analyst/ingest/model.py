"""The one document model every later stage reads.

A `Document` holds the full text once (`Document.text`); everything else points into it by
character offsets, so any quote a later stage cites maps back to a page and an offset:

    Document
      text                      full text, pages joined by PAGE_JOIN
      pages[]    Page           number (1-based physical page), [start, end) into text, printed label
      sections[] Section        title, level, kind, [start, end), page span
      tables[]   Table          pandas DataFrame, page, title/caption, bbox, kind, scale
      xbrl       DataFrame      inline-XBRL facts (concept, value, unit, period, dimensions, ...)
      metadata   Metadata       kind (10-K, contract, paper, ...), title, company/parties/authors, dates
      outline    OutlineReport  expected-but-missing sections, order/size warnings
      warnings[]                loader warnings (text layer missing on some pages, ...)

Page numbers are 1-based physical pages (the PDF's page order, or the filing's page breaks);
citations `[p.N]` use the same numbers.
"""

from __future__ import annotations

import bisect
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from m3analyst.ingest.guard import clean_text

PAGE_JOIN = "\n\n"

DOCUMENT_KINDS = ("10-K", "10-Q", "8-K", "earnings", "contract", "paper", "other")


@dataclass
class Page:
    number: int  # 1-based physical page
    start: int  # offset of the page's first character in Document.text
    end: int  # offset one past its last character
    label: str | None = None  # printed page number/footer label, when found


@dataclass
class Section:
    title: str
    kind: str  # normalised id, e.g. "item_7", "item_1a", "abstract", "article", "signature"
    level: int  # 1 = top level (Part/Item/Article), 2 = sub-section, ...
    start: int  # offset into Document.text where the heading starts
    end: int  # offset one past the section's last character
    page_start: int
    page_end: int
    number: str | None = None  # "7A", "4.2", "(a)" ...


@dataclass
class Table:
    id: str  # stable id, e.g. "t12"
    page: int
    df: pd.DataFrame
    title: str | None = None
    caption: str | None = None
    kind: str | None = None  # "income_statement", "balance_sheet", "cash_flow", "segment", ...
    scale: float = 1.0  # multiply values by this (1e6 for "in millions")
    unit: str | None = None  # "USD", "shares", "USD/share", "%"
    periods: list[str] = field(default_factory=list)  # period column labels, e.g. ["2018", "2017"]
    bbox: tuple[float, float, float, float] | None = None  # x0, top, x1, bottom in PDF points
    start: int | None = None  # offset of the table's text in Document.text, when known
    end: int | None = None


@dataclass
class Metadata:
    kind: str = "other"  # one of DOCUMENT_KINDS
    title: str | None = None
    company: str | None = None
    parties: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    dates: dict[str, str] = field(default_factory=dict)  # "period_end", "filed", "effective", ...
    source: str | None = None  # path as given
    sha256: str | None = None  # of the source bytes
    format: str | None = None  # "pdf", "html", "text"
    loader: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutlineReport:
    """Self-check of the detected outline against what this kind of document should have."""

    expected: list[str] = field(default_factory=list)  # section kinds this document kind should have
    missing: list[str] = field(default_factory=list)  # expected kinds not found
    problems: list[str] = field(default_factory=list)  # order/size anomalies, in words

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


@dataclass
class Provenance:
    """Where something sits in the Document: a 1-based physical page and a character span of Document.text."""

    page: int
    start: int
    end: int


@dataclass
class Citation(Provenance):
    """The one citation type: a page, the character span in Document.text (start == end == -1 when only the
    page is known, e.g. a derived figure's input row) and the quoted text as shown to the reader.

    Facts, quotes, claim checks, answers and findings all cite through it; `mark` is how a memo prints it.
    """

    quote: str = ""

    @property
    def mark(self) -> str:
        return f"[p.{self.page}]"

    @property
    def has_span(self) -> bool:
        return 0 <= self.start < self.end

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.page, "start": self.start, "end": self.end, "quote": self.quote}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Citation":
        return cls(int(d["page"]), int(d.get("start", -1)), int(d.get("end", -1)), str(d.get("quote", "")))

    @classmethod
    def page_only(cls, page: int, quote: str = "") -> "Citation":
        return cls(page, -1, -1, quote)

    @classmethod
    def of_span(cls, doc: "Document", start: int, end: int) -> "Citation":
        """The citation of Document.text[start:end] (its page found from the offset)."""
        return cls(doc.page_at(start), start, end, " ".join(doc.text[start:end].split()))


@dataclass
class Document:
    text: str
    pages: list[Page]
    metadata: Metadata = field(default_factory=Metadata)
    sections: list[Section] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    xbrl: pd.DataFrame | None = None
    outline: OutlineReport = field(default_factory=OutlineReport)
    warnings: list[str] = field(default_factory=list)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_pages(cls, page_texts: list[str], labels: list[str | None] | None = None, **kw) -> "Document":
        """Build text and page spans from a list of page texts (page 1 first)."""
        pages, parts, pos = [], [], 0
        for i, t in enumerate(page_texts):
            if i:
                parts.append(PAGE_JOIN)
                pos += len(PAGE_JOIN)
            t = clean_text(t)  # no control characters (ANSI escapes) reach a memo or a terminal
            parts.append(t)
            pages.append(Page(i + 1, pos, pos + len(t), labels[i] if labels else None))
            pos += len(t)
        return cls(text="".join(parts), pages=pages, **kw)

    # ---- navigation ---------------------------------------------------------------------
    @property
    def n_pages(self) -> int:
        return len(self.pages)

    @property
    def kind(self) -> str:
        return self.metadata.kind

    def page_text(self, number: int) -> str:
        p = self.pages[number - 1]
        return self.text[p.start : p.end]

    def page_at(self, offset: int) -> int:
        """Page number holding character `offset` (offsets in a page gap belong to the next page)."""
        starts = [p.start for p in self.pages]
        i = bisect.bisect_right(starts, offset) - 1
        return self.pages[max(i, 0)].number

    def has_page(self, number: int) -> bool:
        return 1 <= number <= len(self.pages)

    def section(self, kind: str) -> Section | None:
        return next((s for s in self.sections if s.kind == kind), None)

    def section_text(self, s: Section) -> str:
        return self.text[s.start : s.end]

    def tables_of_kind(self, kind: str) -> list[Table]:
        return [t for t in self.tables if t.kind == kind]

    def locate(self, quote: str, page: int | None = None) -> list[Provenance]:
        """Where `quote` occurs (whitespace- and case-insensitive), optionally only on `page`."""
        words = [re.escape(w) for w in quote.split()]
        if not words:
            return []
        pattern = re.compile(r"\s+".join(words), re.IGNORECASE)
        lo, hi = (0, len(self.text)) if page is None else (self.pages[page - 1].start, self.pages[page - 1].end)
        return [Provenance(self.page_at(m.start()), m.start(), m.end()) for m in pattern.finditer(self.text, lo, hi)]

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "m3analyst.document/1",
            "metadata": asdict(self.metadata),
            "text": self.text,
            "pages": [asdict(p) for p in self.pages],
            "sections": [asdict(s) for s in self.sections],
            "tables": [_table_to_dict(t) for t in self.tables],
            "xbrl": None if self.xbrl is None else json.loads(self.xbrl.to_json(orient="split", index=False)),
            "outline": asdict(self.outline),
            "warnings": list(self.warnings),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Document":
        xbrl = None
        if d.get("xbrl") is not None:
            xbrl = pd.read_json(io.StringIO(json.dumps(d["xbrl"])), orient="split")
        return cls(
            text=d["text"],
            pages=[Page(**p) for p in d["pages"]],
            metadata=Metadata(**d["metadata"]),
            sections=[Section(**s) for s in d["sections"]],
            tables=[_table_from_dict(t) for t in d["tables"]],
            xbrl=xbrl,
            outline=OutlineReport(**d["outline"]),
            warnings=list(d.get("warnings", [])),
        )

    @classmethod
    def from_json(cls, s: str | bytes | Path) -> "Document":
        if isinstance(s, Path):
            s = s.read_text(encoding="utf-8")
        return cls.from_dict(json.loads(s))


def _table_to_dict(t: Table) -> dict[str, Any]:
    d = asdict(t)
    df = t.df
    d["df"] = {
        "columns": [str(c) for c in df.columns],
        "index": [str(i) for i in df.index],
        "data": df.astype(object).where(df.notna(), None).values.tolist(),
    }
    return d


def _table_from_dict(d: dict[str, Any]) -> Table:
    d = dict(d)
    raw = d.pop("df")
    df = pd.DataFrame(raw["data"], columns=raw["columns"], index=raw["index"])
    if d.get("bbox") is not None:
        d["bbox"] = tuple(d["bbox"])
    return Table(df=df, **d)
