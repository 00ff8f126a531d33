"""Label accuracy per source: for yes/no/maybe (PubMedQA) and effect-label (Evidence Inference) questions, how
often each reader's label is right — the rules alone, the model alone, and their combination (the answer given) —
with the share of each gold label beside them (the largest share is the majority baseline).

Reads the per-source label scores a label answer carries (memo/labels.py `LabelAnswer.scores`: label ->
probability for "rules", "model", "combined"). A question whose answer carries no scores counts for `combined` only
(by the answer's text), so passages and plain answers still score 0 there.

Metrics: label_accuracy_rules / _model / _combined, label_share_<label> (gold share); per-label tp/fp/fn of the
combined label go to `categories` (the report's per-category table).
"""

from __future__ import annotations

from typing import Any

from m3analyst.evaluation.normalize import normalize_label
from m3analyst.evaluation.scorers import METRICS, MetricInfo, Prediction, Ratio, Score, answer_correct, register_scorer
from m3analyst.evaluation.schema import EvalItem

SOURCES = ("rules", "model", "combined")
for _s in SOURCES:
    METRICS[f"label_accuracy_{_s}"] = MetricInfo(True, f"label questions the {_s} reader gets right")


def _best(probs: Any) -> str | None:
    return max(probs, key=probs.get) if isinstance(probs, dict) and probs else None


@register_scorer("labels")
def score_labels(item: EvalItem, pred: Prediction) -> Score:
    metrics: dict[str, Ratio] = {}
    cats: dict[str, dict[str, int]] = {}
    details = []
    for q in item.questions:
        if q.kind not in ("yesno", "label") or not q.labels:
            continue
        labels = tuple(q.labels)
        gold = normalize_label(q.answer, labels)
        if gold is None:
            continue
        ans = pred.answers.get(q.id)
        scores = (getattr(ans, "scores", None) or {}) if ans is not None else {}
        row = {"question": q.id, "gold": gold}
        for src in SOURCES:
            label = _best(scores.get(src))
            if src == "combined" and label is None:
                ok = answer_correct(q, ans)  # no scores: the answer's own label (a passage scores 0)
            elif label is None:
                continue
            else:
                ok = normalize_label(label, labels) == gold
            metrics[f"label_accuracy_{src}"] = metrics.get(f"label_accuracy_{src}", Ratio()) + Ratio(float(ok), 1)
            row[src] = label
        for lab in labels:
            metrics[f"label_share_{lab.replace(' ', '_')}"] = (metrics.get(f"label_share_{lab.replace(' ', '_')}", Ratio())
                                                               + Ratio(float(gold == lab), 1))
        said = row.get("combined") or (normalize_label(ans.text, labels) if ans is not None else None)
        for lab in labels:
            c = cats.setdefault(f"label: {lab}", {"tp": 0, "fp": 0, "fn": 0})
            c["tp"] += int(said == lab and gold == lab)
            c["fp"] += int(said == lab and gold != lab)
            c["fn"] += int(said != lab and gold == lab)
        details.append(row)
    return Score(metrics, details, cats)


def majority_note(report: dict[str, Any]) -> str:
    """' · majority baseline yes 0.552' when the report has label shares (else '')."""
    shares = {k[len("label_share_"):]: v for k, v in report.get("metrics", {}).items() if k.startswith("label_share_") and v is not None}
    if not shares:
        return ""
    lab = max(shares, key=shares.get)
    return f" · majority baseline ({lab.replace('_', ' ')}) {shares[lab]:.3f}"


__all__ = ["SOURCES", "majority_note", "score_labels"]
