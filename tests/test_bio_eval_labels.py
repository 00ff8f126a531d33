"""Per-source label accuracy in eval (evaluation/label_scores.py): rules / model / combined, gold shares beside."""

from __future__ import annotations

from m3analyst.evaluation.label_scores import majority_note, score_labels
from m3analyst.evaluation.schema import parse_item
from m3analyst.evaluation.scorers import PredAnswer, Prediction


def _item():
    qs = [{"id": str(i), "question": f"Q{i}?", "answer": gold, "kind": "yesno", "labels": ["yes", "no", "maybe"], "page": 1,
           "evidence": ""} for i, gold in enumerate(["yes", "yes", "no"])]
    return parse_item({"id": "t/1", "domain": "bio", "context": ["text"], "questions": qs}, "test")


def test_accuracy_per_source_and_gold_shares():
    p = lambda lab: {"yes": float(lab == "yes"), "no": float(lab == "no"), "maybe": float(lab == "maybe")}  # noqa: E731
    pred = Prediction(answers={
        "0": PredAnswer("yes — ...", source="rules", scores={"rules": p("yes"), "model": p("no"), "combined": p("yes")}),
        "1": PredAnswer("no — ...", source="rules", scores={"rules": p("no"), "model": p("yes"), "combined": p("no")}),
        "2": PredAnswer("“a passage” [p.1]", source="passage"),  # no scores: counts for combined only, and is wrong
    })
    s = score_labels(_item(), pred)
    got = {k: (r.num, r.den) for k, r in s.metrics.items()}
    assert got["label_accuracy_rules"] == (1, 2) and got["label_accuracy_model"] == (1, 2)
    assert got["label_accuracy_combined"] == (1, 3)
    assert got["label_share_yes"] == (2, 3) and got["label_share_no"] == (1, 3)
    assert s.categories["label: yes"] == {"tp": 1, "fp": 0, "fn": 1}
    assert majority_note({"metrics": {"label_share_yes": 2 / 3, "label_share_no": 1 / 3}}) == " · majority baseline (yes) 0.667"
