"""Document-level analysis after loading: kind, metadata, sections, outline self-check.

Section detectors and the sections each kind is expected to have are registered per document
kind (`SECTION_DETECTORS`, `EXPECTED_SECTIONS`); `analyze(doc)` runs them and fills
`doc.outline` so that a missing or shifted section is reported, not silent:

- missing: expected section kinds not found;
- problems: sections out of their usual order, empty sections, and sections implausibly large
  (one section holding most of a long document usually means the next heading was missed).
"""

from __future__ import annotations

from typing import Callable

from m3analyst.ingest.metadata import detect_kind, extract_metadata
from m3analyst.ingest.model import Document, Section

SectionDetector = Callable[[Document], list[Section]]
SECTION_DETECTORS: dict[str, SectionDetector] = {}
EXPECTED_SECTIONS: dict[str, list[str]] = {}
# kinds whose sections have a canonical order (the order of EXPECTED_SECTIONS is checked)
ORDERED_KINDS = {"10-K", "10-Q", "paper"}
# share of a long document one section may hold before it is flagged (by document kind)
MAX_SHARE = {"10-K": 0.6, "10-Q": 0.7, "paper": 0.8, "contract": 0.95}
MIN_CHARS_FOR_SIZE_CHECK = 20_000
TRAILING_KINDS = {"item_15", "item_16", "part2_item_6", "exhibits", "references", "signature"}


def register_sections(*kinds: str, expected: list[str] | None = None):
    def deco(fn: SectionDetector) -> SectionDetector:
        for k in kinds:
            SECTION_DETECTORS[k] = fn
            if expected is not None:
                EXPECTED_SECTIONS[k] = expected
        return fn

    return deco


def _register_builtin() -> None:
    if SECTION_DETECTORS:
        return
    from m3analyst.ingest import sections_contract, sections_filing, sections_paper

    register_sections("10-K", expected=sections_filing.EXPECTED["10-K"])(sections_filing.detect_filing_sections)
    register_sections("10-Q", expected=sections_filing.EXPECTED["10-Q"])(sections_filing.detect_filing_sections)
    register_sections("contract", expected=sections_contract.EXPECTED)(sections_contract.detect_contract_sections)
    register_sections("paper", expected=sections_paper.EXPECTED)(sections_paper.detect_paper_sections)


def check_outline(doc: Document) -> None:
    """Fill doc.outline: expected/missing section kinds and order/size problems."""
    expected = EXPECTED_SECTIONS.get(doc.kind, [])
    found = {s.kind for s in doc.sections}
    doc.outline.expected = list(expected)
    # an expected entry may name alternatives: "article|section"
    doc.outline.missing = [k for k in expected if not any(alt in found for alt in k.split("|"))]
    problems: list[str] = []
    if doc.kind in ORDERED_KINDS:
        rank = {alt: i for i, k in enumerate(expected) for alt in k.split("|")}
        seen = [s for s in doc.sections if s.kind in rank]
        for a, b in zip(seen, seen[1:]):
            if rank[b.kind] < rank[a.kind]:
                problems.append(f"{b.title!r} (p.{b.page_start}) comes after {a.title!r} (p.{a.page_start}): order looks wrong")
    top = [s for s in doc.sections if s.level == 1]
    for s in top:
        body = doc.text[s.start : s.end]
        if len(body.strip()) < len(s.title) + 3 and s.kind not in ("signature", "title", "authors") and "reserved" not in s.title.lower():
            problems.append(f"{s.title!r} (p.{s.page_start}) is empty")
    share = MAX_SHARE.get(doc.kind)
    if share and len(doc.text) >= MIN_CHARS_FOR_SIZE_CHECK and len(top) > 1:
        for s in top:
            if s.kind in TRAILING_KINDS:
                continue  # exhibits and attachments legitimately run to the end
            if (s.end - s.start) > share * len(doc.text):
                problems.append(
                    f"{s.title!r} spans p.{s.page_start}-{s.page_end} ({(s.end - s.start) / len(doc.text):.0%} of the text): "
                    "a following heading was probably missed"
                )
    doc.outline.problems = problems


def analyze(doc: Document) -> Document:
    """Sniff the kind, extract metadata, detect sections, self-check the outline (in place; returns doc)."""
    _register_builtin()
    if doc.metadata.kind == "other":
        doc.metadata.kind = detect_kind(doc)
    extract_metadata(doc)
    detector = SECTION_DETECTORS.get(doc.kind)
    if detector is not None:
        doc.sections = detector(doc)
    if not doc.sections and doc.metadata.loader == "text":
        from m3analyst.ingest.sections_markdown import detect_markdown_sections, has_markdown_headings

        if has_markdown_headings(doc.text):
            doc.sections = detect_markdown_sections(doc)
    check_outline(doc)
    return doc
