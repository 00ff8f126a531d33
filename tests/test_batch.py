"""`m3analyst batch`: discovery, keys, failure isolation, resumability (incl. SIGKILL), worker crashes.

Real corpus documents are read in place; memos are model-free (--model none) for speed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from m3analyst.batch import BatchOptions, discover, run_batch
from m3analyst.batch.store import RecordStore, settings_fingerprint, work_key
from m3analyst.errors import InputError, UsageError
from m3analyst.settings import Settings

EXIT_PARTIAL = 4
CONTRACT = "legal/contracts_txt/ADAMSGOLFINC_03_21_2005-EX-10.17-ENDORSEMENT AGREEMENT.txt"
TRIAL = "bio/trials_txt/PMC1065065.txt"
TENQ = "finance/BESTBUY_2024Q2_10Q.pdf"


def _model_free() -> Settings:
    s = Settings()
    s.engine.model = "none"
    return s


def _encrypted_pdf() -> bytes:
    """A one-page PDF behind the Standard security handler whose user password is not empty."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> /P -4 >>"]  # fmt: skip
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    ident = b"<" + b"ab" * 16 + b">"
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [%s %s] >>\n" % (len(objs) + 1, ident, ident)
    return bytes(out + b"startxref\n%d\n%%%%EOF\n" % xref)


def _bad_files(folder: Path) -> dict[str, Path]:
    """Corrupt, encrypted and unsupported (binary) files: each must fail, none may stop the batch."""
    files = {
        "corrupt": (folder / "corrupt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage, no xref, no trailer\n"),
        "locked": (folder / "locked.pdf", _encrypted_pdf()),
        "junk": (folder / "junk.txt", bytes(range(256)) * 8),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# --- discovery -------------------------------------------------------------------------------


def test_discover_folder_recurses_and_ignores_non_documents(tmp_path):
    (tmp_path / "q1").mkdir()
    (tmp_path / "q1" / "a.txt").write_text("alpha")
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "notes.xlsx").write_bytes(b"PK")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.md").write_text("earlier memo")
    found = discover(tmp_path, exclude=tmp_path / "out")
    assert found.source == "folder"
    assert [(i.id, i.path.name) for i in found.items] == [("b", "b.pdf"), ("q1__a", "a.txt")]
    assert [p.name for p in found.ignored] == ["notes.xlsx"]


def test_discover_glob_and_manifests(tmp_path):
    for name in ("x.txt", "y.txt"):
        (tmp_path / name).write_text(name)
    assert [i.id for i in discover(str(tmp_path / "*.txt")).items] == ["x", "y"]

    man = _write_manifest(
        tmp_path / "m.csv",
        [{"path": "x.txt", "id": "first", "domain": "legal", "deal": "D1"}, {"path": "y.txt", "id": "", "domain": "", "deal": "D2"}],
    )
    items = discover(man).items
    assert [(i.id, i.path, i.domain, i.extra) for i in items] == [
        ("first", tmp_path / "x.txt", "legal", {"deal": "D1"}),
        ("y", tmp_path / "y.txt", None, {"deal": "D2"}),
    ]
    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps({"path": str(tmp_path / "y.txt"), "region": "EU"}) + "\n\n")
    [item] = discover(jl).items
    assert item.id == "y" and item.extra == {"region": "EU"}


@pytest.mark.parametrize(
    "rows, error, text",
    [
        ([{"path": "a.txt", "id": "d"}, {"path": "b.txt", "id": "d"}], UsageError, "duplicate id 'd'"),
        ([{"path": "a.txt", "domain": "astrology"}], InputError, "row 1: unknown domain 'astrology'"),
        ([{"path": "a.txt", "id": "../escape"}], InputError, "not a plain file name"),
        ([{"path": "", "id": "x"}], InputError, "row 1: missing 'path'"),
    ],
    ids=["duplicate-id", "bad-domain", "path-in-id", "no-path"],
)
def test_manifest_errors_name_the_row(tmp_path, rows, error, text):
    with pytest.raises(error, match=re.escape(text)):
        discover(_write_manifest(tmp_path / "m.csv", rows))


