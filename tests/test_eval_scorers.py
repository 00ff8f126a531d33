"""Scorers and value normalisation on hand-made (tricky) cases. No model, no corpus."""

from __future__ import annotations

import pytest

from m3analyst.evaluation.normalize import (
    EFFECT_LABELS,
    YESNO,
    evidence_in_text,
    normalize_label,
    number_matches,
    parse_date,
    parse_number,
    parse_quantities,
    text_matches,
    text_states_number,
)
from m3analyst.evaluation.schema import EvalItem
from m3analyst.evaluation.scorers import (
    PredAnswer,
    PredFact,
    Prediction,
    aggregate,
    metric_values,
    score_item,
)
from m3analyst.ingest import Document


# ---- numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, value, scale, percent",
    [
        ("(1,234)", -1234, None, False),
        ("$(1,234)", -1234, None, False),
        ("-$5m", -5, 1e6, False),
        ("$1.2 billion", 1.2, 1e9, False),
        ("1.2bn", 1.2, 1e9, False),
        ("12.5%", 12.5, None, True),
        ("12.5 percent", 12.5, None, True),
        ("US$ 1,234.56", 1234.56, None, False),
        ("40 thousand", 40, 1e3, False),
        ("\u22123.5", -3.5, None, False),
    ],
    ids=lambda x: str(x),
)
def test_parse_number(text, value, scale, percent):
    q = parse_number(text)
    assert q is not None
    assert q.value == pytest.approx(value) and q.scale == scale and q.percent == percent


def test_numbers_inside_words_and_years_are_not_amounts():
    assert parse_quantities("FY2018 and Q2 and COVID-19") == []
    assert parse_number("Item 1B").scale is None  # a lone letter is a scale only after $ or with decimals
    assert parse_number("In 2018 capex was $1,577 million").value == 1577  # years skipped for the first amount


def test_scale_words_compare_absolute():
    # "$1.2 billion" vs gold 1,200 in millions
    assert number_matches(parse_number("$1.2 billion"), 1200, 1e6)
    # rounding-aware: $1.2 billion is 1,234 million rounded at its precision; $1.3 billion is not
    assert number_matches(parse_number("$1.2 billion"), 1234, 1e6)
    assert not number_matches(parse_number("$1.3 billion"), 1234, 1e6)
    # a bare number is also tried at the gold's scale (tables "in millions")
    assert number_matches(parse_number("1,200"), 1200, 1e6)
    # ... but a stated wrong scale is wrong
    assert not number_matches(parse_number("$1,200 thousand"), 1200, 1e6)
    assert not number_matches(parse_number("1.2 million"), 1.2, 1e9)


def test_parentheses_are_negative():
    assert number_matches(parse_number("(1,234)"), -1234, 1)
    assert not number_matches(parse_number("(1,234)"), 1234, 1)


def test_relative_tolerance_and_zero():
    assert number_matches(parse_number("100.9"), 100, 1, tolerance=0.01)
    assert not number_matches(parse_number("101.1"), 100, 1, tolerance=0.01)
    assert number_matches(parse_number("0"), 0, 1)
    assert not number_matches(parse_number("0.001"), 0, 1)


def test_percent_rules():
    assert number_matches(parse_number("12.5%"), 12.5, gold_percent=True)
    assert number_matches(parse_number("0.125"), 12.5, gold_percent=True)  # fraction tried x100
    assert not number_matches(parse_number("12.5%"), 0.125, 1)  # % never matches a non-% gold
    assert not number_matches(parse_number("12.5 million"), 12.5, gold_percent=True)
    assert text_states_number("The gross margin fell to 30.8% in FY2023", 30.8, gold_percent=True)


# ---- labels, text, dates, evidence -----------------------------------------------------------

@pytest.mark.parametrize(
    "text, gold",
    [
        ("Yes, it did.", "yes"),
        ("No.", "no"),
        ("MAYBE - the evidence is mixed", "maybe"),
        ("Nothing definite", None),
    ],
)
def test_yesno(text, gold):
    assert normalize_label(text, YESNO) == gold


