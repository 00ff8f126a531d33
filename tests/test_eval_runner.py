"""Runner, reports, --compare and the `eval` command with a fake system under test (no model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from m3analyst.evaluation import harness as runner
from m3analyst.evaluation.scorecard import render_html, results_table
from m3analyst.evaluation.harness import System, compare_reports, parse_fail_on, run_eval
from m3analyst.evaluation.schema import read_eval_file
from m3analyst.errors import UsageError
from m3analyst.settings import Settings


@dataclass
class FakeFact:
    name: str
    value: object
    unit: str | None = None
    scale: float | None = None
    period: str | None = None
    page: int | None = None
    source_text: str | None = None


@dataclass
class FakeMemo:
    facts: list[FakeFact]
    sections: list[dict] = field(default_factory=lambda: [{"title": "Overview"}, {"title": "Risks"}])
    grounding: dict = field(default_factory=lambda: {"unsupported_claims": 1, "claims": 5})


@dataclass
class FakeAnswer:
    text: str
    value: float | None = None
    citations: list[int] = field(default_factory=list)
    source: str = "engine"


def _fake_system(revenue: float, fail_on: str | None = None) -> System:
    """A memo reading 'revenue' (value given) on page 1; answers 'yes' citing page 1."""

    def write_memo(doc, domain, settings, engine, progress=None):
        if fail_on and fail_on in doc.text:
            raise RuntimeError("boom")
        return FakeMemo([FakeFact("revenue", revenue * 1e6, "USD", 1e6, "FY2020", page=1)])  # multiplied out

    def answer_question(doc, question, settings, engine, domain=None):
        return FakeAnswer("Yes, it did [p.1].", citations=[1])

    return System(write_memo, answer_question)


SET = [
    {"id": "t/a", "domain": "finance", "context": ["Revenue was $100 million in FY2020.", "Risks follow."],
     "facts": [{"field": "revenue", "value": 100, "unit": "USD", "scale": 1e6, "period": "FY2020", "page": 1,
                "evidence": "Revenue was $100 million"}],
     "questions": [{"id": "q1", "question": "Did revenue exceed $50 million?", "answer": "Yes", "kind": "yesno",
                    "page": 1, "evidence": "Revenue was $100 million"}],
     "sections": ["Overview", "Risks", "Liquidity"]},
    {"id": "t/b", "domain": "finance", "context": ["FAIL here. Revenue was $7 million."],
     "facts": [{"field": "revenue", "value": 7, "unit": "USD", "scale": 1e6, "page": 1, "evidence": "Revenue was $7 million"}]},
]


@pytest.fixture
def items(tmp_path):
    p = tmp_path / "set.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in SET) + "\n")
    return read_eval_file(p, domain="finance")


def _run(items, revenue=100.0, settings=None):
    settings = settings or Settings()
    settings.engine.model = "none"
    return run_eval(items, domain="finance", settings=settings, data_root=Path("."), system=_fake_system(revenue, "FAIL"))


def test_report_aggregates_and_records_errors(items):
    rep = _run(items)
    assert rep["format"] == "m3analyst.eval/1" and rep["n_items"] == 2 and rep["n_errors"] == 1
    assert "RuntimeError: boom" in rep["items"][1]["error"]
    m = rep["metrics"]
    assert m["fact_recall"] == pytest.approx(1 / 2)  # item b failed -> its fact counts as missed
    assert m["qa_accuracy"] == 1.0 and m["citation_accuracy"] == 1.0
    assert m["section_coverage"] == pytest.approx(2 / 3)
    assert m["unsupported_claim_rate"] == pytest.approx(0.2)
    assert rep["settings"]["engine"]["model"] is None and rep["model"] == "none" and rep["attention"] == "none"
    assert set(rep["git"]) == {"commit", "dirty"}
    json.dumps(rep)  # JSON-able


def test_attention_setting_is_reported(items):
    s = Settings()
    s.engine.attention.backend = "dense"
    rep = run_eval(items[:1], domain="finance", settings=s, data_root=Path("."), system=_fake_system(100))
    assert rep["attention"] == "dense" and rep["settings"]["engine"]["attention"]["backend"] == "dense"


def test_compare_marks_regressions_and_fails_past_threshold(items):
    good, bad = _run(items, 100.0), _run(items, 150.0)
    cmp = compare_reports(bad, good, parse_fail_on(["fact_recall:0.1", "qa_accuracy:5%"]))
    rows = {r["metric"]: r for r in cmp["metrics"]}
    assert rows["fact_recall"]["regressed"] and rows["fact_recall"]["failed"]
    assert not rows["qa_accuracy"]["regressed"] and not rows["qa_accuracy"]["failed"]
    assert cmp["failed"] == ["fact_recall"]
    assert {"id": "t/a", "metric": "fact_recall", "old": 1.0, "new": 0.0} in cmp["item_regressions"]
    assert compare_reports(good, bad, parse_fail_on(["fact_recall:0.1"]))["failed"] == []  # an improvement
    with pytest.raises(UsageError):
        parse_fail_on(["nonsense:0.1"])


def test_renderers(items):
    rep = _run(items)
    cmp = compare_reports(rep, _run(items, 150.0))
    page = render_html(rep, cmp)
    assert page.count("data:image/png;base64,") >= 2 and "fact_recall" in page and "RuntimeError" in page
    from rich.console import Console

    con = Console(record=True, width=140)
    con.print(results_table(rep, cmp))
    text = con.export_text()
    assert "qa_accuracy" in text and "attention none" in text


def test_cli_eval_with_fake_system(cli, items, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "default_system", lambda: _fake_system(100.0, "FAIL"))
    set_path = tmp_path / "set.jsonl"
    out = tmp_path / "r.json"
    r = cli("eval", "finance", "--dataset", set_path, "--model", "none", "--out", out, "--html")
    assert r.exit_code == 0, r.stderr
    assert "fact_recall" in r.stdout and "1 item(s) failed" in r.stderr
    rep = json.loads(out.read_text())
    assert rep["metrics"]["qa_accuracy"] == 1.0
    assert out.with_suffix(".html").read_text().startswith("<!doctype html>")
    # a worse run compared with that report fails past the threshold
    monkeypatch.setattr(runner, "default_system", lambda: _fake_system(150.0, "FAIL"))
    r2 = cli("eval", "finance", "--dataset", set_path, "--model", "none", "--compare", out, "--fail-on", "fact_recall:0.1", "--json")
    assert r2.exit_code == 1 and "regression past threshold: fact_recall" in r2.stderr
    assert json.loads(r2.stdout)["comparison"]["failed"] == ["fact_recall"]


def test_cli_errors(cli, tmp_path):
    r = cli("eval", "physics")
    assert r.exit_code == 2 and "unknown domain" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "domain": "finance", "document": "/abs.pdf", "facts": []}\n')
    r = cli("eval", "finance", "--dataset", bad, "--model", "none")
    assert r.exit_code == 2 and "bad.jsonl:1" in r.stderr and "relative" in r.stderr
    r = cli("eval", "finance", "--dataset", "cuad", "--model", "none")
    assert r.exit_code == 2 and "legal" in r.stderr


def test_check_item_finds_misplaced_evidence(items):
    from m3analyst.evaluation.check import check_item
    from m3analyst.ingest import Document

    doc = Document.from_pages(["Risks follow.", "Revenue was $100 million in FY2020."])  # evidence on page 2, gold says 1
    problems = check_item(items[0], doc)
    assert any(p.severe and "not on page 1" in p.problem and "[2]" in p.problem for p in problems)
    assert check_item(items[0], Document.from_pages(SET[0]["context"])) == []


def test_select_items(items):
    from m3analyst.evaluation.loaders import select_items

    assert [i.id for i in select_items(items, ["T/B"])] == ["t/b"]
    assert [i.id for i in select_items(items, [], limit=1)] == ["t/a"]
    with pytest.raises(UsageError):
        select_items(items, ["nothing*"])
