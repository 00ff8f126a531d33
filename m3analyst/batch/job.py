"""A batch job's two records: `BatchOptions` (what to run, as the CLI or a caller gives it) and `BatchReport`
(what the run did: one row per document). The runner makes them; report.py writes them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3analyst.settings import Settings

STATUSES = ("ok", "failed", "skipped", "pending")  # pending: not reached (interrupted run)


@dataclass
class BatchOptions:
    input: str
    out: Path
    settings: Settings = field(default_factory=Settings)
    domain: str = "auto"
    workers: int = 1  # 0: in this process
    ray: str | None = None  # None: no Ray; "local": start a local Ray; else a cluster address
    formats: tuple[str, ...] = ("md",)
    retry_failed: bool = False  # also redo documents whose earlier failure was an input error
    template_dir: Path | None = None  # --template: Jinja2 templates overriding the dashboard's (templates/)


@dataclass
class BatchReport:
    rows: list[dict[str, Any]]
    out: Path
    backend: str
    workers: int
    wall_s: float
    processed: int  # documents run in this invocation
    interrupted: bool = False
    ignored: list[Path] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def counts(self) -> dict[str, int]:
        return {s: self.count(s) for s in STATUSES}

    @property
    def docs_per_min(self) -> float | None:
        return self.processed / self.wall_s * 60 if self.processed and self.wall_s > 0 else None
