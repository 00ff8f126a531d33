"""The eval runner: items -> (document, memo, answers) -> scores -> one JSON-able report dict.

    report = run_eval(items, domain="finance", settings=Settings(), data_root=Path("../shared/corpus"))

The system under test is the memo package's `write_memo` and `answer_question` (contracts.md); tests
pass fakes through `System`. A failing item is recorded with its error and the run goes on.

Report (format "m3analyst.eval/1"): domain, set, model, attention, settings (Settings.model_dump()),
git commit, machine, timings, `metrics` (micro averages), `counts` (num/den), `per_category` (CUAD),
`items` (per item: metrics, details, timings, error).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from m3analyst.errors import UsageError
from m3analyst.evaluation import findings_score  # noqa: F401 - registers the "findings" scorer
from m3analyst.evaluation import label_scores  # noqa: F401 - registers the per-source label scorer
from m3analyst.evaluation.by_type import qa_by_type
from m3analyst.evaluation.schema import EvalItem
from m3analyst.evaluation.scorers import (
    METRICS,
    PredAnswer,
    PredFact,
    Prediction,
    Score,
    aggregate,
    metric_values,
    score_item,
)
from m3analyst.evaluation import legal_score  # noqa: F401 - registers the legal short-answer scorer
from m3analyst.resources import REPO_ROOT
from m3analyst.settings import Settings

REPORT_FORMAT = "m3analyst.eval/1"
MODEL_FREE = "none"


@dataclass
class System:
    """The functions under test (contracts.md signatures)."""

    write_memo: Callable[..., Any]
    answer_question: Callable[..., Any]


def default_system() -> System:
    """m3analyst.memo's write_memo / answer_question (imported lazily: they pull in the engine)."""
    try:
        from m3analyst.memo import answer_question, write_memo
    except ImportError as e:
        raise UsageError(f"the memo writer is not available in this build ({e})") from None
    return System(write_memo=write_memo, answer_question=answer_question)


def load_engine_for(settings: Settings):
    """The engine for settings.engine, or None in model-free mode (`--model none`)."""
    if settings.engine.model is None:
        return None
    from m3analyst.engine import load_engine

    return load_engine(settings.engine)


# ---------------------------------------------------------------------------------------------
# adapters: whatever the memo package returns -> scorer inputs


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _section_title(s: Any) -> str:
    if isinstance(s, str):
        return s
    for key in ("title", "heading", "name"):
        v = _get(s, key)
        if v:
            return str(v)
    return ""


def prediction_from_memo(memo: Any) -> tuple[list[PredFact], list[str], dict | None]:
    """(facts, section titles, grounding) of a Memo (object or its to_dict())."""
    facts = [
        PredFact(name=str(_get(f, "name", "")), value=_get(f, "value"), unit=_get(f, "unit"), scale=_get(f, "scale"),
                 period=_get(f, "period"), page=_get(f, "page"), source_text=_get(f, "source_text"))
        for f in (_get(memo, "facts") or [])
    ]
    sections = [t for t in (_section_title(s) for s in (_get(memo, "sections") or [])) if t]
    grounding = _get(memo, "grounding")
    return facts, sections, dict(grounding) if grounding else None


def prediction_from_answer(ans: Any) -> PredAnswer:
    value = _get(ans, "value")
    cites = [int(c) for c in (_get(ans, "citations") or []) if isinstance(c, (int, float, str)) and str(c).isdigit()]
    return PredAnswer(text=str(_get(ans, "text", "") or ""), value=None if value is None else float(value),
                      citations=cites, source=_get(ans, "source"), scores=_get(ans, "scores"))


def _engine_summary(memo: Any) -> dict[str, Any] | None:
    d = memo.to_dict() if hasattr(memo, "to_dict") else memo if isinstance(memo, dict) else {}
    stats = d.get("engine") or d.get("engine_stats") or d.get("stats") if isinstance(d, dict) else None
    if not isinstance(stats, dict):
        return None
    keys = ("prompt_tokens", "new_tokens", "prefill_s", "decode_s", "decode_tok_s", "backend", "attention_share")
    return {k: stats[k] for k in keys if k in stats} or None


