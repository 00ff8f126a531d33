"""Loaders for public eval formats, on the real corpus files (skip when the corpus is absent)."""

from __future__ import annotations

import json

import pytest

from m3analyst.errors import InputError, UsageError
from m3analyst.evaluation.loaders import SET_LOADERS, load_set
from m3analyst.evaluation.normalize import EFFECT_LABELS
from m3analyst.evaluation.schema import read_eval_file


def test_registry_names():
    assert {"financebench", "cuad", "pubmedqa", "evidence-inference"} <= set(SET_LOADERS)


def test_financebench_dev(corpus):
    for root in (corpus, corpus / "finance"):  # corpus root or the finance folder itself
        items = load_set("financebench", "finance", root)
        assert sum(len(i.questions) for i in items) == 25
        assert all((root / i.document).is_file() for i in items)
    q = next(q for i in items for q in i.questions if q.answer == "$1577.00")
    raw = next(json.loads(x) for x in (corpus / "finance/financebench_dev.jsonl").open() if '"$1577.00"' in x)
    assert q.page == raw["evidence"][0]["evidence_page_num"] + 1  # zero-based -> 1-based
    assert q.kind == "numeric" and q.value == 1577 and q.scale == 1e6  # "(in USD millions)"
    kinds = {q.kind for i in items for q in i.questions}
    assert kinds == {"numeric", "yesno", "text"}
    pct = next(q for i in items for q in i.questions if q.answer == "30.8%")
    assert pct.value == 30.8 and pct.unit == "%"


def test_financebench_evidence_is_on_its_page(corpus):
    """The loader's page convention agrees with our PDF loader: the evidence is on the 1-based page."""
    from m3analyst.evaluation.normalize import evidence_in_text
    from m3analyst.ingest import load_document

    item = next(i for i in load_set("financebench", "finance", corpus) if "BESTBUY_2024Q2" in i.document)  # 30 pages
    doc = load_document(corpus / item.document)
    assert all(evidence_in_text(q.evidence, doc.page_text(q.page)) for q in item.questions)
    assert not evidence_in_text(item.questions[0].evidence, doc.page_text(item.questions[0].page % doc.n_pages + 1))


def test_cuad(corpus):
    items = load_set("cuad", "legal", corpus)
    assert len(items) == 200 and all(len(i.facts) == 41 for i in items)
    first = items[0]
    facts = {f.field: f for f in first.facts}
    assert facts["Agreement Date"].kind == "date" and facts["Agreement Date"].value == "2003-03-18"
    assert facts["Governing Law"].value == "Delaware"
    assert facts["Expiration Date"].value == "No"  # no clause -> an absent-clause label
    assert (corpus / first.document).is_file()
    # clause texts are in the contract text (the evidence we cite)
    text = (corpus / first.document).read_text(encoding="utf-8")
    assert facts["Governing Law"].evidence in text


def test_pubmedqa(corpus):
    items = load_set("pubmedqa", "bio", corpus)
    assert len(items) == 500
    it = items[0]
    assert it.context and it.document is None
    q = it.questions[0]
    assert q.kind == "yesno" and q.answer in ("yes", "no", "maybe") and q.labels == ["yes", "no", "maybe"]


def test_evidence_inference(corpus):
    items = load_set("evidence-inference", "bio", corpus)
    assert len(items) == 40 and sum(len(i.questions) for i in items) == 119
    labels = {q.answer for i in items for q in i.questions}
    assert labels <= set(EFFECT_LABELS)  # 'significantly increase' variants canonicalised
    it = items[0]
    text = (corpus / it.document).read_text(encoding="utf-8")
    assert all(q.evidence and " ".join(q.evidence.split()[:6]) in " ".join(text.split()) for q in it.questions)


def test_set_errors(corpus, tmp_path):
    with pytest.raises(UsageError, match="legal set"):
        load_set("cuad", "finance", corpus)
    with pytest.raises(InputError, match="no financebench file"):
        load_set("financebench", "finance", tmp_path)
    with pytest.raises(UsageError, match="unknown eval set"):
        load_set("nope", "finance", corpus)
    bad = tmp_path / "fb.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(InputError, match="fb.jsonl:1"):
        load_set(f"financebench={bad}", "finance", corpus)


@pytest.mark.parametrize("domain", ["finance", "legal", "bio"])
def test_our_eval_sets_validate(domain):
    """evals/<domain>.jsonl (written by the gold-data engineer) parse under the schema."""
    from m3analyst.resources import resource_dir

    path = resource_dir("evals") / f"{domain}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not written yet")
    items = read_eval_file(path, domain=domain)
    assert items