@pytest.mark.parametrize(
    "text, gold",
    [
        ("Significantly increased.", "significantly increased"),
        ("significantly increase", "significantly increased"),  # a variant in the Evidence Inference data
        ("There was no significant difference between arms", "no significant difference"),
        ("The intervention significantly reduced pain scores", "significantly decreased"),
        ("not significant (p = 0.4)", "no significant difference"),
        ("unclear", None),
    ],
)
def test_effect_labels(text, gold):
    assert normalize_label(text, EFFECT_LABELS) == gold


def test_text_match_and_dates():
    assert text_matches("This Agreement is governed by the laws of the State of Delaware.", "Delaware")
    assert not text_matches("New York", "Delaware")
    assert parse_date("3/18/03").isoformat() == "2003-03-18"
    assert parse_date("effective as of March 3, 2003") == parse_date("2003-03-03")
    assert parse_date("the 5th day of June, 2001").isoformat() == "2001-06-05"
    assert parse_date("no date here") is None


def test_evidence_in_text_normalises_layout():
    page = "Net sales\n$\n32,765 \n$ 31,657\nCost of sales 16,682 and other lines of the state-\nment follow"
    assert evidence_in_text("net sales $ 32,765", page)
    assert evidence_in_text("of the statement follow", page)  # hyphenation across a line break
    assert not evidence_in_text("Net sales $ 99,999", page)


# ---- item scorers ----------------------------------------------------------------------------

def _item(**kw) -> EvalItem:
    base = {"id": "t/1", "domain": "finance", "document": "x.pdf"}
    return EvalItem.model_validate(base | kw)


def _doc() -> Document:
    return Document.from_pages(["cover page", "Net sales $ 32,765 $ 31,657", "Purchases of PP&E (1,577)"])


FACTS = [
    {"field": "revenue", "value": 32765, "unit": "USD", "scale": 1e6, "period": "FY2018", "page": 2,
     "evidence": "Net sales $ 32,765"},
    {"field": "revenue", "value": 31657, "unit": "USD", "scale": 1e6, "period": "FY2017", "page": 2,
     "evidence": "Net sales $ 32,765 $ 31,657"},
    {"field": "capex", "value": -1577, "unit": "USD", "scale": 1e6, "period": "FY2018", "page": 3,
     "evidence": "Purchases of PP&E (1,577)"},
]


def test_fact_recall_precision_and_citations():
    item = _item(facts=FACTS)
    pred = Prediction(
        facts=[
            PredFact("Revenue", 32.765e9, "USD", 1e6, "FY2018", page=2),  # memo numbers are multiplied out; right page
            PredFact("revenue", "$31,000 million", "USD", None, "fiscal 2017", page=1),  # wrong value
            PredFact("capex", "(1,577)", "USD", 1e6, "FY2018", page=1),  # text value at the printed scale; wrong page
            PredFact("ceo_name", "Someone", page=1),  # no gold field -> not in precision
        ],
        doc=_doc(),
        has_memo=True,
    )
    s = score_item(item, pred)
    assert (s.metrics["fact_recall"].num, s.metrics["fact_recall"].den) == (2, 3)
    assert (s.metrics["fact_precision"].num, s.metrics["fact_precision"].den) == (2, 3)
    # citations scored for correctly valued facts: revenue p.2 right, capex p.1 wrong
    assert (s.metrics["citation_accuracy"].num, s.metrics["citation_accuracy"].den) == (1, 2)


def test_period_mismatch_is_wrong():
    item = _item(facts=FACTS[:1])
    pred = Prediction(facts=[PredFact("revenue", 32765e6, "USD", 1e6, "FY2017")], has_memo=True)
    assert score_item(item, pred).metrics["fact_recall"].num == 0