def test_key_follows_content_settings_domain_and_formats():
    s = _model_free()
    fp = settings_fingerprint(s)
    base = work_key("c" * 64, fp, "auto", ("md",))
    threads = s.model_copy(deep=True)
    threads.engine.threads = 7
    assert work_key("c" * 64, settings_fingerprint(threads), "auto", ("md",)) == base  # speed-only setting
    other = s.model_copy(deep=True)
    other.engine.attention.top_k = 4
    assert len({base, work_key("d" * 64, fp, "auto", ("md",)), work_key("c" * 64, settings_fingerprint(other), "auto", ("md",)),
                work_key("c" * 64, fp, "legal", ("md",)), work_key("c" * 64, fp, "auto", ("md", "html"))}) == 5  # fmt: skip


# --- a real batch ------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_real_documents_with_bad_files_then_rerun_does_nothing(cli, corpus, tmp_path):
    bad = _bad_files(tmp_path)
    man = _write_manifest(
        tmp_path / "docs.csv",
        [
            {"path": str(corpus / TENQ), "id": "bby-q2", "desk": "retail"},
            {"path": str(corpus / CONTRACT), "id": "adams", "desk": "legal-ops"},
            {"path": str(corpus / TRIAL), "id": "trial", "desk": "pharma"},
            {"path": str(bad["corrupt"]), "id": "corrupt", "desk": ""},
            {"path": str(bad["locked"]), "id": "locked", "desk": ""},
            {"path": str(bad["junk"]), "id": "junk", "desk": ""},
        ],
    )
    out = tmp_path / "out"
    r = cli("batch", man, "--out", out, "--model", "none", "--workers", "1", "--html", "--json")
    assert r.exit_code == EXIT_PARTIAL, r.stderr
    rows = _summary(out)
    assert {k: v["status"] for k, v in rows.items()} == {
        "bby-q2": "ok", "adams": "ok", "trial": "ok", "corrupt": "failed", "locked": "failed", "junk": "failed",
    }  # fmt: skip
    # auto-detected domains, extra manifest column carried through
    assert (rows["bby-q2"]["domain"], rows["adams"]["domain"], rows["trial"]["domain"]) == ("finance", "legal", "bio")
    assert rows["adams"]["desk"] == "legal-ops"
    assert str(bad["corrupt"]) in rows["corrupt"]["error"] and "PDF" in rows["corrupt"]["error"]
    assert "encrypted" in rows["locked"]["error"] and "binary" in rows["junk"]["error"]
    assert all(f"failed {i}" in r.stderr for i in ("corrupt", "locked", "junk"))
    for rid in ("bby-q2", "adams", "trial"):
        md = out / rows[rid]["memo"]
        assert md.read_text().strip() and (out / rows[rid]["memo_html"]).is_file()
        json.loads((out / rows[rid]["memo_json"]).read_text())
        assert float(rows[rid]["total_s"]) > 0
    # index.html links every memo, and every link resolves
    links = set(re.findall(r'href="([^"]+)"', (out / "index.html").read_text()))
    assert links - {"facts.csv"} == {rows[i][c] for i in ("bby-q2", "adams", "trial") for c in ("memo", "memo_html", "memo_json")}
    assert all((out / link).is_file() for link in links)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["ok"] == 3 and summary["counts"]["failed"] == 3 and summary["processed"] == 6

    records, memos = _mtimes(out / "records"), _mtimes(out / "memos")
    r2 = cli("batch", man, "--out", out, "--model", "none", "--workers", "1", "--html", "--json")
    assert r2.exit_code == EXIT_PARTIAL  # the bad files are still failures (recorded, not retried)
    rows2 = _summary(out)
    assert [rows2[i]["status"] for i in ("bby-q2", "adams", "trial", "corrupt", "locked", "junk")] == ["skipped"] * 3 + ["failed"] * 3
    assert json.loads((out / "summary.json").read_text())["processed"] == 0
    assert _mtimes(out / "records") == records and _mtimes(out / "memos") == memos  # nothing rewritten
    # facts.csv: every finished memo's facts, kept from the records when the documents are skipped
    with (out / "facts.csv").open() as f:
        facts = list(csv.DictReader(f))
    assert {r["id"] for r in facts} <= {"bby-q2", "adams", "trial"}
    bby = {(r["fact"], r["period"]): r for r in facts if r["id"] == "bby-q2"}
    assert bby[("current_liabilities", "July 29, 2023")]["shown"] == "$8,433M" and bby[("current_liabilities", "July 29, 2023")]["page"] == "3"
    assert float(bby[("current_liabilities", "July 29, 2023")]["value"]) == 8433e6
    assert any(r["id"] == "adams" and r["fact"] == "parties" for r in facts)

    # other memo formats are other work (part of the key): everything runs again
    report = run_batch(BatchOptions(str(man), out, _model_free(), workers=0, formats=("md",)))
    assert report.processed == 6 and report.counts["ok"] == 3


