"""The default model kept in `$M3ANALYST_HOME/config.toml` ([engine] model), set by `m3analyst models default NAME`.

Only that key is written: the rest of the file (other tables, comments) is left as it is, and the result is
parsed back before it replaces the file (atomically). The settings loader reads the same key.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

from m3analyst.errors import UsageError
from m3analyst.resources import home_dir

_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_MODEL_KEY = re.compile(r"^\s*model\s*=")


def config_path() -> Path:
    return home_dir() / "config.toml"


def read_config(path: Path | None = None) -> dict:
    """The parsed config file ({} when absent); a malformed file is a UsageError naming it."""
    path = path or config_path()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: cannot read the config file ({e})") from None


def default_model(path: Path | None = None) -> str | None:
    """[engine] model of the config file, None where unset."""
    value = read_config(path).get("engine", {}).get("model")
    return value if isinstance(value, str) and value else None


def set_default_model(name: str, path: Path | None = None) -> Path:
    """Write [engine] model = name into the config file (created if absent), keeping everything else."""
    path = path or config_path()
    read_config(path)  # refuse to rewrite a file that does not parse
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new = _with_model(text.splitlines(), json.dumps(name))
    tomllib.loads(new)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _with_model(lines: list[str], value: str) -> str:
    """lines with `model = value` in the [engine] table: replaced where set, added under the header, or a new table."""
    line = f"model = {value}"
    table, header = None, None
    for i, text in enumerate(lines):
        m = _TABLE.match(text)
        if m:
            table = m.group(1).strip()
            header = i if table == "engine" else header
            continue
        if table == "engine" and _MODEL_KEY.match(text):
            return "\n".join(lines[:i] + [line] + lines[i + 1 :]) + "\n"
    if header is not None:
        return "\n".join(lines[: header + 1] + [line] + lines[header + 1 :]) + "\n"
    body = "\n".join(lines).rstrip()
    return (body + "\n\n" if body else "") + f"[engine]\n{line}\n"
