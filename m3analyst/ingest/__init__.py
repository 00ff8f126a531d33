"""Ingestion: any supported file -> one `Document`.

`load_document(path)` checks the path, sniffs the content (not the extension), and hands the bytes
to the registered loader for that format. Loaders register with `register_loader`.
"""

from __future__ import annotations

from m3analyst.ingest.model import Document, Metadata, OutlineReport, Page, Provenance, Section, Table
from m3analyst.ingest.formats import load_document, register_loader, sniff
from m3analyst.ingest.statements import STATEMENT_KINDS, latest_period, row_value

__all__ = [
    "Document",
    "Metadata",
    "OutlineReport",
    "Page",
    "Provenance",
    "STATEMENT_KINDS",
    "Section",
    "Table",
    "latest_period",
    "load_document",
    "register_loader",
    "row_value",
    "sniff",
]
