"""Text units the extractors and the memo writer scan: paragraphs and sentences with pages and offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.ingest.model import Document

_PARA_SPLIT = re.compile(
    r"\n\s*\n|\n(?=\s*(?:\(?[0-9]{1,2}(?:\.[0-9]{1,2})*[.)]\s|\([a-z]\)\s|[A-Z]\.\s+[A-Z]|ARTICLE\b|Section\s+\d|SECTION\s+\d"
    r"|[A-Z][A-Z .]{6,}$))"
    # a numbered clause heading run into the previous sentence (text flowed from a PDF): ". 14.4 Assignment. "
    r"|(?<=[.;:])\s+(?=[0-9]{1,2}(?:\.[0-9]{1,2}){1,3}\.?\s+[A-Z][A-Za-z’'-]*(?:[;,]?\s+(?:[A-Z][A-Za-z’'-]*|of|and|or|the|to|for|in|on|by|with)){0,6}\.\s)"
)
_HEADING_ONLY = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,2}){1,3}\.?\s+[^.]{1,60}\.")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"“(]?[A-Z0-9])")
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|vs|Inc|Co|Corp|Ltd|No|Fig|et al|approx|U\.S|Mr|Ms|Dr|Sec|St)\.$")


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


def paragraphs(doc: Document, min_chars: int = 40, max_chars: int = 2500) -> list[Span]:
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


def sentences_of(span: Span) -> list[Span]:
    """Split a span into sentences (simple rules; abbreviations like 'e.g.' and 'Inc.' do not split)."""
    out, pos, buf_start = [], 0, 0
    for m in _SENT_SPLIT.finditer(span.text):
        candidate = span.text[buf_start : m.start()]
        if _ABBREV.search(candidate):
            continue
        out.append((buf_start, m.start()))
        buf_start = m.end()
    out.append((buf_start, len(span.text)))
    spans = []
    for a, b in out:
        t = span.text[a:b].strip()
        if t:
            a2 = span.text.find(t, a)
            spans.append(Span(span.start + a2, span.start + a2 + len(t), span.page, t))
    return spans


def sentences(doc: Document) -> list[Span]:
    return [s for p in paragraphs(doc, min_chars=20) for s in sentences_of(p)]


def squash(text: str) -> str:
    """Collapse whitespace (PDF line breaks) for display and comparison."""
    return re.sub(r"\s+", " ", text).strip()
