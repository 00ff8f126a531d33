"""Backends that run `Worker`s on this machine: in-process, or N spawned worker processes.

Local processes: each worker is a `spawn`ed process holding one `Worker` (model loaded once) and a
pipe to the coordinator. The coordinator hands a worker its next task only when it is idle, so it
always knows which document each worker holds: when a worker dies (segfault in a PDF library, OOM
kill) that document is recorded as failed ("worker crashed") and a fresh worker takes its place.
Workers ignore SIGINT; the coordinator decides what Ctrl-C means (see `Backend.stop`).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Iterable, Iterator

from m3analyst.batch.work import Outcome, Task, Worker, failed, limit_threads
from m3analyst.errors import DocumentTimeout, M3Error, ModelError
from m3analyst.settings import Settings


class Backend:
    """Runs tasks, yielding an Outcome per task as it finishes (any order).

    `stop()` (first Ctrl-C): hand out no new tasks, let in-flight ones finish.
    `abandon()` (second Ctrl-C): stop waiting for in-flight tasks; they are not recorded.
    """

    name = "backend"
    n = 1  # workers (processes or actors)
    timeout_s = float("inf")  # per document (limits.document_timeout_s): every backend enforces it the same way

    def __init__(self) -> None:
        self.stopping = False
        self.abandoning = False

    def overdue(self, since: float) -> bool:
        """A document handed to a worker at `since` (perf_counter) has run past the per-document timeout."""
        return time.perf_counter() - since > self.timeout_s

    def timed_out(self, task: Task, worker: str = "") -> Outcome:
        """The outcome recorded for a document past the timeout (its worker is stopped by the backend)."""
        return failed(task, str(DocumentTimeout(self.timeout_s)), "DocumentTimeout", False, worker)

    def stop(self) -> None:
        self.stopping = True

    def abandon(self) -> None:
        self.stopping = self.abandoning = True

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:  # pragma: no cover - interface
        raise NotImplementedError


class InlineBackend(Backend):
    """One Worker in this process (--workers 0): simplest to debug, no isolation from crashes."""

    name = "inline"

    def __init__(self, settings: Settings, threads: int | None = None):
        super().__init__()
        self.worker = Worker(settings, threads, name="inline")

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        timeout = self.worker.settings.limits.document_timeout_s
        for task in tasks:
            if self.stopping:
                return
            with _alarm(timeout):
                outcome = self.worker.process(task)
            yield outcome


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """In the main thread: raise DocumentTimeout in the document's processing after `seconds` (SIGALRM; Python
    code is interrupted between bytecodes, so a long C call ends first). Elsewhere: no timeout."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(_sig, _frame):
        raise DocumentTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def worker_main(conn: Connection, settings_json: str, threads: int | None, name: str) -> None:
    """Entry point of a spawned worker: load once, then serve tasks until told to stop or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:
        limit_threads(threads)
    try:
        worker = Worker(Settings.model_validate_json(settings_json), threads, name=name)
    except M3Error as e:
        conn.send(("fatal", str(e)))
        return
    except Exception as e:  # noqa: BLE001 - report, don't print a traceback from a child
        conn.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", name))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # coordinator gone
        if task is None:
            return
        try:
            conn.send(("done", worker.process(task)))
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Slot:
    name: str
    proc: mp.process.BaseProcess
    conn: Connection
    ready: bool = False
    task: Task | None = None
    since: float = 0.0  # when the task was handed over (perf_counter)


class ProcessBackend(Backend):
    """N spawned worker processes; a worker that dies is replaced and its document marked failed."""

    name = "processes"

    def __init__(self, settings: Settings, workers: int, threads: int | None = None, poll_s: float = 0.2):
        super().__init__()
        self.settings_json = settings.model_dump_json()
        self.timeout_s = settings.limits.document_timeout_s
        self.n = max(1, workers)
        self.threads = threads
        self.poll_s = poll_s
        self.ctx = mp.get_context("spawn")
        self._spawned = 0

    def _spawn(self) -> _Slot:
        self._spawned += 1
        name = f"w{self._spawned}"
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=worker_main, args=(child, self.settings_json, self.threads, name), name=f"m3batch-{name}", daemon=True
        )
        proc.start()
        child.close()
        return _Slot(name, proc, parent)

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        pending = deque(tasks)
        slots = [self._spawn() for _ in range(min(self.n, len(pending)))]
        try:
            while slots and not self.abandoning and (any(s.task for s in slots) or (pending and not self.stopping)):
                self._dispatch(slots, pending)
                handles = [h for s in slots for h in (s.conn, s.proc.sentinel)]
                wait(handles, timeout=self.poll_s)  # wake on a message or a death; each slot is checked below
                for i, slot in enumerate(slots):
                    yield from self._collect(slot)
                    yield from self._expire(slot)
                    if not slot.proc.is_alive():
                        yield from self._collect(slot)  # whatever it sent before exiting
                        yield from self._bury(slot)
                        slot.conn.close()
                        slots[i] = self._spawn() if pending and not self.stopping else None
                slots = [s for s in slots if s is not None]
        finally:
            self._shutdown(slots)

    def _dispatch(self, slots: list[_Slot], pending: deque) -> None:
        for slot in slots:
            if slot.ready and slot.task is None and pending and not self.stopping:
                slot.task, slot.since = pending.popleft(), time.perf_counter()
                slot.conn.send(slot.task)

    def _collect(self, slot: _Slot) -> Iterator[Outcome]:
        while not slot.conn.closed and slot.conn.poll():
            try:
                kind, payload = slot.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "fatal":
                raise ModelError(f"worker {slot.name} could not start: {payload}")
            if kind == "ready":
                slot.ready = True
            elif kind == "done":
                slot.task = None
                yield payload

    def _expire(self, slot: _Slot) -> Iterator[Outcome]:
        """A document past the per-document timeout: kill its worker (replaced like a crashed one), record it."""
        if slot.task is None or not self.overdue(slot.since) or not slot.proc.is_alive():
            return
        slot.proc.kill()
        slot.proc.join(timeout=5)
        task, slot.task = slot.task, None
        yield self.timed_out(task, slot.name)

    def _bury(self, slot: _Slot) -> Iterator[Outcome]:
        """A worker exited on its own: fail the document it held (or fail the batch if it never started)."""
        code = slot.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if not slot.ready:
            raise ModelError(f"worker {slot.name} died while starting ({how})")
        if slot.task is not None:
            task, slot.task = slot.task, None
            yield failed(task, f"worker crashed ({how}) while processing this document", "WorkerCrash", True, slot.name)

    def _shutdown(self, slots: list[_Slot]) -> None:
        for slot in slots:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError, ValueError):
                pass
        for slot in slots:
            slot.proc.join(timeout=0.5 if slot.task is None else 0)
            if slot.proc.is_alive():
                slot.proc.terminate()
                slot.proc.join(timeout=5)
            if not slot.conn.closed:
                slot.conn.close()
