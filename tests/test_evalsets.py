"""The project's own gold sets (evals/finance.jsonl, legal.jsonl, bio.jsonl) against their documents.

Schema checks run anywhere. The important checks need the real corpus (../shared/corpus) and skip
without it: every gold evidence string really occurs on its page of the ingested Document
(`doc.locate(evidence, page=...)`), and every gold number is written in its evidence, so a wrong
page or a mistyped value fails here instead of silently poisoning later scores.

Each document is loaded once per module. PDF statement-table extraction (pdfplumber) is switched
off while loading: it only adds `doc.tables` and never changes page text, and it would make this
module take minutes instead of seconds.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from m3analyst.evaluation.schema import EvalItem, read_eval_file

EVALS = Path(__file__).resolve().parents[1] / "evals"
SETS = ("finance", "legal", "bio")
EI_LABELS = {"significantly increased", "significantly decreased", "no significant difference"}


def _items(domain: str) -> list[EvalItem]:
    return read_eval_file(EVALS / f"{domain}.jsonl", domain=domain)


ALL = [(d, it) for d in SETS for it in _items(d)]


# ---- numbers as printed ---------------------------------------------------------------------
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_WORD_NUM = re.compile(r"\b(" + "|".join(_TENS) + r")(?:[- ](" + "|".join(_UNITS[1:10]) + r"))?\b|\b(" + "|".join(_UNITS) + r")\b", re.I)
_NUM = re.compile(r"\d[\d,]*(?:[.·]\d+)?|[.·]\d+")


def numbers_in(text: str) -> set[float]:
    """Absolute values of the numbers written in `text`: '1,234', '(1,577)', '1·06' (Lancet's middle
    dot), '.42', and number words up to ninety-nine ('Sixty', 'Twenty-two')."""
    out = {float(m.group(0).replace(",", "").replace("·", ".")) for m in _NUM.finditer(text)}
    for m in _WORD_NUM.finditer(text):
        if m.group(3):
            out.add(float(_UNITS.index(m.group(3).lower())))
        else:
            out.add(float(_TENS[m.group(1).lower()] + (_UNITS.index(m.group(2).lower()) if m.group(2) else 0)))
    return out


def test_numbers_in_reads_printed_forms():
    assert {1577.0, 1373.0} <= numbers_in("Purchases of PP&E (1,577) (1,373)")
    assert 1.06 in numbers_in("relative risk [RR] 1·06, 95% CI")
    assert 0.42 in numbers_in("Cohen d = .42")
    assert {60.0, 22.0} <= numbers_in("Sixty patients; Twenty-two patients")
    assert 8.89 not in numbers_in("$ 8.8 $ 9")


# ---- schema (no corpus needed) --------------------------------------------------------------
@pytest.mark.parametrize("domain", SETS)
def test_set_reads_and_has_volume(domain):
    items = _items(domain)
    minimum = {"finance": 10, "legal": 15, "bio": 10}[domain]
    assert len(items) >= minimum
    assert all(it.document for it in items), "gold items point at corpus documents"
    assert all(it.facts and it.sections for it in items)


def test_item_ids_unique_across_sets():
    ids = [it.id for _, it in ALL]
    assert len(ids) == len(set(ids))


def test_every_gold_value_has_page_and_evidence():
    for _, it in ALL:
        for g in [*it.facts, *it.questions]:
            assert g.page is not None and g.page >= 1, (it.id, g)
            assert g.evidence.strip(), (it.id, g)


def test_finance_facts_cover_both_periods():
    core = {"revenue", "net_income", "total_assets", "eps_diluted"}
    for it in _items("finance"):
        periods = {f.period for f in it.facts if f.field == "revenue"}
        assert len(periods) == 2, it.id
        for field in core:
            assert len([f for f in it.facts if f.field == field]) == 2, (it.id, field)


def test_legal_fields_are_cuad_categories(corpus):
    """Field names are CUAD categories (as spelled in cuad_annotations.jsonl; the scorers compare
    normalised names, so 'Cap On Liability' = 'Cap on Liability' of category_descriptions.csv)."""
    from m3analyst.evaluation.normalize import normalize_name

    with open(corpus / "legal" / "category_descriptions.csv", encoding="utf-8-sig") as fh:
        cats = {normalize_name(row[0].removeprefix("Category: ")) for row in csv.reader(fh)}
    for it in _items("legal"):
        for f in it.facts:
            assert normalize_name(f.field) in cats, (it.id, f.field)


def test_bio_label_questions_match_evidence_inference(corpus):
    """Questions seeded from Evidence Inference keep the (unanimous) expert label and its evidence."""
    gold = {}
    for line in (corpus / "bio" / "evidence_inference_gold.jsonl").read_text(encoding="utf-8").splitlines():
        for p in json.loads(line)["prompts"]:
            gold[p["prompt_id"]] = p["annotations"]
    n = 0
    for it in _items("bio"):
        for q in it.questions:
            if q.kind == "label":
                assert q.answer.split(" (")[0] in EI_LABELS, (it.id, q.id)
            if q.id.startswith("ei-"):
                anns = gold[q.id.removeprefix("ei-")]
                assert {a["label"] for a in anns} == {q.answer}, (it.id, q.id)
                assert q.evidence in {a["evidence_text"] for a in anns}
                n += 1
    assert n >= 10


# ---- against the documents --------------------------------------------------------------------
@pytest.fixture(scope="module")
def docs(request):
    from m3analyst.resources import corpus_dir

    root = corpus_dir()
    if not root.is_dir():
        pytest.skip(f"real-document corpus not found at {root} (expected ../shared/corpus beside the repo)")
    import m3analyst.ingest.pdf_tables as pdf_tables
    from m3analyst.ingest import load_document

    cache: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pdf_tables, "add_statement_tables", lambda doc, path, data: None)
        for _, it in ALL:
            if it.document not in cache:
                cache[it.document] = load_document(root / it.document)
    return cache


@pytest.mark.parametrize("domain", SETS)
def test_evidence_is_on_its_page(docs, domain):
    problems = []
    for it in _items(domain):
        doc = docs[it.document]
        for g in [*it.facts, *it.questions]:
            name = getattr(g, "field", None) or g.id
            if not doc.has_page(g.page):
                problems.append(f"{it.id} {name}: page {g.page} > {doc.n_pages} pages")
            elif not doc.locate(g.evidence, page=g.page):
                where = sorted({p.page for p in doc.locate(g.evidence)})[:5]
                problems.append(f"{it.id} {name}: not on p.{g.page} (found on {where}): {g.evidence[:60]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("domain", SETS)
def test_gold_numbers_are_written_in_their_evidence(docs, domain):
    """A numeric fact's value is one of the numbers in its evidence. A numeric question's value is in
    its evidence, or, for a derived answer ('30.8% (= 177,866 / 135,987 - 1)'), every operand after
    '=' is printed on the cited page."""
    problems = []
    for it in _items(domain):
        doc = docs[it.document]
        for f in it.facts:
            if f.kind == "number" and abs(float(f.value)) not in numbers_in(f.evidence):
                problems.append(f"{it.id} fact {f.field} {f.period}: {f.value} not in {f.evidence!r}")
        for q in it.questions:
            if q.kind != "numeric":
                continue
            if "=" in q.answer:
                page_numbers = numbers_in(doc.page_text(q.page))
                operands = numbers_in(q.answer.split("=", 1)[1]) - {1.0, 100.0}
                missing = sorted(operands - page_numbers)
                if missing or not operands:
                    problems.append(f"{it.id} question {q.id}: operands {missing} not on p.{q.page}")
            elif abs(q.value) not in numbers_in(q.evidence):
                problems.append(f"{it.id} question {q.id}: {q.value} not in {q.evidence!r}")
    assert not problems, "\n".join(problems)


def test_derived_finance_answers_recompute():
    """Derived answers state their arithmetic; the stored value must be what that arithmetic gives."""
    for it in _items("finance"):
        for q in it.questions:
            if "=" not in q.answer:
                continue
            expr = q.answer.split("=", 1)[1].strip().rstrip(")").replace(",", "")
            got = eval(expr, {"__builtins__": {}})  # noqa: S307 - arithmetic on our own committed file
            if q.unit == "%":
                got *= 100
            assert abs(got - q.value) <= 0.01 * abs(q.value), (it.id, q.id, got, q.value)
