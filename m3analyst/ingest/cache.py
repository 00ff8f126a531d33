"""The parsed-document cache: a PDF read once is not parsed again.

`$M3ANALYST_HOME/documents/<sha256 of the file>-<ingest fingerprint>.json` holds the `Document` as JSON. The
fingerprint hashes this package's source and the PDF libraries' versions, so a change to either reads the
file afresh. Only documents whose JSON round trip is exact are stored (PDFs; HTML filings carry an XBRL table
whose dtypes do not survive JSON, and parse in a fraction of a second anyway). Writes are atomic; the folder
keeps the newest MAX_FILES. The setting ingest.doc_cache = false (M3ANALYST_INGEST__DOC_CACHE=0) turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import metadata
from pathlib import Path

from m3analyst.ingest.model import Document

ENV = "M3ANALYST_INGEST__DOC_CACHE"  # the setting's environment variable (m3analyst/settings.py)
MAX_FILES = 256
CACHED_FORMATS = frozenset({"pdf"})  # parse takes 0.5-2.5 s per 10-K; loading the JSON ~2 ms


def enabled() -> bool:
    from m3analyst.settings import current

    return current().ingest.doc_cache


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """Hash of the ingest package's source files and the PDF libraries' versions (16 hex digits)."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for dist in ("pypdfium2", "pdfplumber", "pdfminer.six", "lxml"):
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=-".encode())
    return h.hexdigest()[:16]


def _folder() -> Path:
    from m3analyst.resources import home_dir

    return home_dir() / "documents"


def _path(sha256: str) -> Path:
    return _folder() / f"{sha256}-{fingerprint()}.json"


def get(sha256: str, fmt: str) -> Document | None:
    """The cached Document of a file with this content, or None (not cached, unreadable, or cache off)."""
    if fmt not in CACHED_FORMATS or not enabled():
        return None
    path = _path(sha256)
    try:
        return Document.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None  # absent, or a damaged entry: parse afresh (and overwrite it)


def put(doc: Document, sha256: str, fmt: str) -> bool:
    """Store `doc` when its format is cached and its JSON round trip is exact; True when stored. Never raises
    for a cache problem (a read-only home, a full disk): the document was parsed, the run goes on."""
    if fmt not in CACHED_FORMATS or not enabled():
        return False
    text = doc.to_json()
    if Document.from_json(text).to_json() != text:
        return False
    try:
        path = _path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        _prune(path.parent)
        return True
    except OSError:
        return False


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[MAX_FILES:]:
        old.unlink(missing_ok=True)
