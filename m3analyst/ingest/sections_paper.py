"""Paper outline (placeholder until the detector lands)."""

from __future__ import annotations

from m3analyst.ingest.model import Document, Section

EXPECTED: list[str] = []


def detect_paper_sections(doc: Document) -> list[Section]:
    return []
