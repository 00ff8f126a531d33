"""The `m3analyst` command. Thin: each area's commands live in m3analyst/commands/<area>.py."""

from __future__ import annotations

from contextlib import nullcontext

import typer

from m3analyst import __version__, settings
from m3analyst.commands import batch as batch_cmds
from m3analyst.commands import common
from m3analyst.commands import engine as engine_cmds
from m3analyst.commands import eval as eval_cmds
from m3analyst.commands import ingest as ingest_cmds
from m3analyst.commands import models as models_cmds
from m3analyst.commands import memo as memo_cmds
from m3analyst.commands import serve as serve_cmds
from m3analyst.errors import M3Error

def _version(value: bool) -> None:
    if value:
        typer.echo(f"m3analyst {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    common.set_debug(debug)


def build_app() -> typer.Typer:
    """The command tree: one memo command per registered domain (domains/plugins.py), so it is built from the domains
    found when the program starts (the `domain.dirs` setting, $M3ANALYST_HOME/domains, the built-in ones)."""
    app = typer.Typer(
        name="m3analyst",
        help="Analyst memos for filings, contracts and papers, with checked page citations.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    app.callback()(_root)
    try:  # the settings that name the domain folders, read once for the whole build
        found = settings.load()
    except M3Error:  # a bad config file is reported by the command that reads it, in one line
        found = None
    with settings.use(found) if found is not None else nullcontext():
        # Registry of command modules: each exposes register(app).
        for module in (ingest_cmds, batch_cmds, eval_cmds, memo_cmds, engine_cmds, models_cmds, serve_cmds):
            module.register(app)
    return app


app = build_app()


def main() -> None:
    app()
