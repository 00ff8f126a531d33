"""Hostile-input guards for ingest: what may be read, how much, and whether anything usable came out.

- `read_source(path, limits)`: only a regular file is read (a FIFO, device, socket or directory is refused before
  any read, so `/dev/zero` or a pipe never blocks or fills memory), and at most `limits.max_file_mb`.
- `check_pages(path, texts)`: the extracted text against the page, line-length and paragraph limits, in one linear
  pass, and refused when it is mostly binary noise (control or replacement characters: random bytes behind a header). Loaders call it before analysis; `active_limits()` gives the limits of the `load_document` call in progress.
- `clean_text(text)`: control characters (ANSI escapes included) become spaces, so no document text can drive a
  terminal; newlines, tabs and form feeds stay.
- `check_content(path, text, has_tables)`: a document with no words, tables or facts is an error naming the file,
  never an empty memo with perfect grounding.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from m3analyst.errors import InputError
from m3analyst.io import file_kind
from m3analyst.settings import LimitsSettings

_LIMITS: ContextVar[LimitsSettings | None] = ContextVar("m3analyst_ingest_limits", default=None)
_CONTROLS = {c: " " for c in [*range(0, 9), 11, *range(14, 32), 127, *range(0x80, 0xA0)]}  # keeps \t \n \f \r
_WORD = re.compile(r"[^\W\d_]{2,}")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
NOISE_SHARE = 0.10  # share of control / replacement characters past which a text is binary noise
NOISE_SAMPLE = 200_000  # characters sampled (start, middle, end) for the noise share


def active_limits() -> LimitsSettings:
    return _LIMITS.get() or LimitsSettings()


@contextlib.contextmanager
def limits_in_force(limits: LimitsSettings | None) -> Iterator[LimitsSettings]:
    token = _LIMITS.set(limits or LimitsSettings())
    try:
        yield _LIMITS.get()
    finally:
        _LIMITS.reset(token)


def read_source(path: Path, limits: LimitsSettings) -> bytes:
    """The bytes of a regular file within the size limit; `InputError` otherwise (checked before reading)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot read file ({e.strerror or e})") from None
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise InputError(path, f"is {kind}, not a document file")
    cap = int(limits.max_file_mb * 2**20)
    if st.st_size > cap:
        raise InputError(path, f"file is {st.st_size / 2**20:,.1f} MB, over the limit of {limits.max_file_mb:g} MB",
                         "raise limits.max_file_mb to read it")
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise InputError(path, f"cannot read file ({e.strerror or e})") from None
    if len(data) > cap:  # grew while being read
        raise InputError(path, f"file is over the limit of {limits.max_file_mb:g} MB", "raise limits.max_file_mb")
    return data


def check_page_count(path: Path, n_pages: int) -> None:
    limit = active_limits().max_pages
    if n_pages > limit:
        raise InputError(path, f"document has {n_pages:,} pages, over the limit of {limit:,}", "raise limits.max_pages")


def check_pages(path: Path, texts: list[str]) -> None:
    """Page count, longest line and paragraph count of the extracted text against the active limits (linear)."""
    limits = active_limits()
    check_page_count(path, len(texts))
    if noise_share("\n".join(_sample(t) for t in texts[:50])) > NOISE_SHARE:
        raise InputError(path, "content is binary data, not readable text (a damaged or mislabelled file?)")
    paragraphs = 0
    for number, text in enumerate(texts, 1):
        longest = max(map(len, text.split("\n")), default=0)
        if longest > limits.max_line_chars:
            raise InputError(path, f"page {number} has a line of {longest:,} characters, over the limit of "
                             f"{limits.max_line_chars:,}", "raise limits.max_line_chars, or add line breaks")
        paragraphs += sum(1 for block in _BLANK_LINE.split(text) if not block.isspace() and block)
        if paragraphs > limits.max_paragraphs:
            raise InputError(path, f"document has more than {limits.max_paragraphs:,} paragraphs (the limit)",
                             "raise limits.max_paragraphs")


def clean_text(text: str) -> str:
    """Control characters (C0 but tab, newline, form feed and CR; DEL; C1) as spaces; same length."""
    return text.translate(_CONTROLS)


def _sample(text: str) -> str:
    if len(text) <= NOISE_SAMPLE:
        return text
    third, mid = NOISE_SAMPLE // 3, len(text) // 2
    return text[:third] + text[mid - third // 2 : mid + third // 2] + text[-third:]


def noise_share(text: str) -> float:
    """Share of control and U+FFFD replacement characters (what random bytes decode to) in a sample of `text`."""
    sample = _sample(text)
    if not sample:
        return 0.0
    bad = sum(1 for c in sample if c == "\ufffd" or (ord(c) < 32 and c not in "\t\n\f\r") or 0x7F <= ord(c) < 0xA0)
    return bad / len(sample)


def check_content(path: Path, text: str, has_tables: bool) -> None:
    """Refuse a document with no words and no tables or facts."""
    if not has_tables and _WORD.search(text) is None:
        raise InputError(path, "no text or facts found (empty, whitespace or symbols only)")
