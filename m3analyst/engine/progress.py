"""A Rich progress bar on stderr for model pulls (silent when stderr is not a terminal)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from m3analyst.engine.pull import Reporter


@contextmanager
def rich_reporter() -> Iterator[Reporter]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("model", total=1)

        def report(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=max(total, 1))

        yield report
