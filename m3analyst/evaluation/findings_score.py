"""Finding precision and recall: the memo's findings against hand-checked gold findings.

Gold lives beside the eval set it belongs to, one line per item: `evals/<domain>_findings.jsonl`

    {"id": "finance/3m-2018-10k", "findings": [
       {"line": "revenue", "period": "2018", "direction": "up", "driver_pages": [],
        "note": "no sentence states a cause of total sales growth; components only in the table on p.24"}, ...]}

`line` is a fact name; `direction` is up / down / flat (vs the comparable prior period); `driver_pages` lists the
pages holding a sentence that states the driver of that line's change for that period ([] when the filing states
none). A memo finding is the growth finding whose figures are tied to `line`; its direction is read off its change
figure, its driver is the evidence it labels "Stated driver".

Statements scored: each direction the memo states for a gold line, and each driver it cites.
    finding_precision = correct statements / statements made
    finding_recall    = correct statements / gold statements (a direction per line, a driver where the filing states one)
    unsupported_figure_rate = figures of the memo's findings not tied to a fact / figures (memo grounding)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from m3analyst.evaluation.schema import EvalItem
from m3analyst.evaluation.scorers import METRICS, MetricInfo, Prediction, Ratio, Score, register_scorer
from m3analyst.resources import REPO_ROOT

METRICS.setdefault("finding_precision", MetricInfo(True, "memo findings (direction, stated driver) that are right"))
METRICS.setdefault("finding_recall", MetricInfo(True, "gold findings (direction, stated driver) the memo states"))
METRICS.setdefault("unsupported_figure_rate", MetricInfo(False, "figures of findings not tied to an extracted fact"))


@cache
def gold_findings(domain: str, root: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """item id -> gold findings, from evals/<domain>_findings.jsonl ({} when there is none)."""
    path = Path(root or REPO_ROOT / "evals") / f"{domain}_findings.jsonl"
    if not path.is_file():
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                out[rec["id"]] = list(rec["findings"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: {e}") from None
    return out


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def memo_findings(memo: Any) -> list[dict[str, Any]]:
    """The memo's findings as dicts (a Memo object or its to_dict())."""
    out = []
    for s in _get(memo, "sections") or []:
        for f in _get(s, "findings") or []:
            out.append(f.to_dict() if hasattr(f, "to_dict") else dict(f))
    return out


def _line_finding(found: list[dict[str, Any]], line: str) -> dict[str, Any] | None:
    for f in found:
        if f.get("topic") == "growth" and any(g.get("fact") == line and not g.get("derived") for g in f["figures"]):
            return f
    return None


def direction_of(f: dict[str, Any]) -> str | None:
    change = next((g for g in f["figures"] if g.get("derived") and str(g.get("fact", "")).endswith("_change")), None)
    if change is not None and isinstance(change.get("value"), (int, float)):
        return "flat" if "was flat" in (f.get("template") or f["claim"]) else "up" if change["value"] > 0 else "down"
    reported = [g for g in f["figures"] if not g.get("derived") and isinstance(g.get("value"), (int, float))]
    if len(reported) >= 2:  # a swing between profit and loss
        return "up" if reported[0]["value"] > reported[1]["value"] else "down"
    return None


def driver_page(f: dict[str, Any]) -> int | None:
    i = (f.get("extra") or {}).get("driver_index")
    if i is None or (f.get("extra") or {}).get("evidence_label") != "Stated driver" or i >= len(f["evidence"]):
        return None
    return int(f["evidence"][i]["page"])


@register_scorer("findings")
def score_findings(item: EvalItem, pred: Prediction) -> Score:
    golds = gold_findings(item.domain).get(item.id)
    memo = getattr(pred, "memo", None)
    if not golds or memo is None:
        return Score()
    found = memo_findings(memo)
    made = right = wanted = 0
    details = []
    for g in golds:
        f = _line_finding(found, g["line"])
        wanted += 1 + (1 if g.get("driver_pages") else 0)
        got_dir = direction_of(f) if f else None
        got_page = driver_page(f) if f else None
        ok_dir = got_dir == g["direction"]
        ok_drv = got_page is not None and got_page in (g.get("driver_pages") or [])
        made += (got_dir is not None) + (got_page is not None)
        right += ok_dir + ok_drv
        if not ok_dir or (got_page is not None and not ok_drv) or (g.get("driver_pages") and not ok_drv):
            details.append({"line": g["line"], "direction": [g["direction"], got_dir],
                            "driver_page": [g.get("driver_pages"), got_page]})
    g_all = _get(_get(memo, "grounding") or {}, "finding_figures") or 0
    g_bad = _get(_get(memo, "grounding") or {}, "unsupported_figures") or 0
    details.append({"findings": len(found)})
    return Score({"finding_precision": Ratio(right, made), "finding_recall": Ratio(right, wanted),
                  "unsupported_figure_rate": Ratio(g_bad, g_all)}, details)
