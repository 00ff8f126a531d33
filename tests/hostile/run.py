"""Run the hostile suite: every case of generate.py, each in a fresh fork (or process) with a timeout, then report.

    python tests/hostile/run.py [--timeout 60] [--jobs 2] [--only SUBSTRING] [--report out.json] [--scenarios]

Findings per case: traceback, hang (past --timeout), internal (an "internal error" or an error line that does not
name the file / option), wrong_success (exit 0 where an error is due), unexpected_error (an error where the input is
valid), security (control characters reaching the terminal, a formula cell in a CSV, a replaced symlink, raw HTML
in a markdown memo), injection (an injected value in a memo or answer). `--scenarios` adds the process-level ones:
SIGTERM during a batch, a per-document timeout, and kill -9 at 5 moments of a 30-document batch then a rerun.
Exit code 1 when anything was found.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import Case, cases, materialise  # noqa: E402

CLI = [str(Path(sys.executable).with_name("m3analyst"))]  # the venv's entry point
_CTRL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f\x9b]")
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
KEEP = 400_000  # characters of stdout / stderr kept per case


def _child(case: Case, work: Path, wfd: int) -> None:
    """In the forked child: run the CLI in-process and write the result as JSON to `wfd`."""
    from typer.testing import CliRunner

    from m3analyst.cli import app

    os.chdir(work)
    res = {"rc": None, "out": "", "err": "", "exc": None}
    try:
        r = CliRunner().invoke(app, case.argv, env=case.env or None, catch_exceptions=True)
        res["rc"], res["out"], res["err"] = r.exit_code, r.stdout[:KEEP], r.stderr[:KEEP]
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            import traceback

            res["exc"] = "".join(traceback.format_exception(r.exception))[-3000:]
    except BaseException as e:  # noqa: BLE001 - report whatever escaped
        res["exc"] = f"{type(e).__name__}: {e}"
    with os.fdopen(wfd, "w") as f:
        f.write(json.dumps(res))
    os._exit(0)


def _wait_child(pid: int, rfd: int, timeout: float) -> dict:
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            return {"rc": None, "out": "", "err": "", "exc": None, "hang": True}
        ready, _, _ = select.select([rfd], [], [], min(left, 0.5))
        if ready:
            data = os.read(rfd, 1 << 20)
            if not data:
                break
            chunks.append(data)
    os.close(rfd)
    os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {"rc": None, "out": "", "err": "", "exc": "child died without a result"}


def run_forked(case: Case, work: Path, timeout: float) -> dict:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        signal.alarm(0)
        _child(case, work, wfd)
    os.close(wfd)
    return _wait_child(pid, rfd, timeout)


def run_process(case: Case, work: Path, timeout: float) -> dict:
    env = {**os.environ, **case.env}
    p = subprocess.Popen([*CLI, *case.argv], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {"rc": None, "out": "", "err": "", "exc": None, "hang": True}
    return {"rc": p.returncode, "out": out.decode("utf-8", "replace")[:KEEP], "err": err.decode("utf-8", "replace")[:KEEP],
            "exc": None}


def _printable_name(text: str) -> str:
    from m3analyst.errors import printable

    return printable(text, one_line=True)


def classify(case: Case, res: dict, work: Path) -> list[tuple[str, str]]:
    """(kind, detail) findings for one case's result."""
    if res.get("hang"):
        return [("hang", "killed after the timeout")]
    found: list[tuple[str, str]] = []
    text = res["out"] + res["err"]
    if res.get("exc") or "Traceback (most recent call last)" in text:
        found.append(("traceback", (res.get("exc") or text)[-300:]))
    if "internal error" in res["err"]:
        found.append(("internal", res["err"].strip()[-300:]))
    rc = res["rc"]
    if case.expect == "error":
        if rc == 0:
            found.append(("wrong_success", "exit 0"))
        elif rc not in (2, 3, 4) and not found:
            found.append(("internal", f"exit {rc}: {res['err'].strip()[-200:]}"))
        elif rc in (2, 3) and "error:" not in res["err"] and "Usage:" not in res["err"]:
            found.append(("internal", f"exit {rc} without a one-line error"))
        elif case.names and rc in (2, 3) and _printable_name(case.names)[:60] not in res["err"]:
            found.append(("internal", f"error does not name {case.names[:40]!r}: {res['err'].strip()[-200:]}"))
    elif case.expect == "ok" and rc != 0 and not found:
        found.append(("unexpected_error", f"exit {rc}: {res['err'].strip()[-200:]}"))
    if _CTRL.search(text):
        found.append(("security", "control characters reached the terminal"))
    found += _checks(case, res, work)
    return found


