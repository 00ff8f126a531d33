"""The source tree never shadows installed packages: kernels/ installs as m3analyst.kernels, and the Hugging Face
package `kernels` (which transformers imports) must win `import kernels` from the repository root."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_from_root(code: str) -> str:
    # `python -c` puts the working directory first on sys.path, as `python -m pytest` and `python -m m3analyst` do.
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_kernels_from_root_is_not_the_repository():
    try:
        importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the Hugging Face `kernels` package is not installed here, so nothing can be shadowed")
    where = _run_from_root("import sys, kernels; print(kernels.__file__ or list(kernels.__path__)[0])")
    assert not Path(where).resolve().is_relative_to(ROOT), f"`import kernels` from the root resolved to {where}"


def test_the_project_kernels_import_as_m3analyst_kernels():
    where = _run_from_root("import m3analyst.kernels.msa as m; print(m.__file__)")
    assert Path(where).name == "__init__.py" and Path(where).parent.name == "msa"  # the op folder kernels/msa/
    assert Path(where).parent.parent.name == "kernels"


def test_python_dash_m_m3analyst_runs_from_root():
    out = subprocess.run([sys.executable, "-m", "m3analyst", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "finance" in out.stdout
