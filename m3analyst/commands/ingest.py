"""`m3analyst ingest FILE`: summary of the Document, or the Document as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from m3analyst.commands.common import console, emit, handle_errors
from m3analyst.commands.options import with_settings
from m3analyst.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


@handle_errors
@with_settings()
def ingest(
    file: Path = typer.Argument(..., help="PDF, EDGAR HTML/iXBRL, or text/Markdown document (format sniffed from content)."),
    json_out: bool = typer.Option(False, "--json", help="Print the whole Document (text, pages, sections, tables, XBRL) as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Write the output to this file instead of stdout."),
    *,
    settings,
) -> None:
    """Read a document and show its kind, pages, outline (with self-check), tables and XBRL facts."""
    from m3analyst.ingest import load_document
    from m3analyst.ingest.summary import render_summary

    doc = load_document(file)
    try:
        if json_out:
            emit(json.dumps(doc.to_dict() | {"settings": settings.model_dump(mode="json")}, indent=1,
                            ensure_ascii=False, default=str), out)
        elif out is not None:
            emit(render_summary(doc, as_text=True), out)
        else:
            console.print(render_summary(doc))
    except OSError as e:
        raise UsageError(f"{out}: cannot write ({e.strerror or e})") from None
