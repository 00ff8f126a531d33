"""The per-document work, the same in every backend (in-process, local processes, Ray actors).

A `Worker` loads the model once (none in model-free mode) and then turns `Task`s into `Outcome`s:
ingest -> domain (detected unless given) -> write_memo -> rendered memo texts. It never writes
files: the coordinator writes memos and records, so there is one writer and results from remote
Ray actors land in the same output folder.

Every exception of one document becomes a failed `Outcome` (failure isolation); only a model that
cannot load is fatal to the worker (`ModelError` from `Worker.__init__`).
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from m3analyst.errors import InputError, M3Error
from m3analyst.settings import Settings, use

@dataclass
class Task:
    """One document to process. `data` carries the file's bytes when the worker may not see the path (Ray)."""

    id: str
    path: str
    domain: str  # "auto" or a domain name
    formats: tuple[str, ...]  # memo renderings wanted: "md" always, "html", "json"
    key: str
    data: bytes | None = None


@dataclass
class Outcome:
    """What a worker sends back for one `Task` (picklable, no file handles)."""

    id: str
    key: str
    status: str  # "ok" | "failed"
    domain: str | None = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool = False  # True for failures that may not recur (worker crash, internal error)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: ingest_s, memo_s, render_s, total_s (wall), cpu_s
    pages: int | None = None
    kind: str | None = None  # Document.metadata.kind
    grounding_score: float | None = None
    memo_mode: str | None = None  # "extractive" (model-free) or the engine's name
    artifacts: dict[str, str] = field(default_factory=dict)  # format -> rendered text
    worker: str = ""
    facts: list[dict[str, Any]] = field(default_factory=list)  # the memo's facts (`fact_rows`), for OUT/facts.csv


def failed(task: Task, error: str, error_type: str, retryable: bool, worker: str = "") -> Outcome:
    return Outcome(task.id, task.key, "failed", error=error, error_type=error_type, retryable=retryable, worker=worker)


def _markdown(memo) -> str:
    from m3analyst.memo.render_md import render_markdown

    return render_markdown(memo)


def _html(memo) -> str:
    from m3analyst.memo.render_html import render_html

    return render_html(memo)


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1, ensure_ascii=False, default=str)


# Memo renderings: format -> function(memo) -> text.
RENDERERS: dict[str, Callable[[Any], str]] = {
    "md": _markdown,
    "html": _html,
    "json": lambda memo: _json(memo.to_dict()),
}


def limit_threads(threads: int) -> None:
    """Cap math-library threads in this process (call before torch is imported, again after)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class Worker:
    """Holds the engine (loaded once) and processes documents one at a time."""

    def __init__(self, settings: Settings, threads: int | None = None, name: str = ""):
        self.name = name or f"pid{os.getpid()}"
        self.settings = settings.model_copy(deep=True)
        if threads is not None and self.settings.engine.threads is None:
            self.settings.engine.threads = threads
        if self.settings.engine.threads:
            limit_threads(self.settings.engine.threads)
        self.engine = self._load_engine()
        if self.settings.engine.threads:
            limit_threads(self.settings.engine.threads)

    @property
    def model_free(self) -> bool:
        return self.settings.engine.model is None

    def _load_engine(self):
        if self.model_free:
            return None
        from m3analyst.engine import load_engine

        # The coordinator pulled the model already (runner._prepare_model); no progress bar per worker.
        return load_engine(self.settings.engine, progress=_silent)

    def process(self, task: Task) -> Outcome:
        """Never raises for a document's own problems: they come back as a failed Outcome."""
        try:
            with use(self.settings):  # the batch's settings, in this process too (e.g. ingest.doc_cache)
                return self._process(task)
        except InputError as e:
            return failed(task, str(e), type(e).__name__, retryable=False, worker=self.name)
        except M3Error as e:
            return failed(task, str(e), type(e).__name__, retryable=False, worker=self.name)
        except MemoryError:
            return failed(task, "out of memory", "MemoryError", retryable=True, worker=self.name)
        except Exception as e:  # noqa: BLE001 - one bad document must not stop the batch
            where = traceback.extract_tb(e.__traceback__)[-1]
            msg = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
            return failed(task, msg, type(e).__name__, retryable=True, worker=self.name)

    def _process(self, task: Task) -> Outcome:
        cpu0 = time.process_time()  # this worker process's CPU time (all its threads): load-independent cost
        t0 = time.perf_counter()
        doc = self._ingest(task)
        t1 = time.perf_counter()
        domain = task.domain if task.domain != "auto" else _detect_domain(doc)
        memo = _write_memo(doc, domain, self.settings, self.engine)
        t2 = time.perf_counter()
        artifacts = {fmt: RENDERERS[fmt](memo) for fmt in task.formats}
        t3 = time.perf_counter()
        timings = {"ingest_s": t1 - t0, "memo_s": t2 - t1, "render_s": t3 - t2, "total_s": t3 - t0,
                   "cpu_s": time.process_time() - cpu0}  # fmt: skip
        return Outcome(
            task.id,
            task.key,
            "ok",
            domain=domain,
            timings={k: round(v, 3) for k, v in timings.items()},
            pages=len(doc.pages),
            kind=doc.metadata.kind,
            grounding_score=_grounding_score(memo),
            memo_mode="extractive" if self.engine is None else getattr(self.engine, "name", "engine"),
            artifacts=artifacts,
            worker=self.name,
            facts=fact_rows(memo.facts),
        )

    def _ingest(self, task: Task):
        from m3analyst.ingest import load_document

        if task.data is None:
            return load_document(task.path, self.settings.limits)
        # The path may not exist where this worker runs (remote Ray node): load the shipped bytes.
        with tempfile.TemporaryDirectory(prefix="m3batch-") as tmp:
            local = Path(tmp) / ("doc" + Path(task.path).suffix[:16])  # not the name: it may be near NAME_MAX
            local.write_bytes(task.data)
            try:
                doc = load_document(local, self.settings.limits)
            except InputError as e:
                raise InputError(task.path, e.problem, e.hint) from None
        doc.metadata.source = task.path
        return doc


FACT_COLUMNS = ("fact", "label", "period", "value", "unit", "shown", "page", "derived")


def fact_rows(facts) -> list[dict[str, Any]]:
    """The memo's facts as flat rows (value as extracted: USD, not millions; `shown` as the memo prints it)."""
    return [{"fact": f.name, "label": f.title, "period": f.period, "value": f.value, "unit": f.unit,
             "shown": f.display(), "page": f.page, "derived": f.derived} for f in facts]


def _silent(description: str, done: int, total: int) -> None:
    pass


def _detect_domain(doc) -> str:
    from m3analyst.domains import detect_domain

    return detect_domain(doc)


def _write_memo(doc, domain: str, settings: Settings, engine):
    from m3analyst.memo import write_memo

    return write_memo(doc, domain=domain, settings=settings, engine=engine)


def _grounding_score(memo) -> float | None:
    grounding = getattr(memo, "grounding", None) or {}
    score = grounding.get("grounding_score") if isinstance(grounding, dict) else getattr(grounding, "grounding_score", None)
    return None if score is None else round(float(score), 4)
