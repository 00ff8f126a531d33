"""evaluation/by_type.py: QA accuracy per FinanceBench question_type, read from the set's annotation file."""

from __future__ import annotations

import json

from m3analyst.evaluation.by_type import qa_by_type


def test_accuracy_per_financebench_question_type(tmp_path):
    rows = [{"financebench_id": "a", "question_type": "metrics-generated"},
            {"financebench_id": "b", "question_type": "metrics-generated"},
            {"financebench_id": "c", "question_type": "novel-generated"}]
    (tmp_path / "financebench_dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    details = [{"scorer": "qa", "question": "a", "correct": True}, {"scorer": "qa", "question": "b", "correct": False},
               {"scorer": "qa", "question": "c", "correct": True}, {"scorer": "citations", "question": "c", "correct": False}]
    report = {"set": "financebench", "data_root": str(tmp_path), "items": [{"details": details}]}
    got = qa_by_type(report)
    assert got == {"metrics-generated": {"num": 1, "den": 2, "value": 0.5}, "novel-generated": {"num": 1, "den": 1, "value": 1.0}}
    assert qa_by_type({"set": "evals", "items": [{"details": details}]}) == {}  # no type known: no table
