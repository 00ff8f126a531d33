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
    # Every test parses its documents (the parsed-document cache has its own test, tests/test_ingest_cache.py).
    monkeypatch.setenv("M3ANALYST_INGEST__DOC_CACHE", "0")
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


@pytest.fixture(params=["simd", "plain"])
def c_build(request, monkeypatch):
    """Parametrizes a test over a C kernel's builds: as built for this CPU, and its plain-C loops
    (-DM3_NO_SIMD). Returns use(kernel): call it with the module's cbuild.Kernel."""
    def use(kernel):
        if request.param == "plain":
            lib = kernel.build(kernel_flags() + ["-DM3_NO_SIMD"])
            if lib is None:
                pytest.skip("the plain-C variant did not build")
            monkeypatch.setattr(kernel, "lib", lib)
            monkeypatch.setattr(kernel, "tried", True)
        return request.param

    return use


def kernel_flags() -> list[str]:
    from m3analyst.kernels import cbuild

    return list(cbuild.FLAGS)
