from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m3analyst.resources import corpus_dir

CORPUS = corpus_dir()


@pytest.fixture(autouse=True)
def _debug_off(monkeypatch):
    # Tests see what users see: one-line errors, no tracebacks.
    monkeypatch.delenv("M3ANALYST_DEBUG", raising=False)
    from m3analyst.commands import common

    common._state["debug"] = False


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"real-document corpus not found at {CORPUS} (expected ../shared/corpus beside the repo)")
    return CORPUS


@pytest.fixture
def cli():
    """Run the CLI in-process: cli(args...) -> click Result (stdout and stderr kept apart)."""
    from m3analyst.cli import app

    runner = CliRunner()

    def run(*args: str, **kw):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)

    return run
