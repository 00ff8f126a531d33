"""Property-based fuzzing (Hypothesis) over document bytes, names and manifests: only the expected errors, ever.

Bounded: a fixed number of small examples per property, no deadline, no example database, a few seconds in all.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from m3analyst.batch.discover import discover  # noqa: E402
from m3analyst.batch.report import _PLAIN_NUMBER, _cell  # noqa: E402
from m3analyst.commands.common import SafeConsole, safe  # noqa: E402
from m3analyst.errors import InputError, M3Error, printable  # noqa: E402
from m3analyst.ingest import load_document  # noqa: E402

FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HEADS = [b"", b"%PDF-1.4\n", b"<html><body>", b"<?xml version='1.0'?><html>", b"\xef\xbb\xbf", b"FORM 10-K\n"]
WORDS = st.sampled_from(["Agreement", "shall", "governed", "Delaware", "\n", "\n\n", "\f", " ", "<hr>", "<div>", "</div>",
                         "<td colspan='9'>", "[/]", "\x1b[31m", "\x00", "revenue", "$1,234", "(12)", "Item 7.", "ABSTRACT"])


def _load(data: bytes, suffix: str = ".txt"):
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / f"doc{suffix}"
        f.write_bytes(data)
        try:
            doc = load_document(f)
        except InputError as e:
            assert str(f) in str(e)  # every error names the file
            return None
    assert doc.text.strip() and "\x1b" not in doc.text and "\x00" not in doc.text
    return doc


@FUZZ
@given(head=st.sampled_from(HEADS), body=st.binary(max_size=3000))
def test_any_bytes_load_or_give_an_input_error(head, body):
    _load(head + body)


@FUZZ
@given(head=st.sampled_from(HEADS), parts=st.lists(WORDS, max_size=200))
def test_document_like_text_loads_or_gives_an_input_error(head, parts):
    _load(head + "".join(parts).encode("utf-8"))


@settings(max_examples=20, deadline=None, database=None, derandomize=True)
@given(text=st.text(max_size=60))
def test_any_string_prints_without_markup_errors_or_controls(text):
    c = SafeConsole(file=io.StringIO(), width=100)
    c.print(text)
    c.print(f"[bold]x[/] {safe(text)}", markup=True)
    out = c.file.getvalue()
    assert "\x1b" not in out and "\x07" not in out
    assert not any(ch in printable(text) for ch in "\x00\x1b\x9b\r")


@FUZZ
@given(value=st.text(max_size=40))
def test_csv_cells_never_start_a_formula(value):
    cell = _cell(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or _PLAIN_NUMBER.fullmatch(cell)


@FUZZ
@given(suffix=st.sampled_from([".csv", ".jsonl"]), body=st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(["path", "id", "domain", ",", "\n", "c.txt", "\x00", "\"", "{", "}", ":", "\"path\"",
                              "\"c.txt\"", "[/]", "é", "=1+2", "../x", "i" * 300]), max_size=60).map(lambda p: "".join(p).encode())))
def test_any_manifest_reads_or_gives_a_clear_error(suffix, body):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.txt").write_text("This Agreement is governed by the laws of Delaware.")
        m = Path(tmp) / f"m{suffix}"
        m.write_bytes(body)
        try:
            found = discover(str(m))
        except M3Error:
            return
        for it in found.items:
            assert "/" not in it.id and len(it.id.encode()) <= 120 and "\x00" not in str(it.path)
