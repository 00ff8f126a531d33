"""`run_batch`: discover -> plan (skip finished keys) -> run on a backend -> write memos + records -> summary.

The coordinator is the only writer of the output folder: for each outcome it writes the memo files
atomically, then the record (see store.py), then updates the progress. The summary (csv, json,
index.html) is rewritten at the end, also after Ctrl-C or SIGTERM; after a SIGKILL the next run rebuilds it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol

from m3analyst.batch.discover import DOMAIN_CHOICES, BatchItem, discover
from m3analyst.batch.job import BatchOptions, BatchReport
from m3analyst.batch.local import Backend, InlineBackend, ProcessBackend
from m3analyst.batch.report import write_summary
from m3analyst.batch.store import RecordStore, file_sha256, settings_fingerprint, work_key
from m3analyst.batch.work import Outcome, Task
from m3analyst.errors import UsageError
from m3analyst.ingest.guard import file_kind
from m3analyst.settings import LimitsSettings

FORMATS = ("md", "html", "json")


class Events(Protocol):
    """What the CLI hears about: plan sizes, each finished row, notes."""

    def planned(self, rows: list[dict[str, Any]], todo: int) -> None: ...
    def finished(self, row: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...


class _Quiet:
    def planned(self, rows: list[dict[str, Any]], todo: int) -> None:
        pass

    def finished(self, row: dict[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def run_batch(opts: BatchOptions, events: Events | None = None) -> BatchReport:
    events = events or _Quiet()
    _validate(opts)
    started = time.perf_counter()
    opts.out.mkdir(parents=True, exist_ok=True)
    with _exclusive(opts.out):
        store = RecordStore(opts.out)
        store.remove_stale_temps()
        found = discover(opts.input, exclude=opts.out)
        plan = _Plan(opts, store, found.items)
        events.planned(plan.ordered_rows(), len(plan.todo))
        backend, processed, interrupted = None, 0, False
        if plan.todo:
            _prepare_model(opts, events)
            backend = _make_backend(opts, len(plan.todo))
            with _ctrl_c(backend, events):
                for outcome in backend.run(plan.todo):
                    row = plan.finish(outcome)
                    processed += 1
                    events.finished(row)
            interrupted = backend.stopping
        report = BatchReport(
            rows=plan.ordered_rows(),
            out=opts.out,
            backend=backend.name if backend else "none",
            workers=backend.n if backend else 0,
            wall_s=time.perf_counter() - started,
            processed=processed,
            interrupted=interrupted,
            ignored=found.ignored,
        )
        write_summary(report, opts)
    return report


def _validate(opts: BatchOptions) -> None:
    if opts.domain not in DOMAIN_CHOICES:
        raise UsageError(f"--domain must be one of {', '.join(DOMAIN_CHOICES)}, not {opts.domain!r}")
    if opts.workers < 0:
        raise UsageError("--workers must be 0 (in-process) or more")
    unknown = set(opts.formats) - set(FORMATS)
    if unknown or "md" not in opts.formats:
        raise UsageError(f"memo formats must include md and be among {FORMATS}")


def _prepare_model(opts: BatchOptions, events: Events) -> None:
    """Pull/convert the model once here, so N workers starting together don't race on the model cache.

    (Skipped for a remote Ray cluster: its nodes fetch the model themselves.)
    """
    model = opts.settings.engine.model
    if model is None or (opts.ray not in (None, "", "local")):
        return
    from m3analyst.engine.pull import ensure_model

    said: set[str] = set()

    def report(description: str, done: int, total: int) -> None:
        if description not in said:
            said.add(description)
            events.note(f"model {model}: {description}")

    ensure_model(model, progress=report)


def _make_backend(opts: BatchOptions, n_todo: int) -> Backend:
    """Registry-free on purpose: three backends chosen by two flags."""
    if opts.ray is not None:
        from m3analyst.batch.ray_backend import RayBackend

        return RayBackend(opts.settings, opts.workers or None, opts.ray)
    if opts.workers == 0:
        return InlineBackend(opts.settings, threads=opts.settings.engine.threads)
    n = min(opts.workers, n_todo)
    threads = opts.settings.engine.threads or max(1, (os.cpu_count() or 1) // n)
    return ProcessBackend(opts.settings, n, threads)


class _Plan:
    """Per item: a row (what the summary says) and, when work is needed, a Task."""

    def __init__(self, opts: BatchOptions, store: RecordStore, items: list[BatchItem]):
        self.opts, self.store = opts, store
        self.settings_fp = settings_fingerprint(opts.settings)
        self.rows: dict[str, dict[str, Any]] = {}
        self.todo: list[Task] = []
        self.waiting: dict[str, list[str]] = {}  # key -> ids with the same key as a queued task
        for it in items:
            self._plan_item(it)

    def _plan_item(self, it: BatchItem) -> None:
        domain = it.domain or self.opts.domain
        row = self.rows[it.id] = _blank_row(it, domain)
        problem = _unreadable(it.path, self.opts.settings.limits)
        if problem:
            return self._fail(row, f"{it.path}: {problem}")
        try:
            sha = file_sha256(it.path)
        except FileNotFoundError:
            return self._fail(row, f"{it.path}: no such file")
        except IsADirectoryError:
            return self._fail(row, f"{it.path}: is a directory, not a document")
        except OSError as e:
            return self._fail(row, f"{it.path}: cannot read file ({e.strerror or e})")
        key = row["key"] = work_key(sha, self.settings_fp, domain, self.opts.formats)
        row["sha256"] = sha
        if key in self.waiting:
            self.waiting[key].append(it.id)
            return None
        record = self.store.get(key)
        if record is not None and self._reusable(record):
            return _fill_from_record(row, record, "skipped" if record["status"] == "ok" else "failed")
        self.waiting[key] = []
        self.todo.append(Task(it.id, str(it.path), domain, tuple(self.opts.formats), key))
        return None

    def _reusable(self, record: dict[str, Any]) -> bool:
        if record.get("status") == "ok":
            return self.store.memos_exist(record)
        return not record.get("retryable", True) and not self.opts.retry_failed

    @staticmethod
    def _fail(row: dict[str, Any], error: str) -> None:
        row.update(status="failed", error=error, error_type="InputError")

    def finish(self, outcome: Outcome) -> dict[str, Any]:
        """Write the memo files, then the record; return the item's summary row."""
        row = self.rows[outcome.id]
        memos = self.store.write_memos(outcome.id, outcome.artifacts) if outcome.status == "ok" else {}
        record = _record(row, outcome, memos)
        self.store.put(outcome.key, record)
        _fill_from_record(row, record, outcome.status)
        for other in self.waiting.pop(outcome.key, []):
            status = "skipped" if outcome.status == "ok" else "failed"
            _fill_from_record(self.rows[other], record, status)
            self.rows[other]["note"] = f"same content and settings as {outcome.id}"
        return row

    def ordered_rows(self) -> list[dict[str, Any]]:
        return list(self.rows.values())


