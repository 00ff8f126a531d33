"""The `m3analyst` command. Thin: each area's commands live in m3analyst/commands/<area>.py."""

from __future__ import annotations

import typer

from m3analyst import __version__
from m3analyst.commands import batch as batch_cmds
from m3analyst.commands import common
from m3analyst.commands import engine as engine_cmds
from m3analyst.commands import eval as eval_cmds
from m3analyst.commands import ingest as ingest_cmds
from m3analyst.commands import models as models_cmds
from m3analyst.commands import memo as memo_cmds
from m3analyst.commands import serve as serve_cmds

app = typer.Typer(
    name="m3analyst",
    help="Analyst memos for filings, contracts and papers, with checked page citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"m3analyst {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    common.set_debug(debug)


# Registry of command modules: each exposes register(app).
for _module in (ingest_cmds, batch_cmds, eval_cmds, memo_cmds, engine_cmds, models_cmds, serve_cmds):
    _module.register(app)


def main() -> None:
    app()
