"""benchmarks/eval_diff.py: two eval report folders compared item for item (clock times and host left out)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "eval_diff.py"


def _load():
    spec = importlib.util.spec_from_file_location("eval_diff", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _report(value, seconds: float, host: str) -> dict:
    return {"domain": "finance", "settings": {"engine": {"model": None}}, "machine": {"host": host},
            "metrics": {"fact_recall": {"num": 1, "den": 1}},
            "items": [{"id": "finance/x", "timings": {"total_s": seconds}, "memo": {"facts": 3, "memo_s": seconds},
                       "details": [{"scorer": "facts", "field": "revenue", "predicted": [value]}]}]}


def _write(folder: Path, report: dict) -> Path:
    folder.mkdir()
    (folder / "finance.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def test_same_reports_but_for_times_and_host_are_equal(tmp_path, capsys):
    old = _write(tmp_path / "old", _report(32765.0, 1.5, "a"))
    new = _write(tmp_path / "new", _report(32765.0, 9.0, "b"))
    assert _load().main([str(old), str(new)]) == 0
    assert "1 items, 1 identical" in capsys.readouterr().out


def test_a_changed_fact_or_a_missing_report_fails(tmp_path, capsys):
    old = _write(tmp_path / "old", _report(32765.0, 1.5, "a"))
    new = _write(tmp_path / "new", _report(31657.0, 1.5, "a"))
    assert _load().main([str(old), str(new)]) == 1
    assert "finance/x.details[0].predicted[0]: 32765.0 != 31657.0" in capsys.readouterr().out
    (new / "finance.json").unlink()
    assert _load().main([str(old), str(new)]) == 1
    assert "finance: no report in" in capsys.readouterr().out
