"""Trend questions (memo/trend.py) and the finance look-ups around them (ask.py): synthetic series for the
rules, real filings for the facts they read."""

from __future__ import annotations

import functools

import pytest

from m3analyst.domains import load_domain
from m3analyst.domains.facts import Fact
from m3analyst.memo.ask import answer_question
from m3analyst.memo.trend import answer_trend
from m3analyst.settings import Settings

FIN = load_domain("finance")


def _series(name: str, unit: str, values: dict[str, float], page: int = 7) -> list[Fact]:
    return [Fact(name, v, unit, 1e6 if unit == "USD" else 1.0, period, page, f"{name} row") for period, v in values.items()]


def _lead(ans) -> str:
    return ans.text.split(":", 1)[0]


@pytest.mark.parametrize("question,lead", [
    ("Has the company increased its total debt between FY2022 and FY2023?", "No"),
    ("Has total debt decreased between 2022 and 2023?", "Yes"),
    ("Has the company's total debt improved in 2023?", "Yes"),  # debt: lower is better (spec `better: lower`)
    ("Has total debt increased or decreased between 2022 and 2023?", "Decreased"),
    ("Was there any change in total debt between 2021 and 2022?", "No"),
    ("Has total debt improved or declined between 2021 and 2023?", "Improved"),
])
def test_direction_questions_read_the_named_fact_and_its_better_direction(question, lead):
    facts = _series("total_debt", "USD", {"2021": 50e9, "2022": 50e9, "2023": 47e9})
    ans = answer_trend(FIN, facts, question)
    assert ans is not None and _lead(ans) == lead
    assert ans.citations == [7] and "[p.7]" in ans.text


def test_improvement_of_a_higher_is_better_rate_is_a_rise_in_points():
    facts = _series("gross_margin", "%", {"2022": 19.4, "2023": 18.5})
    ans = answer_trend(FIN, facts, "Does the company have an improving gross margin profile as of FY2023?")
    assert _lead(ans) == "No" and "-0.9 percentage points" in ans.text and ans.value == pytest.approx(-0.9)


def test_stability_uses_the_threshold_the_question_gives():
    facts = _series("gross_margin", "%", {"2021": 22.4, "2022": 22.5, "2023": 21.4})
    loose = answer_trend(FIN, facts, "Are gross margins historically consistent (not fluctuating more than roughly 2% each year)?")
    tight = answer_trend(FIN, facts, "Are gross margins consistent, not fluctuating more than 0.5% a year?")
    assert _lead(loose) == "Yes" and _lead(tight) == "No"
    assert "-1.1 points" in loose.text


def test_sign_questions_read_the_asked_year():
    facts = _series("working_capital", "USD", {"2022": -5e9, "2023": 2e9})
    assert _lead(answer_trend(FIN, facts, "Does the company have positive working capital?")) == "Yes"
    assert _lead(answer_trend(FIN, facts, "Did the company have positive working capital in FY2022?")) == "No"
    assert _lead(answer_trend(FIN, facts, "Did the company have negative working capital in FY2022?")) == "Yes"


@pytest.mark.parametrize("question", [
    "Why did total debt decline?",  # reasons, not a direction
    "Did total debt fall because of the bond repayment?",  # a cause the figures cannot confirm
    "How much did total debt change between 2022 and 2023?",  # a numeric look-up (ask.answer_from_facts)
    "Has the company's headcount increased?",  # no fact of the spec named
])
def test_not_trend_questions(question):
    facts = _series("total_debt", "USD", {"2022": 50e9, "2023": 47e9})
    assert answer_trend(FIN, facts, question) is None


# ---- real filings --------------------------------------------------------------------------------
@pytest.fixture
def no_model() -> Settings:
    s = Settings()
    s.engine.model = "none"
    return s


@functools.lru_cache(maxsize=4)
def _load(path):
    from m3analyst.ingest import load_document

    return load_document(path)


@pytest.fixture
def filings(corpus):
    return lambda name: _load(corpus / "finance" / name)


@pytest.mark.slow
def test_filing_trend_and_derived_metric_answers(filings, no_model):
    msft = filings("MICROSOFT_2023_10K.pdf")
    debt = answer_question(msft, "Has Microsoft increased its debt on balance sheet between FY2023 and the FY2022 period?", no_model)
    assert _lead(debt) == "No" and "$49,781M (2022) to $47,237M (2023)" in debt.text and debt.citations == [60]
    assert debt.value == -2544 and debt.unit == "USD"  # the change, in the millions the filing prints
    by = answer_question(msft, "By how much did Microsoft's total debt change from June 30, 2022 to June 30, 2023 (USD millions)?",
                         no_model)
    assert by.value == -2544 and by.source == "facts"
    glw = filings("CORNING_2022_10K.pdf")
    etr = answer_question(glw, "How much has the effective tax rate of Corning changed between FY2021 and FY2022?", no_model)
    assert etr.value == pytest.approx(2.63, abs=0.01) and "from 20.2% in 2021 to 22.9% in 2022" in etr.text and etr.citations == [58]
    wc = answer_question(glw, "Does Corning have positive working capital based on FY2022 data?", no_model)
    assert _lead(wc) == "Yes" and "$2,278M" in wc.text and wc.citations == [60]


@pytest.mark.slow
def test_filing_span_and_finer_line_item(filings, no_model):
    bby = filings("BESTBUY_2024Q2_10Q.pdf")
    six = answer_question(bby, "What was Best Buy's revenue for the six months ended July 29, 2023 (USD millions)?", no_model)
    assert six.value == 19050 and six.citations == [4]
    cash = answer_question(bby, "Was there any drop in Cash & Cash equivalents between FY 2023 and Q2 of FY2024?", no_model)
    assert _lead(cash) == "Yes" and "$1,874M (January 28, 2023) to $1,093M (July 29, 2023)" in cash.text
    amzn = filings("AMAZON_2017_10K.pdf")
    svc = answer_question(amzn, "What were Amazon's net service sales in FY2017 (USD millions)?", no_model)
    assert svc.value == 59293 and svc.citations == [38]


def test_a_single_period_is_stated_without_a_trend():
    facts = _series("inventory_turnover", "ratio", {"2021": 3.46})
    ans = answer_trend(FIN, facts, "Has the inventory turnover improved?")
    assert ans.text.startswith("Inventory turnover can be stated for 2021 only: 3.46") and "no trend" in ans.text
    assert not ans.text.startswith(("Yes", "No"))


def test_the_span_the_question_names_picks_the_columns():
    facts = _series("revenue", "USD", {"three months to July 30, 2022": 10.3e9, "six months to July 30, 2022": 21.0e9,
                                       "three months to July 29, 2023": 9.6e9, "six months to July 29, 2023": 19.0e9})
    six = answer_trend(FIN, facts, "Did revenue decline in the six months ended July 29, 2023?")
    assert "(six months to July 30, 2022) to $19,000M (six months to July 29, 2023)" in six.text
    quarter = answer_trend(FIN, facts, "Did revenue decline in the second quarter of 2023?")
    assert "(three months to July 30, 2022) to $9,600M (three months to July 29, 2023)" in quarter.text
