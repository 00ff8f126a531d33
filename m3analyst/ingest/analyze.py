"""Document-level analysis after loading: kind, metadata, sections, outline self-check."""

from __future__ import annotations

from m3analyst.ingest.model import Document


def analyze(doc: Document) -> Document:
    return doc
