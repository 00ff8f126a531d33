"""What a batch works on: INPUT (a folder, a glob, a manifest CSV/JSONL or one file) -> `BatchItem`s.

Manifest columns: `path` (required; relative paths are resolved against the manifest's folder),
`domain` (optional per-row override of --domain), `id` (optional; default derived from the path),
and any other columns, which are carried unchanged into the batch summary.
"""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from m3analyst.errors import InputError, UsageError

# Suffixes picked up when INPUT is a folder (the loaders sniff content; these only filter a folder).
DOCUMENT_SUFFIXES = frozenset({".pdf", ".htm", ".html", ".xhtml", ".txt", ".text", ".md", ".markdown"})


class _DomainChoices:
    """What a batch's --domain or a manifest's domain column may say: auto, or a registered domain (read when
    asked: `in` and iteration see the domains registered now)."""

    def __iter__(self) -> Iterator[str]:
        from m3analyst.domains.search import list_domains

        return iter(("auto", *list_domains()))

    def __contains__(self, name: object) -> bool:
        return name in tuple(self)


DOMAIN_CHOICES = _DomainChoices()
_GLOB_CHARS = re.compile(r"[*?\[]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_BYTES = 120  # memo file names add '.html' and temp names ~20 more: far below 255 bytes


@dataclass
class BatchItem:
    """One document of a batch. `domain` None means: use the batch default (--domain)."""

    id: str
    path: Path
    domain: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Discovery:
    items: list[BatchItem]
    source: str  # "folder" | "glob" | "manifest" | "file"
    ignored: list[Path] = field(default_factory=list)  # folder files with non-document suffixes


def discover(spec: str | Path, exclude: Path | None = None) -> Discovery:
    """Resolve INPUT into items. `exclude` (the output folder) is never scanned."""
    text = str(spec)
    path = Path(text)
    for _kind, matches, reader in _SOURCES:
        if matches(path, text):
            found = reader(path, text, exclude)
            _check_ids(found.items)
            return found
    raise InputError(text, "no such file, folder or glob match")


def _is_manifest(path: Path, _text: str) -> bool:
    return path.is_file() and path.suffix.lower() in _MANIFEST_READERS


def _is_folder(path: Path, _text: str) -> bool:
    return path.is_dir()


def _is_glob(_path: Path, text: str) -> bool:
    return bool(_GLOB_CHARS.search(text))


def _is_file(path: Path, _text: str) -> bool:
    return path.is_file()


def _from_folder(root: Path, _text: str, exclude: Path | None) -> Discovery:
    skip = exclude.resolve() if exclude is not None else None
    docs, ignored = [], []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if skip is not None and p.resolve().is_relative_to(skip):
            continue
        (docs if p.suffix.lower() in DOCUMENT_SUFFIXES else ignored).append(p)
    if not docs:
        raise InputError(root, "no documents found in this folder", "looked for " + " ".join(sorted(DOCUMENT_SUFFIXES)))
    return Discovery(_items_for(docs, root), "folder", ignored)


def _from_glob(_path: Path, text: str, exclude: Path | None) -> Discovery:
    skip = exclude.resolve() if exclude is not None else None
    paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
    paths = [p for p in paths if p.is_file() and not (skip and p.resolve().is_relative_to(skip))]
    if not paths:
        raise InputError(text, "the glob matches no files")
    return Discovery(_items_for(paths, _common_root(paths)), "glob")


def _from_file(path: Path, _text: str, _exclude: Path | None) -> Discovery:
    return Discovery(_items_for([path], path.parent), "file")


def _from_manifest(path: Path, _text: str, _exclude: Path | None) -> Discovery:
    rows = _MANIFEST_READERS[path.suffix.lower()](path)
    if not rows:
        raise InputError(path, "manifest has no rows")
    items = [_manifest_item(path, n, row) for n, row in enumerate(rows, start=1)]
    return Discovery(items, "manifest")


def _manifest_item(manifest: Path, n: int, row: dict) -> BatchItem:
    where = f"{manifest}: row {n}"
    raw = str(row.get("path") or "").strip()
    if not raw:
        raise InputError(where, "missing 'path'")
    if _CONTROL.search(raw):
        raise InputError(where, "'path' contains control characters (a NUL byte?)")
    doc = Path(raw).expanduser()
    doc = doc if doc.is_absolute() else manifest.parent / doc
    domain = str(row.get("domain") or "").strip().lower() or None
    if domain is not None and domain not in DOMAIN_CHOICES:
        raise InputError(where, f"unknown domain {domain!r}", "use one of " + ", ".join(DOMAIN_CHOICES))
    item_id = str(row.get("id") or "").strip() or _slug(doc.stem)
    extra = {k: "" if v is None else str(v) for k, v in row.items() if k not in ("path", "domain", "id")}
    return BatchItem(_safe_id(item_id, where), doc, domain, extra)


def manifest_text(path: Path) -> str:
    """The manifest's text: UTF-8 (BOM or not) or UTF-16 with a BOM; anything else is an error naming the byte."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read the manifest ({e.strerror or e})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(path, "manifest starts with a UTF-16 mark but is not UTF-16 text") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(path, f"manifest is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                         "save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
    if "\x00" in text:
        raise InputError(path, "manifest contains NUL bytes (binary data, not CSV/JSONL text)")
    return text


def _read_csv(path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(manifest_text(path), newline=""))
    try:
        names = reader.fieldnames
        if not names or "path" not in names:
            raise InputError(path, "manifest CSV needs a 'path' column")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InputError(path, f"column {twice[0]!r} appears more than once in the header")
        return list(reader)
    except csv.Error as e:
        raise InputError(path, f"manifest is not valid CSV ({e})") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        raise ValueError(f"key {twice!r} appears more than once")
    return dict(pairs)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(manifest_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}", f"not valid JSON ({e.msg})") from None
        except (ValueError, RecursionError) as e:
            raise InputError(f"{path}:{n}", f"not a usable JSON object ({str(e)[:80] or 'nested too deep'})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{n}", "each line must be a JSON object with a 'path'")
        rows.append(row)
    return rows


_MANIFEST_READERS: dict[str, Callable[[Path], list[dict]]] = {".csv": _read_csv, ".jsonl": _read_jsonl}

# Tried in order: the first whose test matches reads INPUT.
_SOURCES = (
    ("manifest", _is_manifest, _from_manifest),
    ("folder", _is_folder, _from_folder),
    ("glob", _is_glob, _from_glob),
    ("file", _is_file, _from_file),
)


def _items_for(paths: list[Path], root: Path) -> list[BatchItem]:
    """Ids from the path below `root` ('sub/a.pdf' -> 'sub__a'); clashes get '-2', '-3'..."""
    items, used = [], set()
    for p in paths:
        try:
            rel = Path(os.path.abspath(p)).relative_to(os.path.abspath(root))
        except ValueError:
            rel = Path(p.name)
        base = short_id(_slug("__".join([*rel.parent.parts, p.stem])))
        item_id, k = base, 2
        while item_id in used:
            item_id, k = f"{base}-{k}", k + 1
        used.add(item_id)
        items.append(BatchItem(item_id, p))
    return items


def _common_root(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([os.path.abspath(p.parent) for p in paths]))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "doc"


def _safe_id(item_id: str, where: str) -> str:
    """Ids name memo files, so they must be plain file names without control characters (shortened when long)."""
    if item_id in (".", "..") or "/" in item_id or "\\" in item_id or item_id.startswith("."):
        raise InputError(where, f"id {item_id!r} is not a plain file name")
    if _CONTROL.search(item_id):
        raise InputError(where, f"id {item_id!r} contains control characters (a NUL byte?)")
    return short_id(item_id)


def short_id(item_id: str) -> str:
    """`item_id`, or when its UTF-8 form is longer than MAX_ID_BYTES a prefix plus a hash of the whole: memo files
    (`<id>.html`) and their temporary names stay within the 255-byte file-name limit, and ids stay distinct."""
    if len(item_id.encode()) <= MAX_ID_BYTES:
        return item_id
    digest = hashlib.sha256(item_id.encode()).hexdigest()[:12]
    head = item_id.encode()[: MAX_ID_BYTES - 13].decode("utf-8", "ignore")
    return f"{head}-{digest}"


def _check_ids(items: list[BatchItem]) -> None:
    seen: dict[str, Path] = {}
    for it in items:
        if it.id in seen:
            raise UsageError(f"duplicate id {it.id!r} ({seen[it.id]} and {it.path}); give each row a unique 'id'")
        seen[it.id] = it.path
