"""Shared pieces for commands: consoles, error handling, JSON/file output, progress."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from m3analyst.errors import M3Error, UsageError, printable
from m3analyst.io import write_atomic  # noqa: F401 - commands write their outputs through it


def safe(value: object) -> str:
    """A user-supplied string (file name, id, option value, document text) ready to put inside Rich markup:
    control characters and ANSI sequences removed, markup escaped, on one line."""
    return escape(printable(value, one_line=True))


class SafeConsole(Console):
    """The one place strings reach the terminal: control characters and ANSI sequences are stripped from every
    string rendered (table cells too), and a string that is not valid markup prints as it is instead of raising."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        text = printable(text)
        try:
            return super().render_str(text, **kwargs)
        except MarkupError:
            return super().render_str(escape(text), **kwargs)


class _SafeTextColumn(TextColumn):
    def render(self, task) -> Text:
        try:
            return super().render(task)
        except MarkupError:
            return Text(printable(self.text_format.format(task=task), one_line=True))


console = SafeConsole()
err_console = SafeConsole(stderr=True)

_state = {"debug": os.environ.get("M3ANALYST_DEBUG", "") not in ("", "0")}


def set_help(command: Callable, param: str, text: str) -> None:
    """Set the --help text of a command's parameter when the app is built (it names the domains found then)."""
    inspect.signature(command).parameters[param].default.help = text


def domain_names() -> str:
    from m3analyst.domains.search import list_domains

    return ", ".join(list_domains())


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
            err_console.print(f"[bold red]error:[/] {safe(e)}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - last-resort boundary for users
            if debug_enabled():
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(e).__name__}: {safe(e)} (rerun with --debug for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def emit(text: str, out: Path | None) -> None:
    """Print `text` to stdout, or write it atomically to `out`."""
    if out is None:
        text = printable(text)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        write_atomic(out, text)
        err_console.print(f"wrote {safe(out)}", highlight=False)


def emit_json(obj: Any, out: Path | None) -> None:
    emit(json.dumps(obj, indent=2, ensure_ascii=False, default=str), out)


@contextmanager
def progress(transient: bool = True) -> Iterator[Progress]:
    """A Rich progress display on stderr (silent when stderr is not a terminal)."""
    with Progress(
        SpinnerColumn(),
        _SafeTextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    ) as p:
        yield p
