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


class EngineMeter:
    """Prefill and decode progress on stderr: 'prefill: 2,048/8,192 tokens, 95 tok/s, ETA 65 s'.

    `begin(label)` starts a phase's clock; `meter(label, done, total)` prints at most one line every `every_s`
    seconds (1 s on a terminal, rewriting the line; 10 s otherwise) plus the phase's last line. Only phases longer
    than `min_s` print at all, so short calls stay quiet."""

    def __init__(self, stream=None, every_s: float | None = None, min_s: float = 2.0):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if every_s is not None else (1.0 if self.tty else 10.0)
        self.min_s = min_s
        self.start: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.on_done = None  # on_done(label, total, seconds) when a phase reaches its total (auto records rates)

    def begin(self, label: str) -> None:
        self.start[label] = self.last[label] = time.monotonic()

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        start = self.start.setdefault(label, now)
        elapsed = now - start
        finished = done >= total
        if finished and self.on_done is not None:
            self.on_done(label, total, elapsed)
        if elapsed < self.min_s or (not finished and now - self.last.get(label, start) < self.every_s):
            return
        self.last[label] = now
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(total - done) / rate:,.0f} s" if rate > 0 and not finished else f", {elapsed:,.1f} s"
        line = f"[m3analyst] {label}: {done:,}/{total:,} tokens, {rate:,.1f} tok/s{eta}"
        end = "\n" if finished or not self.tty else ""
        self.stream.write(("\r\033[K" if self.tty else "") + line + end)
        self.stream.flush()


def engine_meter() -> EngineMeter | None:
    """The meter load_engine gives an engine (None with M3ANALYST_PROGRESS=0)."""
    return EngineMeter() if enabled() else None


def note(message: str) -> None:
    """One progress line on stderr for a step without a count (loading weights, quantizing)."""
    if enabled():
        sys.stderr.write(f"[m3analyst] {message}\n")
        sys.stderr.flush()