def _checks(case: Case, res: dict, work: Path) -> list[tuple[str, str]]:
    found = []
    for check in case.checks:
        if check == "csv_safe":
            for name in ("summary.csv", "facts.csv"):
                f = work / "out" / name
                if f.is_file():
                    import csv

                    for row in csv.reader(f.read_text(encoding="utf-8").splitlines()):
                        bad = [c for c in row if _FORMULA.match(c) and not _NUMBER.fullmatch(c)]
                        if bad:
                            found.append(("security", f"{name}: formula cell {bad[0][:40]!r}"))
        elif check.startswith("not_replaced:"):
            if not (work / check.split(":", 1)[1]).is_symlink():
                found.append(("security", "--out replaced a symlink"))
        elif check == "no_raw_html":
            if re.search(r"<script|<iframe|(?<!\\)\]\(javascript:", res["out"], re.IGNORECASE):
                found.append(("security", "raw HTML / javascript: link in the markdown memo"))
        elif check.startswith("no_value:"):
            value = check.split(":", 1)[1]
            if value in res["out"]:
                line = next(ln for ln in res["out"].splitlines() if value in ln)
                found.append(("injection", f"injected value {value!r} in the output: {line.strip()[:120]}"))
    return found


def run_all(selected: list[Case], timeout: float, jobs: int, root: Path) -> list[dict]:
    """Fork-run cases `jobs` at a time (process cases one by one after); a result row per case."""
    rows, forked = [], [c for c in selected if not c.subprocess]
    running: dict[int, tuple[Case, int, float, Path]] = {}
    queue = list(enumerate(forked))
    while queue or running:
        while queue and len(running) < jobs:
            i, case = queue.pop(0)
            work = root / f"c{i}"
            work.mkdir()
            materialise(case, work)
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(rfd)
                _child(case, work, wfd)
            os.close(wfd)
            running[rfd] = (case, pid, time.monotonic(), work)
        _reap(running, rows, timeout)
    for i, case in enumerate(c for c in selected if c.subprocess):
        work = root / f"p{i}"
        work.mkdir()
        materialise(case, work)
        t0 = time.monotonic()
        res = run_process(case, work, timeout)
        rows.append(_row(case, res, work, time.monotonic() - t0))
    return rows


_BUFFERS: dict[int, list[bytes]] = {}


def _reap(running: dict, rows: list, timeout: float) -> None:
    ready, _, _ = select.select(list(running), [], [], 0.2)
    now = time.monotonic()
    for rfd in list(running):
        case, pid, t0, work = running[rfd]
        done = False
        if rfd in ready:
            data = os.read(rfd, 1 << 20)
            if data:
                _BUFFERS.setdefault(rfd, []).append(data)
            else:
                done = True
        if done:
            os.waitpid(pid, 0)
            raw = b"".join(_BUFFERS.pop(rfd, []))
            try:
                res = json.loads(raw or b"{}") or {"rc": None, "out": "", "err": "", "exc": "no result"}
            except ValueError:
                res = {"rc": None, "out": "", "err": "", "exc": "child died without a result"}
            os.close(rfd)
            del running[rfd]
            rows.append(_row(case, res, work, now - t0))
        elif now - t0 > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(rfd)
            _BUFFERS.pop(rfd, None)
            del running[rfd]
            rows.append(_row(case, {"hang": True, "rc": None, "out": "", "err": ""}, work, now - t0))


def _row(case: Case, res: dict, work: Path, seconds: float) -> dict:
    findings = classify(case, res, work)
    shutil.rmtree(work, ignore_errors=True)
    return {"id": case.id, "family": case.family, "rc": res.get("rc"), "s": round(seconds, 2),
            "findings": [{"kind": k, "detail": d} for k, d in findings], "err": res.get("err", "")[-240:]}


# ---- scenarios ---------------------------------------------------------------------------------------------------------
def _docs(folder: Path, n: int) -> None:
    from generate import CONTRACT

    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"d{i:02d}.txt").write_text(CONTRACT.replace("three years", f"{i + 2} years") + ("Clause. " * 50 + "\n") * i)


