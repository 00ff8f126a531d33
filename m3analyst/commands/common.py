"""Shared pieces for commands: consoles, error handling, JSON/file output, progress."""

from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from m3analyst.errors import M3Error
from m3analyst.io import write_atomic

console = Console()
err_console = Console(stderr=True)

_state = {"debug": os.environ.get("M3ANALYST_DEBUG", "") not in ("", "0")}


def set_debug(on: bool) -> None:
    _state["debug"] = _state["debug"] or on


def debug_enabled() -> bool:
    return _state["debug"]


def handle_errors(fn: Callable) -> Callable:
    """Expected errors become one line on stderr and their exit code; others too, unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except M3Error as e:
            if debug_enabled():
                raise
            err_console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - last-resort boundary for users
            if debug_enabled():
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def emit(text: str, out: Path | None) -> None:
    """Print `text` to stdout, or write it atomically to `out`."""
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        write_atomic(out, text)
        err_console.print(f"wrote {out}", highlight=False)


def emit_json(obj: Any, out: Path | None) -> None:
    emit(json.dumps(obj, indent=2, ensure_ascii=False, default=str), out)


@contextmanager
def progress(transient: bool = True) -> Iterator[Progress]:
    """A Rich progress display on stderr (silent when stderr is not a terminal)."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    ) as p:
        yield p
