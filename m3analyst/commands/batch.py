"""`m3analyst batch INPUT --out DIR`: memos for many documents, resumable, parallel, failure-isolated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from m3analyst.commands.common import console, domain_names, err_console, handle_errors, progress, safe, set_help
from m3analyst.commands.options import MEMO_FLAGS, with_settings
from m3analyst.settings import Settings


def register(app: typer.Typer) -> None:
    set_help(batch, "domain", f"auto (detect per document), {domain_names()}; a manifest's domain column overrides it.")
    app.command("batch")(batch)


class _ProgressEvents:
    """Runner events -> a Rich progress bar (counts, elapsed, ETA) and notes above it."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.task = bar.add_task("batch", total=None)
        self.counts = {"ok": 0, "failed": 0}

    def planned(self, rows: list[dict[str, Any]], todo: int) -> None:
        skipped = sum(r["status"] == "skipped" for r in rows)
        failed = [r for r in rows if r["status"] == "failed"]
        if skipped:
            self.note(f"{skipped} of {len(rows)} documents done in an earlier run (skipped)")
        for r in failed:
            self.note(f"[red]failed[/] {safe(r['id'])}: {safe(r['error'])}" + ("" if r.get("key") is None else " (recorded earlier)"))
        self.bar.update(self.task, total=todo, description=self._text())

    def finished(self, row: dict[str, Any]) -> None:
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        if row["status"] == "failed":
            self.note(f"[red]failed[/] {safe(row['id'])}: {safe(row['error'])}")
        self.bar.update(self.task, advance=1, description=self._text())

    def note(self, text: str) -> None:
        self.bar.console.print(text, markup=True, highlight=False, soft_wrap=True)

    def _text(self) -> str:
        return f"memos: [green]{self.counts['ok']} ok[/] [red]{self.counts['failed']} failed[/]"


@handle_errors
@with_settings(*MEMO_FLAGS)
def batch(
    input: str = typer.Argument(..., help="A folder (recursive), a glob, or a manifest .csv/.jsonl (path, domain, id, extra columns)."),
    out: Path = typer.Option(..., "--out", help="Output folder: memos/, records/, summary.csv/.json, index.html."),
    domain: str = typer.Option("auto", "--domain", help="auto (detect per document) or a domain; a manifest's domain column overrides it."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="Worker processes, each loading the model once (default 1; 0: in this process). With --ray: actors (default: one per cluster CPU)."),
    ray: bool = typer.Option(False, "--ray", help="Run on Ray actors (model loaded once per actor): a local Ray, or the cluster in $RAY_ADDRESS / --ray-address."),
    ray_address: str | None = typer.Option(None, "--ray-address", metavar="ADDRESS", help="Ray cluster to join, e.g. ray://head:10001 or auto (implies --ray)."),
    html: bool = typer.Option(False, "--html", help="Also write each memo as HTML."),
    json_out: bool = typer.Option(False, "--json", help="Also write each memo as JSON."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Redo documents whose earlier failure was recorded as permanent."),
    template: Path | None = typer.Option(None, "--template", help="Folder of Jinja2 templates overriding the packaged ones (dashboard.html.j2 for index.html)."),
    timeout: float | None = typer.Option(None, "--timeout", min=1, help="Seconds one document may take before it is recorded as failed (timed out) and the batch goes on (default: limits.document_timeout_s, 900)."),
    *,
    settings: Settings,
) -> None:
    """Write a memo for every document of a folder, glob or manifest; rerun to resume (finished work is skipped)."""
    from m3analyst.batch import EXIT_PARTIAL, BatchOptions, run_batch
    from m3analyst.batch.report import summary_table

    if timeout is not None:
        settings.limits.document_timeout_s = timeout
    formats = ("md", *(("html",) if html else ()), *(("json",) if json_out else ()))
    ray_target = ray_address or ("local" if ray else None)
    n_workers = workers if workers is not None else (0 if ray_target else 1)
    opts = BatchOptions(input, out, settings, domain, n_workers, ray_target, formats, retry_failed, template)

    with progress(transient=True) as bar:
        report = run_batch(opts, _ProgressEvents(bar))

    console.print(summary_table(report))
    c = report.counts
    rate = f" · {report.docs_per_min:.1f} docs/min" if report.docs_per_min else ""
    err_console.print(
        f"{c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped"
        + (f", {c['pending']} not reached" if c["pending"] else "")
        + f"{rate} · {safe(out / 'index.html')}",
        highlight=False,
    )
    if report.ignored:
        err_console.print(f"ignored {len(report.ignored)} non-document file(s), listed in summary.json", highlight=False)
    if report.interrupted:
        raise typer.Exit(130)
    if c["failed"]:
        raise typer.Exit(EXIT_PARTIAL)