def scenario_sigterm(root: Path) -> list[tuple[str, str]]:
    _docs(root / "in", 12)
    p = subprocess.Popen([*CLI, "batch", "in", "--out", "out", "--model", "none", "--workers", "1"], cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((root / "out" / "records").glob("*.json")):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    try:
        p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        return [("hang", "batch did not end after SIGTERM")]
    if not (root / "out" / "summary.csv").is_file():
        return [("wrong_success", f"SIGTERM left no summary.csv (exit {p.returncode})")]
    return []


def scenario_timeout(root: Path) -> list[tuple[str, str]]:
    (root / "in").mkdir()
    (root / "in" / "slow.txt").write_text("The Supplier shall deliver the goods within thirty days.\n" * 60_000)
    (root / "in" / "fast.txt").write_text("This Agreement is governed by the laws of Delaware. The parties agree.\n")
    found = []
    backends = [["--workers", "0"], ["--workers", "1"]]
    if importlib.util.find_spec("ray") is not None:  # the Ray backend too, where Ray is installed
        backends.append(["--workers", "1", "--ray"])
    for i, backend in enumerate(backends):
        out = f"out{i}"
        r = subprocess.run([*CLI, "batch", "in", "--out", out, "--model", "none", *backend, "--timeout", "3",
                            "--domain", "legal"],
                           cwd=root, capture_output=True, text=True, timeout=300)
        summary = root / out / "summary.json"
        rows = json.loads(summary.read_text())["rows"] if summary.is_file() else []
        status = {row["id"]: (row["status"], row.get("error") or "") for row in rows}
        if status.get("slow", ("",))[0] != "failed" or "timed out" not in status["slow"][1] or status["fast"][0] != "ok":
            found.append(("wrong_success", f"--timeout 3 with {' '.join(backend)}: {status} (exit {r.returncode}) "
                                           f"{r.stderr.strip()[-200:]}"))
    return found


def scenario_kill9(root: Path, n_docs: int = 30, kills: int = 5) -> list[tuple[str, str]]:
    import random

    _docs(root / "in", n_docs)
    rng = random.Random(18)
    cmd = [*CLI, "batch", "in", "--out", "out", "--model", "none", "--workers", "1"]
    for _ in range(kills):
        p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(2.0, 8.0))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    rows = json.loads((root / "out" / "summary.json").read_text())["rows"]
    memos = sorted(p.name for p in (root / "out" / "memos").glob("*.md"))
    found = []
    if r.returncode != 0 or len(rows) != n_docs or any(row["status"] not in ("ok", "skipped") for row in rows):
        found.append(("wrong_success", f"rerun after kill -9: exit {r.returncode}, {Counter(x['status'] for x in rows)}"))
    if memos != sorted(f"d{i:02d}.md" for i in range(n_docs)):
        found.append(("wrong_success", f"memos after kill -9 + rerun: {len(memos)} files, expected {n_docs}"))
    stray = [p.name for p in (root / "out").rglob("*.tmp")]
    if stray:
        found.append(("wrong_success", f"temporary files left: {stray[:3]}"))
    records = list((root / "out" / "records").glob("*.json"))
    if len(records) != n_docs:
        found.append(("wrong_success", f"{len(records)} records for {n_docs} documents (lost or duplicated)"))
    return found


SCENARIOS = {"sigterm_batch": scenario_sigterm, "document_timeout": scenario_timeout, "kill9_rerun": scenario_kill9}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--report", type=Path)
    ap.add_argument("--scenarios", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="m3hostile-"))
    os.environ["M3ANALYST_HOME"] = str(root / "home")  # document cache of this run only
    os.environ.setdefault("COLUMNS", "200")
    import m3analyst.cli  # noqa: F401 - imported once before forking, so each case starts fast
    import m3analyst.engine  # noqa: F401
    import m3analyst.memo  # noqa: F401

    selected = [c for c in cases() if args.only in c.id]
    t0 = time.monotonic()
    rows = run_all(selected, args.timeout, args.jobs, root)
    if args.scenarios:
        for name, fn in SCENARIOS.items():
            work = root / f"scenario-{name}"
            work.mkdir()
            t = time.monotonic()
            found = fn(work)
            rows.append({"id": f"scenario/{name}", "family": "scenario", "rc": None, "s": round(time.monotonic() - t, 1),
                         "findings": [{"kind": k, "detail": d} for k, d in found], "err": ""})
    counts = Counter(f["kind"] for r in rows for f in r["findings"])
    for r in rows:
        for f in r["findings"]:
            print(f"{f['kind']:16} {r['id'][:70]:70} {f['detail'][:160]!r}")
    kinds = ("traceback", "hang", "internal", "wrong_success", "unexpected_error", "security", "injection")
    print(f"\n{len(rows)} cases and scenarios in {time.monotonic() - t0:.0f} s; slowest "
          f"{max(r['s'] for r in rows):.1f} s; " + ", ".join(f"{k} {counts.get(k, 0)}" for k in kinds))
    if args.report:
        args.report.write_text(json.dumps({"counts": {k: counts.get(k, 0) for k in kinds}, "rows": rows}, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    return 1 if counts else 0


if __name__ == "__main__":
    sys.exit(main())
