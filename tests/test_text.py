"""The neutral text helpers (m3analyst/text.py): one date parser, one number reader, one sentence splitter."""

from __future__ import annotations

import datetime as dt

from m3analyst.memo.verify import split_sentences
from m3analyst.text import GENERATED_BOUNDARY, first_number, parse_date, period_key, sentence_bounds, to_number


def test_parse_date_reads_every_written_form_and_takes_the_earliest():
    assert parse_date("signed December 23, 2003") == dt.date(2003, 12, 23)
    assert parse_date("this 23rd day of December, 2003") == dt.date(2003, 12, 23)
    assert parse_date("dated 2004-01-05, amended March 1, 2003") == dt.date(2004, 1, 5)  # the first written
    assert parse_date("Feb 30, 2003 then March 1, 2003") == dt.date(2003, 3, 1)  # not a real day: skipped
    assert parse_date("3/4/99") == dt.date(1999, 3, 4) and parse_date("1/2/03") == dt.date(2003, 1, 2)
    assert parse_date("no date here, 2003 only") is None


def test_numbers_as_written():
    assert to_number("$1,234.5") == 1234.5 and to_number("12%") == 12.0 and to_number("\u22120.5") == -0.5
    assert to_number("n/a") is None
    assert first_number("In all, 3,000 customers and 12 sites") == 3000.0 and first_number("none") is None


def test_one_splitter_two_boundary_rules():
    doc_text = "Sales rose, e.g. in Europe. 2023 was strong. Costs fell."
    assert [doc_text[a:b].strip() for a, b in sentence_bounds(doc_text)] == [
        "Sales rose, e.g. in Europe.", "2023 was strong.", "Costs fell."]
    generated = "Revenue rose 5% [p.3] Costs fell. [p.4] Margins widened."
    assert len(sentence_bounds(generated, GENERATED_BOUNDARY, abbreviations=False)) == 3
    assert split_sentences(generated) == ["Revenue rose 5% [p.3]", "Costs fell. [p.4]", "Margins widened."]


def test_period_key_orders_quarters_before_year_to_date():
    assert period_key("three months to July 29, 2023") > period_key("six months to July 29, 2023")
    assert period_key("2024-09-28") == (2024, 9, 28, 0) and period_key(None) == (0, 0, 0, 0)
