"""Where domains are found: the search path and the spec file of each domain name, without parsing any spec (every
command lists the domains when it starts; spec.py parses the one it uses).

A domain is a folder `<name>/` holding `spec.yaml`, or a single file `<name>.yaml`. The folders searched, first wins:
the legacy $M3ANALYST_DOMAINS (os.pathsep-separated), the `domain.dirs` setting, $M3ANALYST_HOME/domains, then the
built-in `domains/` folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from m3analyst.errors import M3Error
from m3analyst.resources import home_dir, resource_dir

DOMAINS_ENV = "M3ANALYST_DOMAINS"
SPEC_FILE = "spec.yaml"
_READS = re.compile(r"^reads:[ \t]*(?P<v>[^#\n]*?)[ \t]*(?:#.*)?$", re.M)


def search_path() -> list[Path]:
    """The folders domains are read from, first wins: the user's, then the built-in ones."""
    from m3analyst.settings import current

    legacy = [Path(p) for p in os.environ.get(DOMAINS_ENV, "").split(os.pathsep) if p]
    try:
        dirs = current().domain.dirs
    except M3Error:  # a bad settings file: the command reports it when it reads its settings
        dirs = []
    return [*legacy, *dirs, home_dir() / "domains", resource_dir("domains")]


def spec_files() -> dict[str, Path]:
    """name -> spec file (`<name>/spec.yaml` or `<name>.yaml`); earlier folders on the search path win."""
    found: dict[str, Path] = {}
    for folder in search_path():
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob(f"*/{SPEC_FILE}")):
            found.setdefault(f.parent.name, f)
        for f in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            found.setdefault(f.stem, f)
    return found


def list_domains() -> list[str]:
    return sorted(spec_files())


def reads(name: str) -> str:
    """The spec's one-line `reads:` (the documents it reads, for --help), read without parsing the spec; '' when the
    spec has none or cannot be read (its command then says what is wrong)."""
    try:
        m = _READS.search(spec_files()[name].read_text(encoding="utf-8"))
    except (KeyError, OSError, UnicodeDecodeError):
        return ""
    return m.group("v").strip().strip("\"'") if m else ""
