"""Format sniffing and the loader registry."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from m3analyst.errors import InputError
from m3analyst.ingest import cache
from m3analyst.ingest.guard import check_content, limits_in_force, read_source
from m3analyst.ingest.model import Document
from m3analyst.settings import LimitsSettings

# format name -> loader(path, data) -> Document
_LOADERS: dict[str, Callable[[Path, bytes], Document]] = {}


def register_loader(fmt: str):
    def deco(fn: Callable[[Path, bytes], Document]):
        _LOADERS[fmt] = fn
        return fn

    return deco


def sniff(data: bytes) -> str:
    """Format from content: 'pdf', 'html' or 'text'; raises ValueError for binary junk."""
    head = data[:4096].lstrip()
    if data[:1024].find(b"%PDF-") != -1:
        return "pdf"
    low = head[:2048].lower()
    if low.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in low or b"<body" in low:
        return "html"
    if _looks_binary(data[:8192]):
        raise ValueError("binary data, not a PDF, HTML or text document")
    return "text"


def _looks_binary(chunk: bytes) -> bool:
    if b"\x00" in chunk:
        return True
    if not chunk:
        return False
    control = sum(1 for b in chunk if b < 32 and b not in (9, 10, 12, 13))
    return control / len(chunk) > 0.05


def _ensure_loaders() -> None:
    # Importing the loader modules registers them.
    from m3analyst.ingest import html, pdf, plaintext  # noqa: F401


def load_document(path: str | Path, limits: LimitsSettings | None = None) -> Document:
    """Load any supported document (a PDF parsed before comes from the cache, ingest/cache.py), within `limits`
    (default: `LimitsSettings()`). Raises `InputError` naming the file and the problem."""
    path = Path(path)
    with limits_in_force(limits) as lim:
        data = read_source(path, lim)
        if not data.strip():
            raise InputError(path, "file is empty")
        try:
            fmt = sniff(data)
        except ValueError as e:
            raise InputError(path, str(e)) from None
        sha = hashlib.sha256(data).hexdigest()
        doc = cache.get(sha, fmt)  # a PDF parsed before (same bytes, same ingest code): no second parse
        if doc is None:
            _ensure_loaders()
            doc = _LOADERS[fmt](path, data)
            check_content(path, doc.text, bool(doc.tables) or (doc.xbrl is not None and len(doc.xbrl) > 0))
            doc.metadata.sha256, doc.metadata.format = sha, fmt
            cache.put(doc, sha, fmt)
    doc.metadata.source = str(path)
    doc.metadata.sha256 = sha
    doc.metadata.format = fmt
    return doc
