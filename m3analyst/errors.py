"""Error hierarchy. Every expected failure is an `M3Error`; the CLI turns it into one line.

`InputError` always names the file and the problem, e.g. ``report.pdf: PDF is encrypted``.
"""

from __future__ import annotations

import re
from pathlib import Path

# ANSI escape sequences (CSI, OSC, two-byte escapes) and the remaining C0/C1 control characters
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BREAKS = re.compile(r"[\t\n]+")


def printable(text: object, one_line: bool = False) -> str:
    """`text` fit for a terminal: ANSI escape sequences and control characters removed (newlines and tabs kept,
    or folded to one space with `one_line`). Every user-supplied string shown by the CLI passes through this."""
    s = _CONTROL.sub("", _ANSI.sub("", str(text)))
    return _BREAKS.sub(" ", s) if one_line else s


class M3Error(Exception):
    """An expected failure with a message fit for the user (no traceback)."""

    exit_code = 1


class InputError(M3Error):
    """A document (or other input file) that cannot be used."""

    exit_code = 2

    def __init__(self, path: str | Path, problem: str, hint: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        msg = f"{self.path}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class UsageError(M3Error):
    """A bad option value or combination."""

    exit_code = 2


class DocumentTimeout(M3Error):
    """One document took longer than limits.document_timeout_s (batch)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"timed out after {seconds:g} s (limits.document_timeout_s; --timeout)")


class ModelError(M3Error):
    """Unknown model, failed pull, corrupt cache, unsupported architecture."""

    exit_code = 3


class ContextTooLongError(ModelError):
    def __init__(self, n_tokens: int, limit: int, what: str = "prompt"):
        self.n_tokens, self.limit = n_tokens, limit
        super().__init__(f"{what} is {n_tokens:,} tokens; the model's context limit is {limit:,} tokens")
