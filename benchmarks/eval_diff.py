"""Are two folders of `m3analyst eval --out` reports the same, item for item? For refactors that must not change
behaviour: run the same evals on the old and the new tree, each into its own folder, then

    python benchmarks/eval_diff.py OLD_DIR NEW_DIR

Reports are paired by file name. Every item (its memo summary, metrics, per-fact / per-question details and
categories) and the report's totals are compared field by field; clock times, git and machine fields are left
out, and the effective settings are compared apart. Prints one line per report and the first differences; exits 1
when any item differs or a report is missing on the new side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SKIP = {"timings", "started_at", "git", "machine", "engine_totals"}  # clocks and the run's environment


def strip(x: Any) -> Any:
    """The report without what differs between two runs of the same code (times, commit, host)."""
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in SKIP and not k.endswith("_s")}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def differences(a: Any, b: Any, path: str, out: list[str]) -> list[str]:
    """Each place where b differs from a, as 'path: old != new'."""
    if type(a) is not type(b):
        out.append(f"{path}: {a!r:.120} != {b!r:.120}")
    elif isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k in a and k in b:
                differences(a[k], b[k], f"{path}.{k}", out)
            else:
                out.append(f"{path}.{k}: only in the {'new' if k in b else 'old'} report")
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} entries != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r:.120} != {b!r:.120}")
    return out


def compare_reports(old: dict, new: dict) -> tuple[int, int, list[str], list[str]]:
    """(items, items identical, differences, settings differences) of two reports of the same eval set."""
    items_a = {it["id"]: strip(it) for it in old["items"]}
    items_b = {it["id"]: strip(it) for it in new["items"]}
    same = sum(1 for k, v in items_a.items() if items_b.get(k) == v)
    out: list[str] = []
    for k in sorted(set(items_a) | set(items_b)):
        if k not in items_a or k not in items_b:
            out.append(f"item {k}: only in the {'new' if k in items_b else 'old'} report")
        else:
            differences(items_a[k], items_b[k], k, out)
    totals = [strip({k: v for k, v in r.items() if k not in ("items", "settings")}) for r in (old, new)]
    differences(totals[0], totals[1], "report", out)
    return len(items_a), same, out, differences(old.get("settings"), new.get("settings"), "settings", [])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python benchmarks/eval_diff.py OLD_DIR NEW_DIR", file=sys.stderr)
        return 2
    old_dir, new_dir = map(Path, args)
    n_items = n_same = 0
    failed = False
    for fa in sorted(old_dir.glob("*.json")):
        fb = new_dir / fa.name
        if not fb.is_file():
            print(f"{fa.stem}: no report in {new_dir}")
            failed = True
            continue
        old, new = (json.loads(f.read_text(encoding="utf-8")) for f in (fa, fb))
        n, same, out, settings = compare_reports(old, new)
        n_items, n_same = n_items + n, n_same + same
        details = sum(len(it.get("details", [])) for it in old["items"])
        print(f"{fa.stem}: {n} items, {same} identical ({details} detail rows); {len(out)} differences"
              + (f"; settings differ in {len(settings)} places" if settings else ""))
        for line in out[:20] + [f"(settings) {s}" for s in settings[:10]]:
            print("   ", line)
        failed = failed or bool(out)
    print(f"total: {n_same}/{n_items} items identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