# ---------------------------------------------------------------------------------------------
# running


def load_item_document(item: EvalItem, data_root: Path):
    """The item's Document: load_document(data_root/document), or from its inline context pages."""
    from m3analyst.ingest import Document, load_document

    if item.context is not None:
        return Document.from_pages(item.context)
    return load_document(Path(data_root) / item.document)


def evaluate_item(item: EvalItem, *, domain: str, settings: Settings, engine: Any, system: System,
                  data_root: Path, scorers: list[str] | None = None) -> tuple[Score, dict[str, Any]]:
    """Run the system on one item and score it. Errors are caught and recorded (the item scores 0)."""
    rec: dict[str, Any] = {"id": item.id, "document": item.document, "title": item.title, "error": None}
    timings: dict[str, float] = {}
    pred = Prediction()
    t = time.perf_counter()
    try:
        pred.doc = load_item_document(item, data_root)
        timings["load_s"] = time.perf_counter() - t
        if item.needs_memo:
            t = time.perf_counter()
            memo = system.write_memo(pred.doc, domain=domain, settings=settings, engine=engine, progress=None)
            timings["memo_s"] = time.perf_counter() - t
            pred.facts, pred.sections, pred.grounding = prediction_from_memo(memo)
            pred.has_memo, pred.memo = True, memo
            pred.findings = list(_get(memo, "findings") or [])
            rec["memo"] = {"facts": len(pred.facts), "sections": pred.sections, "grounding": pred.grounding,
                           "engine": _engine_summary(memo)}
        if item.questions:
            t = time.perf_counter()
            for q in item.questions:
                ans = system.answer_question(pred.doc, q.question, settings, engine, domain=domain)
                pred.answers[q.id] = prediction_from_answer(ans)
            timings["qa_s"] = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - one bad item must not end the run
        rec["error"] = f"{type(e).__name__}: {e}"
    score = score_item(item, pred, scorers)
    timings["total_s"] = sum(timings.values())
    rec.update(
        metrics={k: {"num": r.num, "den": r.den, "value": r.value} for k, r in score.metrics.items()},
        details=score.details,
        categories=score.categories,
        timings={k: round(v, 3) for k, v in timings.items()},
    )
    return score, rec


def run_eval(
    items: list[EvalItem],
    *,
    domain: str,
    settings: Settings,
    data_root: Path,
    set_name: str = "evals",
    engine: Any = None,
    system: System | None = None,
    scorers: list[str] | None = None,
    on_item: Callable[[int, EvalItem], None] | None = None,
    engine_load_s: float | None = None,
) -> dict[str, Any]:
    """Evaluate `items` and return the report dict (see module docstring)."""
    system = system or default_system()
    started = _dt.datetime.now(_dt.timezone.utc)
    load_start = machine_info().get("load_avg")
    t0 = time.perf_counter()
    scores, records = [], []
    for i, item in enumerate(items):
        if on_item:
            on_item(i, item)
        s, rec = evaluate_item(item, domain=domain, settings=settings, engine=engine, system=system,
                               data_root=data_root, scorers=scorers)
        scores.append(s)
        records.append(rec)
    wall = time.perf_counter() - t0
    total, per_cat = aggregate(scores)
    report = {
        "format": REPORT_FORMAT,
        "domain": domain,
        "set": set_name,
        "data_root": str(data_root),
        "n_items": len(items),
        "n_errors": sum(r["error"] is not None for r in records),
        "model": settings.engine.model or MODEL_FREE,
        "attention": MODEL_FREE if settings.engine.model is None else settings.engine.attention.backend,
        "engine": getattr(engine, "name", None),
        "settings": settings.model_dump(),
        "git": git_info(),
        "machine": machine_info() | {"load_avg_start": load_start},  # load_avg: at the end (1/5/15 min)
        "started_at": started.isoformat(timespec="seconds"),
        "timings": {
            "wall_s": round(wall, 2),
            "engine_load_s": None if engine_load_s is None else round(engine_load_s, 2),
            "mean_item_s": round(wall / len(items), 3) if items else None,
        },
        "engine_totals": engine_totals(records),
        "metrics": metric_values(total),
        "counts": {k: {"num": r.num, "den": r.den} for k, r in total.items()},
        "per_category": per_cat,
        "short_answers": legal_score.short_answer_summary(records),
        "items": records,
    }
    report["by_question_type"] = qa_by_type(report)  # issue 17: accuracy per question type
    return report


