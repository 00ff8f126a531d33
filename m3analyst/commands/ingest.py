"""`m3analyst ingest FILE`: summary of the Document, or the Document as JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from m3analyst.commands.common import console, emit, handle_errors


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


@handle_errors
def ingest(
    file: Path = typer.Argument(..., help="PDF, EDGAR HTML/iXBRL, or text/Markdown document."),
    json_out: bool = typer.Option(False, "--json", help="Print the whole Document as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Write the output to this file instead of stdout."),
) -> None:
    """Read a document and show its kind, pages, outline, tables and XBRL facts."""
    from m3analyst.ingest import load_document
    from m3analyst.ingest.summary import render_summary

    doc = load_document(file)
    if json_out:
        emit(doc.to_json(indent=1), out)
    elif out is not None:
        emit(render_summary(doc, as_text=True), out)
    else:
        console.print(render_summary(doc))
