"""Progress on stderr for long work: model pulls (bytes), conversion, prefill and decode.

`rich_reporter()` yields a Reporter(description, done, total): a Rich bar on a terminal; otherwise plain lines
on stderr, at most one every `PLAIN_EVERY_S` seconds per description plus the first and the last (a log or a
pipe still shows the work is moving). Totals over a megabyte are shown as MB. M3ANALYST_PROGRESS=0 silences it.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from m3analyst.engine.pull import Reporter

PLAIN_EVERY_S = 5.0


def enabled() -> bool:
    return os.environ.get("M3ANALYST_PROGRESS", "1") != "0"


def amount(done: int, total: int) -> str:
    """'12.0/491.4 MB' for byte counts, '3/7' for steps."""
    if total >= 1_000_000:
        return f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB"
    return f"{done}/{total}"


class PlainReporter:
    """Throttled one-line progress for a stderr that is not a terminal."""

    def __init__(self, stream=None, every_s: float = PLAIN_EVERY_S):
        self.stream, self.every_s = stream or sys.stderr, every_s
        self.last: dict[str, float] = {}

    def __call__(self, description: str, done: int, total: int) -> None:
        now = time.monotonic()
        first = description not in self.last
        if first or done >= total or now - self.last[description] >= self.every_s:
            self.last[description] = now
            self.stream.write(f"[m3analyst] {description}: {amount(done, total)}\n")
            self.stream.flush()


@contextmanager
def rich_reporter() -> Iterator[Reporter]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled():
        yield lambda description, done, total: None
        return
    if not console.is_terminal:
        yield PlainReporter()
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[amount]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("model", total=1, amount="")

        def report(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=max(total, 1),
                       amount=amount(done, total) if total > 1 else "")

        yield report
