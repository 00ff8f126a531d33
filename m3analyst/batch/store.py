"""The batch's memory: one record per finished (document content, settings) pair.

Layout of the output folder:

    OUT/memos/<id>.md (.html, .json)     memos, each written atomically (temp file + rename)
    OUT/records/<key>.json                one record per finished key, written atomically AFTER its memo
    OUT/summary.csv, summary.json, index.html

`key` = sha256 of (the input file's bytes' sha256, the settings that shape a memo, the domain asked
for, the memo formats). A record therefore exists only once its memo is complete on disk, and a
rerun with the same inputs and settings finds every finished key and skips it: a run killed at any
moment (SIGKILL included) resumes where it stopped and never leaves a half-written memo.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from m3analyst.io import write_atomic
from m3analyst.settings import Settings

MEMO_DIR = "memos"
RECORD_DIR = "records"
# Settings fields that change speed but not the memo; left out of the key.
_KEY_EXCLUDE = {"engine": {"threads": True}}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (streamed; raises OSError when unreadable)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def settings_fingerprint(settings: Settings) -> str:
    """Stable hash of the settings that shape a memo (thread count excluded)."""
    dumped = settings.model_dump(mode="json", exclude=_KEY_EXCLUDE)
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def work_key(content_sha: str, settings_fp: str, domain: str, formats: tuple[str, ...]) -> str:
    """The record key of one unit of work (32 hex chars)."""
    raw = "|".join([content_sha, settings_fp, domain, ",".join(sorted(formats))])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class RecordStore:
    """Finished-work records under OUT/records/, one JSON file per key, each written atomically."""

    def __init__(self, out: Path):
        self.out = out
        self.dir = out / RECORD_DIR
        self.memo_dir = out / MEMO_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.memo_dir.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.dir / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # unreadable record: treat the work as not done

    def put(self, key: str, record: dict[str, Any]) -> None:
        record = {**record, "key": key, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(self.dir / f"{key}.json", json.dumps(record, indent=1, ensure_ascii=False, default=str))

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json"))

    def write_memos(self, item_id: str, artifacts: dict[str, str]) -> dict[str, str]:
        """Write each rendered memo (format -> text) atomically; return format -> path relative to OUT."""
        written = {}
        for fmt, text in artifacts.items():
            path = self.memo_dir / f"{item_id}.{fmt}"
            write_atomic(path, text)
            written[fmt] = str(path.relative_to(self.out))
        return written

    def memos_exist(self, record: dict[str, Any]) -> bool:
        return all((self.out / rel).is_file() for rel in (record.get("memos") or {}).values())

    def remove_stale_temps(self) -> int:
        """Delete temp files a killed run left behind (never a finished memo or record)."""
        stale = [*self.memo_dir.glob(".*.tmp"), *self.dir.glob(".*.tmp"), *self.out.glob(".*.tmp")]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)
