"""The verifier rejects a claim that reverses its cited sentence's direction or significance (memo/polarity.py)."""

from __future__ import annotations

from m3analyst.ingest.model import Document
from m3analyst.memo.polarity import polarity_problem
from m3analyst.memo.verify import verify_sentence

SOURCE = ("Pain scores were significantly lower in the ketamine group than in the control group (P = 0.01). "
          "Sales increased 3%, while costs decreased 2%.")


def test_reversed_direction_is_rejected():
    assert polarity_problem("Pain scores were significantly higher in the ketamine group than in the control group.", SOURCE)
    assert polarity_problem("Costs increased 2%.", SOURCE)
    assert polarity_problem("Pain scores did not differ between the ketamine and control groups.", SOURCE)  # significance


def test_same_direction_and_swapped_sides_pass():
    assert polarity_problem("Pain scores were significantly lower in the ketamine group than in the control group.", SOURCE) is None
    assert polarity_problem("The control group had significantly higher pain scores than the ketamine group.", SOURCE) is None
    assert polarity_problem("Costs decreased 2%.", SOURCE) is None
    assert polarity_problem("Something unrelated about weather.", SOURCE) is None


def test_verifier_check_rejects_the_reversal():
    doc = Document.from_pages([SOURCE, "Other page."])
    ok = verify_sentence(doc, "Pain scores were significantly lower in the ketamine group than in the control group [p.1].")
    bad = verify_sentence(doc, "Pain scores were significantly higher in the ketamine group than in the control group [p.1].")
    assert ok.ok and not bad.ok
    assert any(p.startswith("polarity") for p in bad.problems)
