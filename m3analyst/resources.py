"""Where the declarative folders (domains/, prompts/, evals/) live.

In a checkout (editable install) they are the top-level folders; in a wheel they are installed
as `m3analyst.resources.<name>`.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@cache
def resource_dir(name: str) -> Path:
    """Folder of the declarative resource `name` ("domains", "prompts" or "evals")."""
    candidate = REPO_ROOT / name
    if (REPO_ROOT / "pyproject.toml").exists() and candidate.is_dir():
        return candidate
    # A wheel installs them as data folders m3analyst/resources/<name>/ (setup.py), beside this module.
    return Path(__file__).resolve().parent / "resources" / name


def home_dir() -> Path:
    """$M3ANALYST_HOME (default ~/.cache/m3analyst): pulled models, converted weights."""
    raw = os.environ.get("M3ANALYST_HOME")
    if raw is not None and not raw.strip():
        from m3analyst.errors import UsageError

        raise UsageError("M3ANALYST_HOME is set but empty: name a folder, or unset it for ~/.cache/m3analyst")
    path = Path(raw) if raw is not None else Path.home() / ".cache" / "m3analyst"
    path.mkdir(parents=True, exist_ok=True)
    return path


def corpus_dir() -> Path:
    """The shared real-document corpus (../shared/corpus from the repo root), or $M3ANALYST_CORPUS."""
    return Path(os.environ.get("M3ANALYST_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))
