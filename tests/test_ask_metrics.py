"""Issue 17: question typing, the metric calculator, judgements and explanation answers (model-free, real filings)."""

from __future__ import annotations

import json
import re

import pytest
from test_trend import _load, no_model  # noqa: F401 - the model-free settings fixture and the cached loader

from m3analyst.memo.ask import answer_question, answer_questions, question_type


@pytest.mark.parametrize("question, kind", [
    ("What drove the change in operating margin for 3M in FY2018?", "explanation"),
    ("Has AMCOR's quick ratio improved or declined between FY2023 and FY2022?", "label"),
    ("Does Verizon have a reasonably healthy liquidity profile based on its quick ratio?", "yesno"),
    ("What is the FY2018 capital expenditure amount (in USD millions) for 3M?", "figure"),
    ("What is Amazon's 2-year revenue CAGR from FY2015 to FY2017?", "figure"),
    ("Which law governs this agreement?", "span"),
])
def test_question_types(question, kind):
    assert question_type(question) == kind


def test_calculator_cagr_average_days_and_missing_input(corpus, no_model):
    amzn = _load(corpus / "finance" / "AMAZON_2017_10K.pdf")
    qs = ["What is Amazon's 2-year CAGR of total net sales from FY2015 to FY2017?",
          "What is Amazon's 3-year average capex as a percentage of revenue over FY2015-FY2017?",
          "What was Amazon's FY2017 days inventory outstanding?",
          "What is Amazon's working capital ratio at the end of FY2017?",
          "What was Amazon's FY2017 cash ratio?",
          "What is the ratio of technology and content to total net sales in FY2017?"]
    cagr, avg, dio, wcr, cash, lines = answer_questions(amzn, qs, no_model)
    assert lines.value == pytest.approx(22620 / 177866, rel=1e-4)  # any two statement lines, "and" inside a name
    assert cagr.value == pytest.approx(100 * ((177866 / 107006) ** 0.5 - 1), rel=1e-4) and cagr.kind == "figure"
    assert {c.page for c in cagr.evidence} == {38}
    expected = (5387 / 107006 + 7804 / 135987 + 11955 / 177866) / 3 * 100
    assert avg.value == pytest.approx(expected, rel=1e-4) and {37, 38} <= set(avg.citations)
    assert dio.value == pytest.approx(365 * (16047 + 11461) / 2 / 111934, rel=1e-4) and "[p.40]" in dio.text
    assert wcr.value == pytest.approx(60197 / 57883, rel=1e-4)  # the ratio, not the working-capital amount
    assert cash.value == pytest.approx(20522 / 57883, rel=1e-4)


def test_missing_input_is_named_never_a_component(corpus, no_model):
    mmm = _load(corpus / "finance" / "3M_2018_10K.pdf")  # 3M's income statement shows no interest expense line
    a = answer_question(mmm, "What is 3M's FY2018 interest coverage ratio?", no_model)
    assert a.value is None and a.missing and "interest expense" in a.missing[0] and "cannot be computed" in a.text


def test_judgement_states_metric_threshold_and_verdict(corpus, no_model):
    mmm = _load(corpus / "finance" / "3M_2018_10K.pdf")
    a = answer_question(mmm, "Does 3M have a reasonably healthy liquidity profile based on its quick ratio for FY2018?", no_model)
    assert a.label == "Yes" and "Quick ratio 1.29 >= 1 \u2192 healthy" in a.text and a.source == "rules"
    b = answer_question(mmm, "Is 3M a capital-intensive business based on FY2018 data?", no_model)
    assert b.label == "No" and "< 5" in b.text


def test_explanation_quotes_driver_sentences(corpus, no_model):
    mmm = _load(corpus / "finance" / "3M_2018_10K.pdf")
    a = answer_question(mmm, "What drove the change in operating margin for 3M in FY2018?", no_model)
    assert a.kind == "explanation" and a.evidence and a.value is None
    assert re.search(r"driven (\w+ )?by|due to", a.text)  # the filing's own causal wording, quoted
    assert all(f"[p.{c.page}]" in a.text for c in a.evidence)


@pytest.mark.slow
def test_dev_questions_never_get_a_passage_alone(corpus, no_model):
    """FinanceBench dev: every figure / yes-no / label question gets a value, a label or the inputs it lacks. The
    three filings that hold the dev split's judgement and novel questions (the others are parsed by other tests and
    checked by `m3analyst eval finance --set financebench`)."""
    rows = [json.loads(x) for x in (corpus / "finance" / "financebench_dev.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["doc_name"] in ("AMCOR_2023_10K", "PEPSICO_2022_10K", "BESTBUY_2024Q2_10Q")]
    by_doc: dict[str, list[str]] = {}
    for r in rows:
        by_doc.setdefault(r["doc_name"], []).append(r["question"])
    for name, qs in by_doc.items():
        for q, a in zip(qs, answer_questions(_load(corpus / "finance" / f"{name}.pdf"), qs, no_model)):
            assert a.kind and a.reason and a.confidence is not None, q
            if a.kind in ("figure", "yesno", "label"):
                assert a.value is not None or a.label or a.missing, q


def test_choice_among_named_lines_and_second_verdict_named(corpus, no_model):
    bby = _load(corpus / "finance" / "BESTBUY_2023_10K.pdf")
    a = answer_question(bby, "Among operations, investing, and financing activities, which brought in the most (or lost the "
                             "least) cash flow for Best Buy in FY2023?", no_model)
    assert a.label == "operations" and a.value == pytest.approx(1824) and "[p.42]" in a.text
    assert "investing cash flow -$962M" in a.reason and "financing cash flow -$1,806M" in a.reason
    least = answer_question(bby, "Among operations, investing, and financing activities, which had the lowest cash flow in FY2023?",
                            no_model)
    assert least.label == "financing activities"
    amcor = _load(corpus / "finance" / "AMCOR_2023_10K.pdf")  # debt / equity 1.68: "is it high?" asks the second verdict
    lev = answer_question(amcor, "Is Amcor's leverage high, judged by its debt-to-equity ratio at the end of FY2023?", no_model)
    assert lev.label == "Yes" and "1.68 > 1" in lev.text


def test_plain_quotient_definition_answers_a_fraction(corpus, no_model):
    ko = _load(corpus / "finance" / "COCACOLA_2017_10K.pdf")
    a = answer_question(ko, "What is the FY2017 return on assets (ROA) for Coca Cola? ROA is defined as: FY2017 net income / "
                            "(average total assets between FY2016 and FY2017). Round your answer to four decimal places.", no_model)
    assert a.value == pytest.approx(1248 / ((87896 + 87270) / 2), abs=1e-4)
    pct = answer_question(ko, "What was Coca Cola's FY2017 return on assets in percent?", no_model)
    assert pct.value == pytest.approx(100 * 1248 / ((87896 + 87270) / 2), rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["finance_judgements.jsonl", "finance_judgements_heldout.jsonl"])
def test_judgement_sets_are_answered_by_the_judgement_rules(corpus, no_model, name):
    """Every hand-checked judgement question gets its gold verdict from a computed metric (source rules, the threshold
    stated), never from the closest passage's polarity."""
    from pathlib import Path

    for line in (Path(__file__).resolve().parents[1] / "evals" / name).read_text().splitlines():
        item = json.loads(line)
        doc = _load(corpus / item["document"])
        qs = [q["question"] for q in item["questions"]]
        for q, a in zip(item["questions"], answer_questions(doc, qs, no_model)):
            assert a.source == "rules" and " \u2192 " in a.text, q["question"]
            assert a.label == q["answer"].split()[0], q["question"]
