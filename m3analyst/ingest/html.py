"""EDGAR HTML / inline-XBRL loader."""

from __future__ import annotations

from pathlib import Path

from m3analyst.errors import InputError
from m3analyst.ingest.model import Document
from m3analyst.ingest.registry import register_loader


@register_loader("html")
def load_html(path: Path, data: bytes) -> Document:
    import lxml.html

    try:
        root = lxml.html.document_fromstring(data)
    except Exception as e:  # lxml raises several types for junk
        raise InputError(path, f"HTML cannot be parsed ({e})") from None
    body = root.find("body")
    if body is None or not body.text_content().strip():
        raise InputError(path, "HTML has no body text")
    doc = Document.from_pages([body.text_content()])
    doc.metadata.loader = "html"
    from m3analyst.ingest.analyze import analyze

    return analyze(doc)