def test_same_content_twice_is_processed_once(corpus, tmp_path):
    man = _write_manifest(
        tmp_path / "dup.csv", [{"path": str(corpus / TRIAL), "id": "a"}, {"path": str(corpus / TRIAL), "id": "b"}]
    )
    report = run_batch(BatchOptions(str(man), tmp_path / "out", _model_free(), domain="bio", workers=0))
    assert report.processed == 1
    assert [(r["id"], r["status"]) for r in report.rows] == [("a", "ok"), ("b", "skipped")]
    assert report.rows[1]["memo"] == report.rows[0]["memo"] and "same content" in report.rows[1]["note"]


# --- crashes and kills -------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_crash_fails_only_its_document(corpus, tmp_path):
    """A worker killed mid-document (as by a segfault or the OOM killer) fails that document; a new worker goes on."""
    from m3analyst.batch.local import ProcessBackend
    from m3analyst.batch.work import Task

    fifo = tmp_path / "never-written.txt"
    os.mkfifo(fifo)  # reading it blocks forever: the worker is stuck on this document until killed
    tasks = [Task("stuck", str(fifo), "bio", ("md",), "k1"), Task("trial", str(corpus / TRIAL), "bio", ("md",), "k2")]
    backend = ProcessBackend(_model_free(), workers=1, threads=1)

    def kill_stuck_worker():
        import multiprocessing as mp

        deadline = time.time() + 60
        while time.time() < deadline:
            kids = [p for p in mp.active_children() if p.name == "m3batch-w1"]
            if kids:
                time.sleep(3)  # let it start and pick up the fifo
                os.kill(kids[0].pid, signal.SIGKILL)
                return
            time.sleep(0.1)

    threading.Thread(target=kill_stuck_worker, daemon=True).start()
    outcomes = {o.id: o for o in backend.run(tasks)}
    assert outcomes["stuck"].status == "failed" and "worker crashed (signal 9)" in outcomes["stuck"].error
    assert outcomes["stuck"].retryable
    assert outcomes["trial"].status == "ok" and outcomes["trial"].worker == "w2"


