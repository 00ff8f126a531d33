"""Plain text / Markdown loader. Form feeds (\\f) mark page breaks when present."""

from __future__ import annotations

from pathlib import Path

from m3analyst.errors import InputError
from m3analyst.ingest.guard import check_pages
from m3analyst.ingest.model import Document
from m3analyst.ingest.formats import register_loader


def decode_text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = data[e.start : e.start + 1].hex()
        raise InputError(
            path, f"text is not valid UTF-8 (byte 0x{bad} at offset {e.start})", "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None


@register_loader("text")
def load_text(path: Path, data: bytes) -> Document:
    text = decode_text(path, data).replace("\r\n", "\n").replace("\r", "\n")
    pages = text.split("\f")  # offsets into doc.text equal offsets into the (newline-normalised) file
    check_pages(path, pages)
    doc = Document.from_pages(pages)
    doc.metadata.loader = "text"
    from m3analyst.ingest.analyze import analyze

    return analyze(doc)
