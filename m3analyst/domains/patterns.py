"""The generic extractor: each fact is the first paragraph/sentence matching one of its spec regexes.

This is what a domain defined only by files uses; legal and bio build on the same scan.
"""

from __future__ import annotations

import re

from m3analyst.domains.facts import Fact
from m3analyst.domains.plugins import register_extractor
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.ingest.model import Document
from m3analyst.text import Span, first_number, paragraphs, sentences_of, squash


def compile_any(patterns: list[str]) -> re.Pattern | None:
    """One case-insensitive regex matching any of `patterns` (None when there are none)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.DOTALL) if patterns else None


def first_match(units: list[Span], fs: FactSpec) -> Span | None:
    """First unit matching the fact's `prefer` patterns, else its `patterns`; never one matching its `avoid`."""
    avoid = compile_any(fs.avoid)
    for pats in (fs.prefer, fs.patterns):
        rx = compile_any(pats)
        if rx is None:
            continue
        for u in units:
            text = squash(u.text)
            if rx.search(text) and not (avoid and avoid.search(text)):
                return u
    return None


def text_fact(fs: FactSpec, span: Span, value: str | None = None) -> Fact:
    text = squash(span.text)
    return Fact(fs.name, value if value is not None else text, fs.unit, 1.0, None, span.page, text, fs.title)


@register_extractor("patterns")
def extract_patterns(doc: Document, spec: DomainSpec) -> list[Fact]:
    sents = [s for p in paragraphs(doc, min_chars=20) for s in sentences_of(p)]
    out = []
    for fs in spec.facts:
        hit = first_match(sents, fs)
        if hit is None:
            continue
        number = first_number(hit.text) if fs.value == "number" else None
        if number is None:
            out.append(text_fact(fs, hit))
        else:
            out.append(Fact(fs.name, number, fs.unit, 1.0, None, hit.page, squash(hit.text), fs.title))
    return out
