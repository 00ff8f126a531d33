"""The neutral text helpers, each written once: paragraphs and sentences with pages and offsets, calendar dates and
durations (`dates.py`, re-exported here), period labels, and numbers as documents write them.

It sits on the floor with settings.py and errors.py: ingest, the domains and everything above may import it, and it
imports nothing of the package (a `Document` is read only for its `text` and `pages`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from m3analyst.text.dates import (DATE, DURATION_TEXT, _MONTHS, add, parse_date,  # noqa: F401 - one text API
                                  parse_duration, written)


_PARA_SPLIT = re.compile(
    r"\n\s*\n|\n(?=\s*(?:\(?[0-9]{1,2}(?:\.[0-9]{1,2})*[.)]\s|\([a-z]\)\s|[A-Z]\.\s+[A-Z]|ARTICLE\b|Section\s+\d|SECTION\s+\d"
    r"|[A-Z][A-Z .]{6,}$))"
    # a numbered clause heading run into the previous sentence (text flowed from a PDF): ". 14.4 Assignment. "
    r"|(?<=[.;:])\s+(?=[0-9]{1,2}(?:\.[0-9]{1,2}){1,3}\.?\s+[A-Z][A-Za-z’'-]*(?:[;,]?\s+(?:[A-Z][A-Za-z’'-]*|of|and|or|the|to|for|in|on|by|with)){0,6}\.\s)"
)
_HEADING_ONLY = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2}){1,3}\.?\s+[^.]{1,60}\.")
# Sentence boundaries: in a document's text a sentence ends at . ! ? before a capital or a digit; in generated text
# (the model's memo sentences) a citation "[p.3]" may end it too, and a digit does not start one.
DOCUMENT_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[\"“(]?[A-Z0-9])")
GENERATED_BOUNDARY = re.compile(r"(?<=[.!?\]])\s+(?=[A-Z\"“(])")
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|vs|Inc|Co|Corp|Ltd|No|Fig|et al|approx|U\.S|Mr|Ms|Dr|Sec|St)\.$")


class _Page(Protocol):
    number: int
    start: int
    end: int


class PagedText(Protocol):
    """What the helpers read of a document: its text and its pages' offsets (`m3analyst.ingest.model.Document` is
    one). A protocol, so this floor module names no higher layer, not even for type checking."""

    text: str
    pages: Sequence[_Page]


@dataclass(frozen=True)
class Span:
    """A piece of Document.text: [start, end) offsets, the 1-based page of its start, and its text."""

    start: int
    end: int
    page: int
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


def paragraphs(doc: PagedText, min_chars: int = 40, max_chars: int = 2500) -> list[Span]:
    """Paragraph-like spans (blank lines or numbered-clause starts split them), never across pages.

    Long ones are cut at sentence boundaries to stay under `max_chars`.
    """
    out: list[Span] = []
    for page in doc.pages:
        pos, heading_start = page.start, None
        for piece in _PARA_SPLIT.split(doc.text[page.start : page.end]):
            start = doc.text.find(piece, pos, page.end) if piece else -1
            if start < 0:
                continue
            pos = start + len(piece)
            text = piece.strip()
            start += len(piece) - len(piece.lstrip())
            if _HEADING_ONLY.fullmatch(text):  # "14.4 Assignment." stays with the clause text after it
                heading_start = start if heading_start is None else heading_start
                continue
            if heading_start is not None:
                start, heading_start = heading_start, None
                text = doc.text[start:pos].strip()
            if len(text) < min_chars:
                continue
            out.extend(_cut(Span(start, start + len(text), page.number, text), max_chars))
    return out


def _cut(span: Span, max_chars: int) -> list[Span]:
    if len(span.text) <= max_chars:
        return [span]
    parts, cur_start, cur = [], span.start, []
    for s in sentences_of(span):
        if cur and s.end - cur_start > max_chars:
            parts.append(_sub(span, cur_start, cur[-1].end))
            cur_start, cur = s.start, []
        cur.append(s)
    if cur:
        parts.append(_sub(span, cur_start, cur[-1].end))
    return parts


def _sub(span: Span, start: int, end: int) -> Span:
    return Span(start, end, span.page, span.text[start - span.start : end - span.start])


def sentence_bounds(text: str, boundary: re.Pattern = DOCUMENT_BOUNDARY,
                    abbreviations: bool = True) -> list[tuple[int, int]]:
    """[start, end) of each sentence of `text` (the one sentence splitter): pieces between `boundary` matches; with
    `abbreviations`, 'e.g.', 'Inc.' and the like do not end a sentence. Pieces may be blank or padded."""
    out, buf_start = [], 0
    for m in boundary.finditer(text):
        if abbreviations and _ABBREV.search(text[buf_start : m.start()]):
            continue
        out.append((buf_start, m.start()))
        buf_start = m.end()
    out.append((buf_start, len(text)))
    return out


def sentences_of(span: Span) -> list[Span]:
    """Split a span into sentences (simple rules; abbreviations like 'e.g.' and 'Inc.' do not split)."""
    spans = []
    for a, b in sentence_bounds(span.text):
        t = span.text[a:b].strip()
        if t:
            a2 = span.text.find(t, a)
            spans.append(Span(span.start + a2, span.start + a2 + len(t), span.page, t))
    return spans


def sentences(doc: PagedText) -> list[Span]:
    return [s for p in paragraphs(doc, min_chars=20) for s in sentences_of(p)]


def squash(text: str) -> str:
    """Collapse whitespace (PDF line breaks) for display and comparison."""
    return re.sub(r"\s+", " ", text).strip()


# ---- periods ----------------------------------------------------------------------------------------
YEAR = re.compile(r"\b(19[89]\d|20[0-4]\d)\b")


def period_span(period: str | None) -> str:
    """'three months to July 29, 2023' -> 'three months'; plain years/dates -> ''."""
    m = re.match(r"(\w+ months) to ", period or "")
    return m.group(1) if m else ""


def period_key(period: str | None) -> tuple[int, int, int, int]:
    """Sort key (year, month, day, span): later periods sort higher; quarters before year-to-date."""
    if not period:
        return (0, 0, 0, 0)
    y = YEAR.findall(period)
    m = re.search(r"\b([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2})", period)
    month = _MONTHS.get(m.group(1).lower(), 0) if m else 0
    day = int(m.group(2)) if m and month else 0
    iso = re.match(r"(\d{4})-(\d{2})-(\d{2})", period)
    if iso:
        return (int(iso.group(1)), int(iso.group(2)), int(iso.group(3)), 0)
    span = -{"three": 3, "six": 6, "nine": 9, "twelve": 12}.get(period.split()[0].lower(), 0)
    return (int(y[-1]) if y else 0, month, day, span)


# ---- numbers ----------------------------------------------------------------------------------------
# Statement cells, where brackets and dashes have meanings of their own, are read by ingest/statements.parse_number;
# the scorers' quantities (scale words, currency) by evaluation/normalize.parse_quantities.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?")


def to_number(token: str) -> float | None:
    """A number token as written: '$1,234.5' -> 1234.5, '12%' -> 12.0, '(3)' -> 3.0, '\u22120.5' -> -0.5 (a minus sign or
    an en dash is a minus); None when it is not one."""
    try:
        return float(token.strip("$%()").replace(",", "").replace("\u2212", "-").replace("\u2013", "-"))
    except ValueError:
        return None


def first_number(text: str) -> float | None:
    """The first number written in `text` ('3,000 customers' -> 3000.0), or None."""
    m = _NUMBER_IN_TEXT.search(text)
    return float(m.group().replace(",", "")) if m else None