def _start_and_signal(cmd: list[str], out: Path, sig: int) -> subprocess.Popen:
    """Start the batch in its own process group; once the first record lands, send `sig` to the group."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True)
    try:
        deadline = time.time() + 120
        while not list((out / "records").glob("*.json")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the batch ended before the signal: " + proc.stderr.read()
        os.killpg(proc.pid, sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc


def _slow_batch(corpus: Path, tmp_path: Path) -> tuple[list[tuple[str, Path]], Path, list[str]]:
    docs = [
        ("adams", corpus / CONTRACT),
        ("mmm", corpus / "finance/3M_2018_10K.pdf"),  # slow (160 pages): the signal lands while it is in flight
        ("trial", corpus / TRIAL),
        ("bby-q2", corpus / TENQ),
    ]
    man = _write_manifest(tmp_path / "docs.csv", [{"path": str(p), "id": i} for i, p in docs])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "m3analyst", "batch", str(man), "--out", str(out), "--model", "none", "--workers", "1"]
    return docs, out, cmd


@pytest.mark.slow
def test_ctrl_c_finishes_in_flight_document_and_stops(corpus, tmp_path):
    docs, out, cmd = _slow_batch(corpus, tmp_path)
    proc = _start_and_signal(cmd, out, signal.SIGINT)
    assert proc.returncode == 130, proc.stderr.read()
    rows = _summary(out)
    # adams done before the Ctrl-C, mmm was in flight and finished, nothing else started
    assert [rows[i]["status"] for i, _ in docs] == ["ok", "ok", "pending", "pending"]
    assert sorted(p.name for p in (out / "memos").iterdir()) == ["adams.md", "mmm.md"]


@pytest.mark.slow
def test_sigkill_mid_run_leaves_no_partial_memo_and_resumes(corpus, tmp_path):
    docs, out, cmd = _slow_batch(corpus, tmp_path)
    _start_and_signal(cmd, out, signal.SIGKILL)  # coordinator and its worker, no chance to clean up
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert 1 <= len(done_before) < len(docs)
    # memos are written (atomically) before their record: at most the one being recorded lacks a record
    recorded = {json.loads(p.read_text())["memos"]["md"] for p in (out / "records").glob("*.json")}
    assert len({f"memos/{p.name}" for p in (out / "memos").glob("*.md")} - recorded) <= 1

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = _summary(out)
    assert sorted(rows) == sorted(i for i, _ in docs)
    assert all(rows[i]["status"] in ("ok", "skipped") for i in rows)
    assert sum(rows[i]["status"] == "skipped" for i in rows) == len(done_before)  # finished work not redone
    assert sorted(p.name for p in (out / "memos").iterdir()) == sorted(f"{i}.md" for i, _ in docs)  # no tmp, no dupes
    records = list((out / "records").glob("*.json"))
    assert len(records) == len(docs)
    assert all(p.stat().st_mtime_ns == done_before[p.name] for p in records if p.name in done_before)


# --- Ray -------------------------------------------------------------------------------------------


def test_ray_local_actors_run_the_same_batch(corpus, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install -e '.[ray]'); Ray backend untested")
    bad = _bad_files(tmp_path)
    man = _write_manifest(
        tmp_path / "docs.csv",
        [{"path": str(corpus / CONTRACT), "id": "adams"}, {"path": str(corpus / TRIAL), "id": "trial"},
         {"path": str(bad["corrupt"]), "id": "corrupt"}],
    )  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_batch(BatchOptions(str(man), tmp_path / "out", _model_free(), workers=2, ray="local"))
        # as against a cluster address: the documents' bytes travel with the tasks
        address = ray.get_runtime_context().gcs_address
        shipped = run_batch(BatchOptions(str(man), tmp_path / "shipped", _model_free(), workers=1, ray=address))
    finally:
        ray.shutdown()
    assert report.backend == "ray" and report.workers == 2
    status = {r["id"]: r["status"] for r in report.rows}
    assert status == {"adams": "ok", "trial": "ok", "corrupt": "failed"}
    assert all(r["worker"].startswith("ray") for r in report.rows if r["status"] == "ok")
    assert {r["id"]: r["status"] for r in shipped.rows} == status
    assert shipped.rows[2]["error"].startswith(str(bad["corrupt"]))  # errors name the user's file, not a temp copy
    assert RecordStore(tmp_path / "out").keys() and (tmp_path / "out" / "memos" / "adams.md").is_file()


def test_manifest_domain_overrides_detection(corpus, tmp_path):
    man = _write_manifest(
        tmp_path / "m.csv",
        [{"path": str(corpus / TRIAL), "id": "as-legal", "domain": "legal"}, {"path": str(corpus / CONTRACT), "id": "auto", "domain": ""}],
    )
    report = run_batch(BatchOptions(str(man), tmp_path / "out", _model_free(), domain="auto", workers=0))
    assert [(r["id"], r["status"], r["domain"]) for r in report.rows] == [("as-legal", "ok", "legal"), ("auto", "ok", "legal")]
    record = json.loads((tmp_path / "out" / "records" / f"{report.rows[0]['key']}.json").read_text())
    assert record["domain"] == "legal"  # detection alone says bio for this trial (see the test above)
