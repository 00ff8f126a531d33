"""Legal short-answer accuracy per CUAD category, model-free, straight from the term sheet (no memo written):
the same findings code and scorer `m3analyst eval legal` uses, fast enough to run on all 200 CUAD contracts.

    python benchmarks/legal_short_answers.py --set cuad      # CUAD: rule-reading split and held-out split separately
    python benchmarks/legal_short_answers.py --set evals     # the 16 dev contracts of evals/legal.jsonl

CUAD split (evals/README.md): contracts whose position in cuad_annotations.jsonl is 0 or 1 mod 5 were read while
writing the rules ("read"); the other 120 are held out ("held").
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from contextlib import nullcontext
from functools import lru_cache
from multiprocessing import Pool

from m3analyst.evaluation.legal_score import CORE, score_short_answers
from m3analyst.evaluation.loaders import default_data_root, load_set
from m3analyst.evaluation.harness import load_item_document
from m3analyst.evaluation.scorers import Prediction


@lru_cache(maxsize=2)
def _items(name: str) -> list:
    return load_set(name, "legal", default_data_root())


def _score(job: tuple[str, int]) -> list[dict]:
    """The short-answer details of item `i` of set `name` (run in a worker process with --jobs)."""
    name, i = job
    root = default_data_root()
    item = _items(name)[i]
    return score_short_answers(item, Prediction(doc=load_item_document(item, root), has_memo=True)).details


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="cuad")
    ap.add_argument("--errors", action="store_true", help="print the wrong answers of the read / dev split")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (the figures do not depend on it)")
    args = ap.parse_args()
    items = _items(args.set)
    acc: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    t0 = time.perf_counter()
    jobs = [(args.set, i) for i in range(len(items))]
    with Pool(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        results = pool.imap(_score, jobs, chunksize=4) if pool is not None else map(_score, jobs)
        for (_, i), details in zip(jobs, results):
            _add(acc, items[i].id, details, ("read" if i % 5 < 2 else "held") if args.set == "cuad" else "dev", args.errors)
    _report(acc, len(items), time.perf_counter() - t0)


def _add(acc: dict, item_id: str, details: list[dict], split: str, errors: bool) -> None:
    for d in details:
        for s in (split, "all"):
            a = acc[s][d["category"]]
            a[0], a[1], a[2], a[3] = a[0] + 1, a[1] + d["correct"], a[2] + d["present"], a[3] + (d["present"] and d["correct"])
        if errors and split != "held" and not d["correct"]:
            print(f"{item_id[:50]:50s} {d['category']:36s} gold {d['gold'][:40]!r} answer {d['answer'][:40]!r}")


def _report(acc: dict, n_items: int, seconds: float) -> None:
    for split, cats in acc.items():
        n, r, g, gr = (sum(c[k] for c in cats.values()) for k in range(4))
        print(f"== {split}: accuracy {r / n:.3f} ({r}/{n}), precision {gr / max(g, 1):.3f} ({gr}/{g})")
        for cat in CORE:
            n, r, g, gr = cats[cat]
            if n:
                prec = f"{gr / g:.3f} ({gr}/{g})" if g else "—"
                print(f"   {cat:36s} accuracy {r / n:.3f}  precision {prec}")
    print(f"{n_items} contracts, {seconds:.0f} s")


if __name__ == "__main__":
    main()
