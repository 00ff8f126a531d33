"""The parsed-document cache: a PDF read once is not parsed again.

`$M3ANALYST_HOME/documents/<sha256 of the file>-<ingest fingerprint>.json` holds the `Document` as JSON. The
fingerprint hashes this package's source and the PDF libraries' versions, so a change to either reads the
file afresh. Only documents whose JSON round trip is exact are stored (PDFs; HTML filings carry an XBRL table
whose dtypes do not survive JSON, and parse in a fraction of a second anyway). Writes are atomic; the folder
keeps the newest MAX_FILES. The setting ingest.doc_cache = false (M3ANALYST_INGEST__DOC_CACHE=0) turns it off. An entry is used only when it is a Document of
this schema whose recorded sha256 is the file's; any other is deleted with a warning (`get`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path

from m3analyst.ingest.model import Document

log = logging.getLogger("m3analyst.ingest")
ENV = "M3ANALYST_INGEST__DOC_CACHE"  # the setting's environment variable (m3analyst/settings.py)
SCHEMA = "m3analyst.document/1"
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
    """The cached Document of a file with this content, or None (not cached, or cache off). An entry is used only
    when it is a Document of this schema made from a file with this sha256; any other entry (damaged, `[]`,
    `null`, another file's Document copied over it) is deleted with a warning and the file is parsed afresh."""
    if fmt not in CACHED_FORMATS or not enabled():
        return None
    path = _path(sha256)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None  # absent or unreadable
    doc, problem = _checked(text, sha256)
    if problem:
        log.warning("document cache: discarded %s (%s); parsing the file afresh", path.name, problem)
        path.unlink(missing_ok=True)
    return doc


def _checked(text: str, sha256: str) -> tuple[Document | None, str | None]:
    try:
        raw = json.loads(text)
    except ValueError:
        return None, "not JSON"
    if not isinstance(raw, dict) or raw.get("format") != SCHEMA:
        return None, f"not a {SCHEMA} entry"
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or meta.get("sha256") != sha256:
        return None, "made from another file"
    try:
        return Document.from_dict(raw), None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
        return None, f"damaged ({type(e).__name__})"


def put(doc: Document, sha256: str, fmt: str) -> bool:
    """Store `doc` when its format is cached and its JSON round trip is exact; True when stored. Never raises
    for a cache problem (a read-only home, a full disk): the document was parsed, the run goes on."""
    if fmt not in CACHED_FORMATS or not enabled():
        return False
    if doc.metadata.sha256 != sha256:
        return False  # entries are checked against the file's hash when read
    text = doc.to_json()
    if Document.from_json(text).to_json() != text:
        return False
    try:
        path = _path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{os.getpid()}.{path.name}.tmp")
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
