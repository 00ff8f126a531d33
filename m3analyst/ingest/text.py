"""Plain text / Markdown loader. Form feeds (\\f) mark page breaks when present."""

from __future__ import annotations

from pathlib import Path

from m3analyst.errors import InputError
from m3analyst.ingest.model import Document
from m3analyst.ingest.registry import register_loader


def decode_text(path: Path, data: bytes) -> str:
    for enc in ("utf-8-sig",):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            pass
    raise InputError(path, "text is not valid UTF-8", "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8")


@register_loader("text")
def load_text(path: Path, data: bytes) -> Document:
    text = decode_text(path, data).replace("\r\n", "\n").replace("\r", "\n")
    pages = text.split("\f") if "\f" in text else [text]
    doc = Document.from_pages([p.strip("\n") for p in pages])
    doc.metadata.loader = "text"
    from m3analyst.ingest.analyze import analyze

    return analyze(doc)
