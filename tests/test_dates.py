"""Dates and durations as contracts write them (m3analyst/text.py) and the legal extractor's use of them."""

from __future__ import annotations

import datetime as dt

import pytest

from m3analyst.domains import extract_facts, load_domain
from m3analyst.ingest.model import Document
from m3analyst.text import add, parse_date, parse_duration, written


@pytest.mark.parametrize("text,date", [
    ("dated December 23, 2003 by and between", dt.date(2003, 12, 23)),
    ("made this 23rd day of December, 2003", dt.date(2003, 12, 23)),
    ("signed 12/23/03", dt.date(2003, 12, 23)),
    ("as of Sept. 5, 2019", dt.date(2019, 9, 5)),
    ("on June 31, 2020", None),  # not a calendar date
    ("within thirty days", None),
])
def test_parse_date(text, date):
    assert parse_date(text) == date


@pytest.mark.parametrize("text,duration", [
    ("for three (3) years", (3, "year")), ("a period of 36 months", (36, "month")), ("ninety days", (90, "day")),
    ("twelve (12) months from", (12, "month")), ("one year", (1, "year")), ("the year", None),
])
def test_parse_duration(text, duration):
    assert parse_duration(text) == duration


def test_add_clamps_to_the_end_of_the_month():
    assert add(dt.date(2020, 1, 31), 1, "month") == dt.date(2020, 2, 29)
    assert add(dt.date(2020, 2, 29), 1, "year") == dt.date(2021, 2, 28)
    assert add(dt.date(2003, 12, 23), 90, "day") == dt.date(2004, 3, 22)
    assert written(dt.date(2006, 12, 23)) == "December 23, 2006"


def _contract(term_sentence: str, effective_sentence: str) -> Document:
    return Document.from_pages([
        "SUPPLY AGREEMENT\n\nThis Supply Agreement is made on March 31, 2000 by and between Alpha Corp., a Delaware "
        "corporation, and Beta LLC, a Texas limited liability company.\n\n"
        f"1.1 Definitions. {effective_sentence} The parties agree to the terms below in every respect.",
        f"5. TERM AND TERMINATION.\n\n5.1 Term. {term_sentence} Either party may terminate this Agreement upon "
        "thirty (30) days written notice for material breach.",
    ])


def test_term_end_is_computed_from_the_effective_date_the_contract_defines():
    doc = _contract("The initial term of this Agreement shall be sixty (60) months from the Effective Date, unless "
                    "extended by the parties in writing.",
                    "“Effective Date” means the date first written above, on which this Agreement takes effect.")
    facts = {f.name: f for f in extract_facts(doc, load_domain("legal"))}
    eff, term = facts["effective_date"], facts["expiration_date"]
    assert eff.value == "March 31, 2000" and eff.page == 1 and eff.extra["defined_by"]["page"] == 1
    assert term.value == "March 31, 2005 (sixty (60) months from the Effective Date, March 31, 2000)"
    assert term.derived and term.page == 2 and term.extra["pages"] == [1, 2]


@pytest.mark.parametrize("term_sentence", [
    # the term runs from something else, or has no fixed end: nothing is computed
    "This Agreement shall commence on the Effective Date and terminate five (5) years following the first sale.",
    "This Agreement shall remain in effect from the Effective Date until terminated by either party on notice.",
])
def test_no_end_date_when_the_term_does_not_run_from_a_known_date(term_sentence):
    doc = _contract(term_sentence, "“Effective Date” means the date first written above, on which this Agreement takes effect.")
    term = {f.name: f for f in extract_facts(doc, load_domain("legal"))}.get("expiration_date")
    assert term is None or (not term.derived and "March 31" not in str(term.value))


def test_ask_states_the_computed_end_date_with_the_quote():
    from m3analyst.memo.ask import answer_question
    from m3analyst.settings import Settings

    s = Settings()
    s.engine.model = "none"
    doc = _contract("The initial term of this Agreement shall be sixty (60) months from the Effective Date, unless "
                    "extended by the parties in writing.",
                    "“Effective Date” means the date first written above, on which this Agreement takes effect.")
    a = answer_question(doc, "When does the initial term of this agreement expire?", s, domain="legal")
    assert a.source == "facts" and a.text.startswith("Expiration / term: March 31, 2005 (sixty (60) months") and a.citations == [2]


def test_unless_terminated_earlier_still_has_a_fixed_end():
    doc = _contract("The initial term of this Agreement shall commence on the Effective Date and continue for three (3) years, unless "
                    "terminated earlier under Section 5.2.",
                    "“Effective Date” means the date first written above, on which this Agreement takes effect.")
    facts = {f.name: f for f in extract_facts(doc, load_domain("legal"))}
    assert facts["expiration_date"].value.startswith("March 31, 2003 (three (3) years from the Effective Date")


def test_effective_upon_the_date_written_above():
    from m3analyst.domains.legal.extract import _EFFECTIVE_ABOVE

    assert _EFFECTIVE_ABOVE.search("This Agreement shall become effective upon the date first written above.")
    assert _EFFECTIVE_ABOVE.search("This Agreement shall be effective upon its execution by both parties.")
    assert not _EFFECTIVE_ABOVE.search("No amendment shall be effective unless signed by both parties.")


@pytest.mark.parametrize("text,iso", [
    ("made as of the 19t h day of December, 2018", "2018-12-19"),  # an ordinal split by text extraction
    ("shall commence on the 1st of March, 2003", "2003-03-01"),
    ("dated 7/7/98", "1998-07-07"),  # two-digit years: 50-99 are 19xx
    ("expires 2/28/13", "2013-02-28"),
    ("signed on 18/9/2008", "2008-09-18"),  # day first when the first number cannot be a month
])
def test_dates_as_contracts_write_them(text, iso):
    assert parse_date(text).isoformat() == iso
