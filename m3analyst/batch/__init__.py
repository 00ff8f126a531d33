"""Batch memos: a folder, glob or manifest of documents -> memos + summary, resumable and parallel.

    report = run_batch(BatchOptions(input="filings/", out=Path("memos"), workers=2))

Pieces: discover.py (INPUT -> items), store.py (content-hash keys, atomic records/memos),
work.py (the per-document Worker, same in every backend), local.py (in-process and spawned worker
processes), ray_backend.py (Ray actors), job.py (BatchOptions, BatchReport), runner.py (plan, run, Ctrl-C),
report.py (summary files).
"""

from __future__ import annotations

from m3analyst.batch.discover import BatchItem, Discovery, discover
from m3analyst.batch.job import BatchOptions, BatchReport
from m3analyst.batch.runner import run_batch
from m3analyst.batch.work import Outcome, Task, Worker

__all__ = [
    "BatchItem",
    "BatchOptions",
    "BatchReport",
    "Discovery",
    "Outcome",
    "Task",
    "Worker",
    "discover",
    "run_batch",
]

# Exit code of `m3analyst batch` when some documents failed and the rest finished.
EXIT_PARTIAL = 4
