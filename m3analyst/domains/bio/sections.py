"""Where a sentence stands in a paper: the sections of given kinds (abstract, methods, results, ...), as the bio
extractor and the bio findings both read them."""

from __future__ import annotations

import re

from m3analyst.ingest.model import Document
from m3analyst.text import Span


def _section_ranges(doc: Document, kinds: list[str]) -> list[tuple[int, int]]:
    """[start, end) ranges of sections of these kinds (a kind also covers its sub-kinds: abstract_methods)
    and of 'ABSTRACT.METHODS:'-style headed blocks."""
    ranges: list[tuple[int, int]] = []
    for kind in kinds:
        ranges += [(s.start, s.end) for s in doc.sections if s.kind == kind or s.kind.startswith(kind + "_")]
        for m in re.finditer(rf"(?im)^[ \t]*(?:ABSTRACT\.)?{re.escape(kind)}[A-Z .]*:?[ \t]*$|^[ \t]*ABSTRACT\.{re.escape(kind)}\w*:", doc.text):
            end = doc.text.find("\n\n", m.end() + 1)
            nxt = re.search(r"(?m)^[ \t]*(?:ABSTRACT|BODY)\.[A-Z]", doc.text[m.end():])
            ranges.append((m.start(), m.end() + nxt.start() if nxt else (end if end > 0 else len(doc.text))))
    return ranges


def in_sections(doc: Document, sents: list[Span], kinds: list[str]) -> list[Span]:
    """The sentences that start inside a section of one of these kinds."""
    ranges = _section_ranges(doc, kinds)
    return [s for s in sents if any(a <= s.start < b for a, b in ranges)]


def preferred_first(doc: Document, sents: list[Span], prefer: list[str]) -> list[Span]:
    """Sentences in the preferred sections first (in the given order), then all in document order."""
    if not prefer:
        return sents
    first = [s for kind in prefer for s in in_sections(doc, sents, [kind])]
    seen: set[int] = set()
    first = [s for s in first if not (id(s) in seen or seen.add(id(s)))]
    return first + [s for s in sents if id(s) not in seen]
