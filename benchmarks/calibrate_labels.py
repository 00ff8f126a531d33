"""Calibrate memo/labels.py's yes/no/maybe combination on the PubMedQA dev set (500 expert-labelled items).

    python benchmarks/calibrate_labels.py dump --model none --out /tmp/pqa_rules.jsonl      # rule features
    python benchmarks/calibrate_labels.py dump --out /tmp/pqa_model.jsonl                   # + the default model's label log-probs
    python benchmarks/calibrate_labels.py fit /tmp/pqa_model.jsonl                          # weights (YAML) + accuracies
    python benchmarks/calibrate_labels.py loo /tmp/pqa_model.jsonl                          # small dumps: leave-one-out

`dump` answers every question through `m3analyst.memo.ask.answer_question` (the path `ask` and `eval` use) and
records the rule features, the model's label log-probs and the time per question (resumable: items already in the
file are skipped). `fit` fits a multinomial logistic regression (L2, gradient descent) on the FIT half (items at even
positions of the file, in the data set's order) and reports accuracy and the confusion matrix on the HELD-OUT half
(odd positions), for rules alone, the model alone and combined, with the majority baseline beside each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

LABELS = ("yes", "no", "maybe")
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "bio" / "pubmedqa" / "pqal_dev.json"


def dump(args) -> None:
    from m3analyst.ingest.model import Document
    from m3analyst.memo.ask import answer_question
    from m3analyst.settings import Settings

    data = json.loads(Path(args.data).read_text())
    out = Path(args.out)
    done = {json.loads(x)["pmid"] for x in out.read_text().splitlines()} if out.exists() else set()
    settings = Settings()
    settings.engine.model = args.model
    engine = None
    if args.model != "none":
        from m3analyst.engine import load_engine

        engine = load_engine(settings.engine)
    with out.open("a") as fh:
        for n, (pmid, row) in enumerate(data.items()):
            if pmid in done or (args.limit and n >= args.limit):
                continue
            doc = Document.from_pages(["\n\n".join(row["CONTEXTS"])])
            t = time.perf_counter()
            a = answer_question(doc, row["QUESTION"], settings, engine, domain="bio")
            rec = {"pmid": pmid, "n": n, "gold": row["final_decision"], "label": a.label, "features": a.scores["features"],
                   "model_lp": a.scores.get("model_lp"), "s": round(time.perf_counter() - t, 3)}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()


def _matrix(rows: list[dict], keys: list[str], model: bool) -> np.ndarray:
    out = []
    for r in rows:
        x = [r["features"][k] for k in keys]
        if model:
            lp = r["model_lp"]
            mean = sum(lp.values()) / 3
            x += [lp[k] - mean for k in LABELS]
        out.append(x)
    return np.array(out, dtype=float)


def fit_lr(x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 3000, lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by gradient descent on standardised features: weights [features, labels] and
    bias [labels] for the raw features."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    w, b = _fit_std((x - mu) / sd, y, l2, steps, lr)
    w = w / sd[:, None]
    return w, b - mu @ w


def _fit_std(x: np.ndarray, y: np.ndarray, l2: float, steps: int, lr: float) -> tuple[np.ndarray, np.ndarray]:
    w, b = np.zeros((x.shape[1], 3)), np.zeros(3)
    onehot = np.eye(3)[y]
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = p - onehot
        w -= lr * (x.T @ g / len(y) + l2 * w)
        b -= lr * g.mean(0)
    return w, b


def _report(name: str, pred: np.ndarray, y: np.ndarray) -> dict:
    conf = np.zeros((3, 3), dtype=int)
    for g, p in zip(y, pred):
        conf[g, p] += 1
    acc = float((pred == y).mean())
    print(f"  {name:9s} accuracy {acc:.3f} ({int((pred == y).sum())}/{len(y)})  confusion gold rows x pred cols "
          f"(yes,no,maybe): {conf.tolist()}")
    return {"accuracy": acc, "confusion": conf.tolist()}


def _rule_vote(rows: list[dict]) -> np.ndarray:
    from m3analyst.memo.labels import rule_vote

    return np.array([LABELS.index(max((p := rule_vote(r["features"])), key=p.get)) for r in rows])


def fit(args) -> None:
    rows = [json.loads(x) for x in Path(args.file).read_text().splitlines()]
    if args.model_lp:  # the model's label log-probs from a model dump, joined by pmid onto these rule features
        lp = {r["pmid"]: r["model_lp"] for r in map(json.loads, Path(args.model_lp).read_text().splitlines())}
        rows = [r | {"model_lp": lp[r["pmid"]]} for r in rows if r["pmid"] in lp]
    rows.sort(key=lambda r: r["n"])
    keys = sorted(rows[0]["features"])
    has_model = all(r.get("model_lp") for r in rows)
    fit_rows, held = rows[0::2], rows[1::2]
    y_fit = np.array([LABELS.index(r["gold"]) for r in fit_rows])
    y_held = np.array([LABELS.index(r["gold"]) for r in held])
    y_all = np.array([LABELS.index(r["gold"]) for r in rows])
    for part, y in (("all", y_all), ("fit half", y_fit), ("held-out half", y_held)):
        print(f"{part} (n={len(y)}): majority 'yes' {float((y == 0).mean()):.3f}")
    print("rules (uncalibrated vote, memo/labels.py rule_vote)")
    for part, rs, y in (("all", rows, y_all), ("fit", fit_rows, y_fit), ("held-out", held, y_held)):
        _report(part, _rule_vote(rs), y)
    weights = {}
    sets = {"rules, logistic over all features": (keys, False), "model": ([], True), "combined": (["sig_share"], True)}
    for source, (feats, model) in sets.items():
        if model and not has_model:
            continue
        xf, xh = _matrix(fit_rows, feats, model), _matrix(held, feats, model)
        w, b = fit_lr(xf, y_fit, l2=args.l2)
        print(source)
        _report("fit", (xf @ w + b).argmax(1), y_fit)
        _report("held-out", (xh @ w + b).argmax(1), y_held)
        names = feats + ([f"lp_{k}" for k in LABELS] if model else [])
        weights[source] = {"bias": {lab: round(float(b[j]), 4) for j, lab in enumerate(LABELS)}} | {
            lab: {n: round(float(w[i, j]), 4) for i, n in enumerate(names)} for j, lab in enumerate(LABELS)}
    times = [r["s"] for r in rows]
    print(f"time per question: median {np.median(times):.2f} s, mean {np.mean(times):.2f} s (n={len(times)})")
    print(json.dumps(weights.get("combined", {})))


def loo(args) -> None:
    """Small model dumps (a few dozen items on a busy 2-core VM): leave-one-out accuracy of the calibrated model-only and
    combined readers, beside the rules and the majority label on the same items."""
    rows = sorted((json.loads(x) for x in Path(args.file).read_text().splitlines()), key=lambda r: r["n"])
    rows = [r for r in rows if r.get("model_lp")]
    y = np.array([LABELS.index(r["gold"]) for r in rows])
    print(f"n={len(y)} (items {rows[0]['n']}..{rows[-1]['n']} of the dev file): majority 'yes' {float((y == 0).mean()):.3f}")
    _report("rules", _rule_vote(rows), y)
    _report("model argmax", np.array([int(np.argmax([r["model_lp"][k] for k in LABELS])) for r in rows]), y)
    for source, feats in (("model", []), ("combined", ["sig_share"])):
        x = _matrix(rows, feats, True)
        pred = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            w, b = fit_lr(x[keep], y[keep], l2=args.l2)
            pred.append(int((x[i] @ w + b).argmax()))
        _report(f"{source} (LOO)", np.array(pred), y)
    times = [r["s"] for r in rows]
    print(f"time per question: median {np.median(times):.1f} s, mean {np.mean(times):.1f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--model", default="smollm2-135m-instruct")
    d.add_argument("--out", required=True)
    d.add_argument("--data", default=str(DATA))
    d.add_argument("--limit", type=int, default=0)
    f = sub.add_parser("fit")
    f.add_argument("file")
    f.add_argument("--l2", type=float, default=0.01)
    f.add_argument("--model-lp", help="a model dump whose label log-probs join the rule features (by pmid)")
    o = sub.add_parser("loo")
    o.add_argument("file")
    o.add_argument("--l2", type=float, default=0.1)
    args = ap.parse_args(argv)
    {"dump": dump, "fit": fit, "loo": loo}[args.cmd](args)


if __name__ == "__main__":
    main(sys.argv[1:])
