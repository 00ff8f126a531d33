"""The parsed-document cache (ingest/cache.py): a PDF is parsed once; the cached Document is the parsed one."""

from __future__ import annotations

import shutil

import pytest

from m3analyst.ingest import cache, load_document

SRC = "finance/BESTBUY_2024Q2_10Q.pdf"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The cache on, under a temporary $M3ANALYST_HOME; returns its documents folder."""
    monkeypatch.setenv("M3ANALYST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(cache.ENV, "1")
    return tmp_path / "home" / "documents"


def test_a_pdf_is_parsed_once_and_loads_the_same(corpus, home, tmp_path, monkeypatch):
    src = corpus / SRC
    first = load_document(src)
    stored = list(home.glob("*.json"))
    assert [p.name for p in stored] == [f"{first.metadata.sha256}-{cache.fingerprint()}.json"]

    from m3analyst.ingest import formats as registry

    def no_parse(path, data):
        raise AssertionError("parsed again")

    monkeypatch.setitem(registry._LOADERS, "pdf", no_parse)
    copy = tmp_path / "renamed.pdf"
    shutil.copy(src, copy)
    again = load_document(copy)  # same bytes under another name: from the cache, with its own path
    assert again.metadata.source == str(copy) and again.metadata.sha256 == first.metadata.sha256
    first.metadata.source = again.metadata.source
    assert again.to_json() == first.to_json()

    monkeypatch.setenv(cache.ENV, "0")  # off: parsed (here: the patched loader refuses)
    with pytest.raises(AssertionError, match="parsed again"):
        load_document(copy)


def test_a_damaged_entry_is_parsed_afresh_and_replaced(corpus, home):
    src = corpus / SRC
    doc = load_document(src)
    entry = next(home.glob("*.json"))
    entry.write_text("{not json")
    assert load_document(src).to_json() == doc.to_json()
    assert entry.read_text().startswith('{"format"')


def test_html_and_text_are_not_cached(home, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("A short memo about nothing in particular, long enough to be a document.")
    load_document(note)
    assert not home.exists() or not list(home.glob("*"))