@pytest.mark.parametrize(
    "gold, pred, ok",
    [
        ("FY2018", "2018", True),
        ("FY2023", "January 28, 2023", True),  # a fiscal year named by its end date
        ("FY2018", "FY2017", False),
        ("Q2 FY2024 (three months ended 2023-07-29)", "three months to July 29, 2023", True),
        ("Q2 FY2024 (three months ended 2023-07-29)", "six months to July 29, 2023", False),
        ("2023-07-29", "January 28, 2023", False),  # two balance-sheet dates
        ("2023-07-29", "July 29, 2023", True),
        ("FY2023", None, True),
    ],
)
def test_period_compatibility(gold, pred, ok):
    from m3analyst.evaluation.scorers import period_compatible

    assert period_compatible(gold, pred) is ok


def test_precision_ignores_periods_without_gold():
    item = _item(facts=[{"field": "revenue", "value": 9583, "scale": 1e6, "period": "Q2 FY2024 (three months ended 2023-07-29)",
                         "page": 2, "evidence": "Net sales"}])
    pred = Prediction(facts=[PredFact("revenue", 9583e6, "USD", 1e6, "three months to July 29, 2023"),
                             PredFact("revenue", 19050e6, "USD", 1e6, "six months to July 29, 2023")], has_memo=True)
    s = score_item(item, pred)
    assert s.metrics["fact_precision"].value == 1.0 and s.metrics["fact_precision"].den == 1


def test_no_memo_scores_zero_recall():
    s = score_item(_item(facts=FACTS), Prediction())
    assert s.metrics["fact_recall"].value == 0 and "fact_precision" not in s.metrics


QUESTIONS = [
    {"id": "capex", "question": "Capex FY2018 in USD millions?", "answer": "$1,577", "kind": "numeric",
     "value": 1577, "scale": 1e6, "page": 3, "evidence": "Purchases of PP&E (1,577)"},
    {"id": "grew", "question": "Did sales grow?", "answer": "Yes", "kind": "yesno", "page": 2,
     "evidence": "Net sales $ 32,765 $ 31,657"},
    {"id": "eff", "question": "Effect?", "answer": "no significant difference", "kind": "label",
     "labels": list(EFFECT_LABELS), "page": 2, "evidence": "Net sales"},
    {"id": "law", "question": "Governing law?", "answer": "Delaware", "kind": "text", "page": 1, "evidence": "cover"},
]


def test_qa_accuracy_and_answer_citations():
    item = _item(questions=QUESTIONS)
    pred = Prediction(
        answers={
            "capex": PredAnswer("In FY2018 capex was $1.577 billion [p.3]", citations=[3]),
            "grew": PredAnswer("Yes - net sales rose [p.2].", citations=[1, 2]),
            "eff": PredAnswer("Significantly increased", citations=[1]),
            # "law" unanswered
        },
        doc=_doc(),
    )
    s = score_item(item, pred)
    assert (s.metrics["qa_accuracy"].num, s.metrics["qa_accuracy"].den) == (2, 4)
    assert (s.metrics["citation_accuracy"].num, s.metrics["citation_accuracy"].den) == (2, 3)


def test_quoted_passage_is_not_a_label_answer():
    item = _item(questions=QUESTIONS[1:2])
    said = PredAnswer("\u201cNo other party shall ... net sales rose\u201d [p.2]", citations=[2], source="passage")
    assert score_item(item, Prediction(answers={"grew": said})).metrics["qa_accuracy"].num == 0
    said.source = "engine"
    said.text = "Yes [p.2]"
    assert score_item(item, Prediction(answers={"grew": said})).metrics["qa_accuracy"].num == 1


def test_numeric_answer_uses_structured_value():
    item = _item(questions=QUESTIONS[:1])
    assert score_item(item, Prediction(answers={"capex": PredAnswer("see table", value=1577e6)})).metrics["qa_accuracy"].num == 1
    assert score_item(item, Prediction(answers={"capex": PredAnswer("see table", value=1577)})).metrics["qa_accuracy"].num == 1
    assert score_item(item, Prediction(answers={"capex": PredAnswer("about 1,700", value=None)})).metrics["qa_accuracy"].num == 0


