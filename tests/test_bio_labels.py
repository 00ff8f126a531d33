"""Label questions always get a label (memo/labels.py): rules model-free; the model as a reader is a slow test."""

from __future__ import annotations

import json
import math

import pytest

from m3analyst.domains import load_domain
from m3analyst.ingest.model import Document
from m3analyst.memo.ask import answer_question
from m3analyst.memo.effect import LABELS as EFFECT_LABELS
from m3analyst.memo.labels import YESNO, LabelAnswer, label_set
from m3analyst.settings import Settings


def _free() -> Settings:
    s = Settings()
    s.engine.model = "none"
    return s


def test_label_set_from_the_spec():
    bio, finance = load_domain("bio"), load_domain("finance")
    assert label_set(bio, "Does aspirin reduce mortality after stroke?") == YESNO
    assert label_set(bio, "Statins: do they prevent dementia?") == YESNO
    assert label_set(bio, "What was the primary outcome?") is None
    assert label_set(bio, "Compared with placebo, did X significantly increase, significantly decrease, or make no "
                          "significant difference to pain?") == EFFECT_LABELS
    assert label_set(finance, "Does 3M have a healthy liquidity profile?") is None  # the finance spec declares no yes/no labels


YES_DOC = ("Mortality at 30 days was significantly lower with aspirin than with placebo (8% vs 12%, p = 0.002). "
           "Recurrent stroke was also significantly reduced (p < 0.01).")
NO_DOC = ("Mortality at 30 days did not differ between aspirin and placebo (8% vs 9%, p = 0.61). "
          "There was no significant difference in recurrent stroke (p = 0.44).")


@pytest.mark.parametrize("text, gold", [(YES_DOC, "yes"), (NO_DOC, "no")])
def test_yesno_from_significance_statements(text, gold):
    a = answer_question(Document.from_pages([text]), "Does aspirin reduce mortality after stroke?", _free(), domain="bio")
    assert isinstance(a, LabelAnswer) and a.label == gold and a.text.startswith(gold)
    assert a.source == "rules" and a.reason and a.evidence and a.evidence[0].page == 1 and 0 < a.confidence <= 1
    assert set(a.scores["rules"]) == set(YESNO)


def test_dev_questions_never_get_a_passage_alone(corpus):
    """PubMedQA (first 40 of the dev set) and Evidence Inference (2 trials): every label question gets a label."""
    from m3analyst.evaluation.loaders import load_set
    from m3analyst.evaluation.harness import load_item_document

    items = load_set("pubmedqa", "bio", corpus / "bio")[:40] + load_set("evidence-inference", "bio", corpus / "bio")[:2]
    for it in items:
        doc = load_item_document(it, corpus / "bio")
        for q in it.questions:
            a = answer_question(doc, q.question, _free(), domain="bio")
            assert a.source != "passage", q.question
            assert isinstance(a, LabelAnswer) and a.label in tuple(q.labels), (q.question, a.text[:120])


@pytest.mark.slow
def test_model_scores_each_label_after_one_prefill(corpus):
    from m3analyst.engine import load_engine
    from m3analyst.memo.labels import ModelReader

    row = next(iter(json.loads((corpus / "bio" / "pubmedqa" / "pqal_dev.json").read_text()).values()))
    doc = Document.from_pages(["\n\n".join(row["CONTEXTS"])])
    eng = load_engine(Settings().engine)
    reader = ModelReader(eng, doc, load_domain("bio"), [], Settings())
    lp = reader.scores(row["QUESTION"], YESNO)
    assert set(lp) == set(YESNO) and all(math.isfinite(v) and v < 0 for v in lp.values())
    a = answer_question(doc, row["QUESTION"], Settings(), eng, domain="bio")
    assert a.source == "rules+model" and a.scores["model_lp"] and a.label in YESNO
