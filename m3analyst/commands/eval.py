"""`m3analyst eval DOMAIN`: score memos and answers on an eval set; JSON/HTML reports; --compare."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from m3analyst.commands.common import (console, domain_names, emit_json, err_console, handle_errors, progress, safe,
                                       set_help, write_atomic)
from m3analyst.commands.options import ENGINE_FLAGS, with_settings
from m3analyst.errors import InputError, UsageError
from m3analyst.settings import Settings


def register(app: typer.Typer) -> None:
    set_help(eval_cmd, "domain", f"A registered domain: {domain_names()}.")
    app.command("eval")(eval_cmd)


def _read_old(path: Path) -> dict:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read the old report ({e})") from None
    if not isinstance(old, dict) or not str(old.get("format", "")).startswith("m3analyst.eval/"):
        raise InputError(path, "not an m3analyst eval report (JSON with format m3analyst.eval/…)")
    return old


@handle_errors
@with_settings(*ENGINE_FLAGS, "budget")
def eval_cmd(
    domain: str = typer.Argument(..., help="A registered domain."),
    dataset: str = typer.Option(
        "evals", "--dataset",
        help="evals (evals/<domain>.jsonl), a JSONL path in that schema, or financebench | cuad | pubmedqa | "
             "evidence-inference (NAME=FILE to point at the public file).",
    ),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder documents are relative to (default ../shared/corpus)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N items."),
    only: list[str] = typer.Option([], "--item", help="Only items whose id matches this glob (repeatable), e.g. 'finance/bestbuy*'."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report instead of the table."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON report to this file."),
    html_out: bool = typer.Option(False, "--html", help="Also write an HTML report with plots (beside --out, or eval_<domain>.html)."),
    compare: Path | None = typer.Option(None, "--compare", help="An older JSON report: show deltas and regressions."),
    fail_on: list[str] = typer.Option([], "--fail-on", help="METRIC:DROP, e.g. qa_accuracy:0.05; with --compare, exit 1 when METRIC got worse by more than DROP."),
    *,
    settings: Settings,
) -> None:
    """Evaluate memos/answers on an eval set and print the scores."""
    from m3analyst.evaluation.loaders import default_data_root, load_set, select_items
    from m3analyst.evaluation.legal_score import short_answer_table
    from m3analyst.evaluation.scorecard import category_table, render_html, results_table, type_table
    from m3analyst.evaluation.harness import compare_reports, load_engine_for, parse_fail_on, run_eval

    if domain not in domain_names().split(", "):
        raise UsageError(f"unknown domain {domain!r}; use one of {domain_names()}")
    thresholds = parse_fail_on(fail_on)
    if thresholds and compare is None:
        raise UsageError("--fail-on needs --compare OLD.json")
    old = _read_old(compare) if compare else None
    if data_root is not None and not data_root.is_dir():
        raise UsageError(f"--data-root {data_root}: no such folder")
    root = data_root or default_data_root()
    items = select_items(load_set(dataset, domain, root), only, limit)

    t = time.perf_counter()
    engine = load_engine_for(settings)
    engine_load_s = time.perf_counter() - t
    with progress() as p:
        task = p.add_task(f"eval {domain}", total=len(items))

        def on_item(i, item):
            p.update(task, completed=i, description=safe(item.id[:50]))

        report = run_eval(items, domain=domain, settings=settings, data_root=root, set_name=dataset, engine=engine,
                          on_item=on_item, engine_load_s=engine_load_s)
        p.update(task, completed=len(items))
    comparison = compare_reports(report, old, thresholds) if old else None
    if comparison:
        report["comparison"] = comparison

    if json_out:
        emit_json(report, out)
    else:
        if out is not None:
            emit_json(report, out)
        console.print(results_table(report, comparison))
        for table in (category_table(report), short_answer_table(report), type_table(report)):
            if table is not None:
                console.print(table)
    if html_out:
        html_path = (out or Path(f"eval_{domain}.json")).with_suffix(".html")
        write_atomic(html_path, render_html(report, comparison))
        err_console.print(f"wrote {safe(html_path)}", highlight=False)
    if report["n_errors"]:
        first = next(r for r in report["items"] if r["error"])
        err_console.print(f"{report['n_errors']} item(s) failed; first: {safe(first['id'])}: {safe(first['error'])}",
                          highlight=False)
    if comparison and comparison["failed"]:
        err_console.print(f"regression past threshold: {safe(', '.join(comparison['failed']))}", highlight=False)
        raise typer.Exit(1)