def _unreadable(path: Path, limits: LimitsSettings) -> str | None:
    """Why `path` must not be read (a FIFO would block the hash, a device never ends), or None: checked by stat."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # the read below says which error
    kind = file_kind(st.st_mode)
    if kind is not None:
        return f"is {kind}, not a document file"
    if st.st_size > limits.max_file_mb * 2**20:
        return f"file is {st.st_size / 2**20:,.1f} MB, over the limit of {limits.max_file_mb:g} MB"
    return None


def _blank_row(it: BatchItem, domain: str) -> dict[str, Any]:
    return {
        "id": it.id,
        "path": str(it.path),
        "domain": domain,
        "status": "pending",
        "error": None,
        "error_type": None,
        "ingest_s": None,
        "memo_s": None,
        "total_s": None,
        "cpu_s": None,
        "pages": None,
        "kind": None,
        "grounding_score": None,
        "memo": None,
        "memo_html": None,
        "memo_json": None,
        "memo_mode": None,
        "worker": None,
        "note": None,
        "key": None,
        "sha256": None,
        "extra": dict(it.extra),
        "facts": [],
    }


def _record(row: dict[str, Any], o: Outcome, memos: dict[str, str]) -> dict[str, Any]:
    return {
        "id": o.id,
        "path": row["path"],
        "sha256": row["sha256"],
        "domain": o.domain or row["domain"],
        "status": o.status,
        "error": o.error,
        "error_type": o.error_type,
        "retryable": o.retryable,
        "timings": o.timings,
        "pages": o.pages,
        "kind": o.kind,
        "grounding_score": o.grounding_score,
        "memo_mode": o.memo_mode,
        "memos": memos,
        "worker": o.worker,
        "facts": o.facts,
    }


def _fill_from_record(row: dict[str, Any], rec: dict[str, Any], status: str) -> None:
    timings = rec.get("timings") or {}
    memos = rec.get("memos") or {}
    row.update(
        status=status,
        domain=rec.get("domain") or row["domain"],
        error=rec.get("error"),
        error_type=rec.get("error_type"),
        ingest_s=timings.get("ingest_s"),
        memo_s=timings.get("memo_s"),
        total_s=timings.get("total_s"),
        cpu_s=timings.get("cpu_s"),
        pages=rec.get("pages"),
        kind=rec.get("kind"),
        grounding_score=rec.get("grounding_score"),
        memo=memos.get("md"),
        memo_html=memos.get("html"),
        memo_json=memos.get("json"),
        memo_mode=rec.get("memo_mode"),
        worker=rec.get("worker"),
        facts=rec.get("facts") or [],
    )
    if status == "skipped":
        row["note"] = "done in an earlier run" if rec.get("id") == row["id"] else f"done earlier as {rec.get('id')}"


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One batch per output folder at a time (an flock, released when the process dies)."""
    with (out / ".lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{out}: another batch is writing to this folder") from None
        yield


@contextmanager
def _ctrl_c(backend: Backend, events: Events) -> Iterator[None]:
    """First Ctrl-C: finish in-flight documents, start no more. Second: abandon them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(_sig, _frame):
        if backend.stopping:
            backend.abandon()
            events.note("abandoning in-flight documents (nothing half-written)")
        else:
            backend.stop()
            events.note("stopping after the documents in flight (Ctrl-C again to abandon them)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigint)  # a polite kill is a Ctrl-C: the summary is written
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