def engine_totals(records: list[dict[str, Any]]) -> dict[str, float] | None:
    """Memo engine work summed over items (prompt/new tokens, prefill/decode seconds); None model-free."""
    stats = [r["memo"]["engine"] for r in records if (r.get("memo") or {}).get("engine")]
    if not stats:
        return None
    keys = ("prompt_tokens", "new_tokens", "prefill_s", "decode_s")
    out = {k: round(sum(float(s.get(k) or 0) for s in stats), 3) for k in keys}
    out["decode_tok_s"] = round(out["new_tokens"] / out["decode_s"], 3) if out["decode_s"] else None
    return out


def git_info() -> dict[str, Any]:
    """Commit of the checkout and whether it has uncommitted changes (None outside a checkout)."""
    def _git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count()}
    try:
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------------------------------
# comparison


def parse_fail_on(specs: list[str]) -> dict[str, float]:
    """['qa_accuracy:0.05', 'fact_recall:5%'] -> {'qa_accuracy': 0.05, 'fact_recall': 0.05}."""
    out = {}
    for spec in specs:
        name, sep, drop = spec.partition(":")
        if not sep or name not in METRICS:
            raise UsageError(f"--fail-on {spec!r}: expected METRIC:DROP with METRIC one of {', '.join(METRICS)}")
        try:
            out[name] = float(drop.rstrip("%")) / (100 if drop.endswith("%") else 1)
        except ValueError:
            raise UsageError(f"--fail-on {spec!r}: DROP must be a number like 0.05 or 5%") from None
    return out


def compare_reports(new: dict[str, Any], old: dict[str, Any], fail_on: dict[str, float] | None = None,
                    eps: float = 1e-9) -> dict[str, Any]:
    """Metric deltas new - old. A metric 'regressed' when it got worse (direction from METRICS);
    'failed' when it got worse by more than its --fail-on threshold. Items: per-item worsenings."""
    fail_on = fail_on or {}
    rows = []
    for name in [m for m in METRICS if m in new["metrics"] or m in old.get("metrics", {})]:
        a, b = old.get("metrics", {}).get(name), new["metrics"].get(name)
        delta = None if a is None or b is None else b - a
        worse = None if delta is None else (-delta if METRICS[name].higher_is_better else delta)
        rows.append({
            "metric": name, "old": a, "new": b, "delta": delta,
            "regressed": worse is not None and worse > eps,
            "failed": name in fail_on and (worse is None or worse > fail_on[name] + eps),
            "threshold": fail_on.get(name),
        })
    old_items = {r["id"]: r for r in old.get("items", [])}
    item_regressions = []
    for r in new["items"]:
        o = old_items.get(r["id"])
        if not o:
            continue
        for name, m in r["metrics"].items():
            ov = o.get("metrics", {}).get(name, {}).get("value")
            if ov is None or m["value"] is None:
                continue
            worse = (ov - m["value"]) if METRICS.get(name, METRICS["qa_accuracy"]).higher_is_better else (m["value"] - ov)
            if worse > eps:
                item_regressions.append({"id": r["id"], "metric": name, "old": ov, "new": m["value"]})
    return {
        "old": {"model": old.get("model"), "attention": old.get("attention"), "git": old.get("git"),
                "started_at": old.get("started_at"), "set": old.get("set")},
        "metrics": rows,
        "item_regressions": item_regressions,
        "failed": [r["metric"] for r in rows if r["failed"]],
    }
