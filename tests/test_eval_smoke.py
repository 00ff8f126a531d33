"""Smoke eval: ONE real item per domain through `m3analyst eval` with the real memo writer.

Model-free (`--model none`) for all three domains, plus one short real-model case (PubMedQA: a short
abstract, one question). Full eval runs are benchmarks (benchmarks/RESULTS.md), not tests.
"""

from __future__ import annotations

import json

import pytest

memo = pytest.importorskip("m3analyst.memo", reason="the memo writer (m3analyst.memo) is not in this build yet")
if not hasattr(memo, "write_memo"):
    pytest.skip("m3analyst.memo has no write_memo yet", allow_module_level=True)

# small documents, so the smoke run stays fast
SMOKE = {
    "finance": ("evals", "finance/bestbuy-2024q2-10q"),  # 30-page 10-Q
    "legal": ("cuad", "cuad/*PAPA*JOHN*"),
    "bio": ("evidence-inference", "evidence-inference/PMC4644613"),
}


@pytest.mark.parametrize("domain", list(SMOKE))
def test_smoke_eval_model_free(cli, corpus, tmp_path, domain):
    set_name, item = SMOKE[domain]
    out = tmp_path / f"{domain}.json"
    r = cli("eval", domain, "--dataset", set_name, "--item", item, "--model", "none", "--data-root", corpus, "--out", out)
    assert r.exit_code == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["n_items"] == 1 and rep["n_errors"] == 0, rep["items"][0]["error"]
    assert rep["model"] == "none" and rep["metrics"], rep
    assert all(v is None or 0.0 <= v <= 1.0 for v in rep["metrics"].values())
    assert "metric" in r.stdout  # the Rich table


@pytest.mark.slow
def test_smoke_eval_real_model_pubmedqa(cli, corpus, tmp_path):
    out = tmp_path / "pq.json"
    r = cli("eval", "bio", "--dataset", "pubmedqa", "--limit", "1", "--max-new-tokens", "8", "--attention", "msa",
            "--data-root", corpus, "--out", out)
    assert r.exit_code == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["n_errors"] == 0, rep["items"][0]["error"]
    assert rep["attention"] == "msa" and rep["model"] != "none"
    assert rep["metrics"]["qa_accuracy"] in (0.0, 1.0)