def test_sections_and_grounding():
    item = _item(facts=FACTS[:1], sections=["Financial performance", "Risks", "Liquidity"])
    pred = Prediction(sections=["Overview", "Financial Performance", "Key risks"],
                      grounding={"unsupported_claims": 1, "claims": 4, "grounding_score": 0.75}, has_memo=True)
    s = score_item(item, pred)
    assert (s.metrics["section_coverage"].num, s.metrics["section_coverage"].den) == (2, 3)
    assert s.metrics["unsupported_claim_rate"].value == pytest.approx(0.25)
    # without a claim count: share of generated characters the verifier could not verify
    pred.grounding = {"generated_chars": 400, "verified_chars": 300, "unsupported_claims": 2}
    assert score_item(item, pred).metrics["unsupported_claim_rate"].value == pytest.approx(0.25)
    pred.grounding = {"generated_chars": 0, "verified_chars": 0}  # nothing generated: no rate
    assert "unsupported_claim_rate" not in score_item(item, pred).metrics


def test_cuad_clause_detection_per_category():
    facts = [
        {"field": "Governing Law", "value": "Delaware", "page": 1, "evidence": "laws of Delaware"},
        {"field": "Non-Compete", "value": "Yes", "page": 1, "evidence": "shall not compete"},
        {"field": "Audit Rights", "value": "No", "page": 1, "evidence": "Audit Rights"},
        {"field": "Insurance", "value": "No", "page": 1, "evidence": "Insurance"},
    ]
    item = _item(domain="legal", facts=facts)
    pred = Prediction(facts=[PredFact("governing_law", "State of Delaware"), PredFact("audit_rights", "Yes"),
                             PredFact("insurance", "No")], has_memo=True)
    s = score_item(item, pred)
    assert s.categories["governing_law"] == {"tp": 1, "fp": 0, "fn": 0}
    assert s.categories["non_compete"] == {"tp": 0, "fp": 0, "fn": 1}
    assert s.categories["audit_rights"] == {"tp": 0, "fp": 1, "fn": 0}
    assert s.categories["insurance"] == {"tp": 0, "fp": 0, "fn": 0}
    total, per_cat = aggregate([s, s])
    vals = metric_values(total)
    assert vals["clause_precision"] == pytest.approx(0.5) and vals["clause_recall"] == pytest.approx(0.5)
    assert vals["clause_f1"] == pytest.approx(0.5)
    assert per_cat["governing_law"]["f1"] == 1.0 and per_cat["non_compete"]["recall"] == 0.0
    # absent-clause labels are clause negatives, not facts to recall: recall is over 2 facts
    assert s.metrics["fact_recall"].den == 2 and s.metrics["fact_recall"].num == 1


def test_micro_average_weights_by_count():
    a = score_item(_item(questions=QUESTIONS[:1]), Prediction(answers={"capex": PredAnswer("1,577")}))
    b = score_item(_item(questions=QUESTIONS), Prediction())
    total, _ = aggregate([a, b])
    assert metric_values(total)["qa_accuracy"] == pytest.approx(1 / 5)


def test_legal_names_map_through_the_domain_spec():
    """Gold CUAD category names meet the memo's spec fact names (domains/legal/spec.yaml `cuad:` aliases)."""
    facts = [
        {"field": "Notice Period To Terminate Renewal", "value": "90 days", "page": 1, "evidence": "ninety days"},
        {"field": "Non-Compete", "value": "Yes", "page": 1, "evidence": "shall not compete"},
    ]
    item = _item(domain="legal", facts=facts)
    pred = Prediction(facts=[PredFact("notice_to_terminate_renewal", "at least 90 days before the end of the term"),
                             PredFact("non_compete", "Distributor shall not sell competing products.")],
                      has_memo=True)
    s = score_item(item, pred)
    assert s.metrics["fact_recall"].value == 1.0  # clause text for a Yes category counts as Yes
    assert s.categories["notice_to_terminate_renewal"]["tp"] == 1 and s.categories["non_compete"]["tp"] == 1


def test_citations_not_scored_on_one_page_documents():
    item = _item(questions=QUESTIONS[:1])
    pred = Prediction(answers={"capex": PredAnswer("1,577 [p.1]", citations=[1])}, doc=Document.from_pages(["all text"]))
    assert "citation_accuracy" not in score_item(item, pred).metrics
