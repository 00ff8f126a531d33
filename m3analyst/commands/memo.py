"""`m3analyst finance|legal|bio FILE` (memo) and `m3analyst ask FILE "question"`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from m3analyst.commands.common import emit, emit_json, err_console, handle_errors, progress
from m3analyst.commands.options import MEMO_FLAGS, with_settings
from m3analyst.errors import InputError, UsageError
from m3analyst.settings import Settings



def register(app: typer.Typer) -> None:
    for domain, help_text in (("finance", "10-K / 10-Q / 8-K / earnings"), ("legal", "commercial contract"),
                              ("bio", "research paper / trial report")):
        app.command(domain, help=f"Write the analyst memo for a {help_text}, every claim with a checked page citation.")(
            _memo_command(domain))
    app.command("ask")(ask)


def _memo_command(domain: str):
    @handle_errors
    @with_settings(*MEMO_FLAGS)
    def command(
        file: Path = typer.Argument(..., help="The document (PDF, EDGAR HTML/iXBRL, text)."),
        out: Path | None = typer.Option(None, "--out", help="Write the memo to this file instead of stdout."),
        json_out: bool = typer.Option(False, "--json", help="JSON: sections, facts with pages, citations, budget, engine stats, grounding."),
        html_out: bool = typer.Option(False, "--html", help="A styled HTML page (finance: with a chart of the key series)."),
        *,
        settings: Settings,
    ) -> None:
        from m3analyst.errors import UsageError
        from m3analyst.ingest import load_document
        from m3analyst.memo import write_memo

        if json_out and html_out:
            raise UsageError("choose one of --json and --html")
        with progress() as p:
            task = p.add_task("reading the document", total=None)
            t0 = time.perf_counter()
            doc = load_document(file)
            ingest_s = time.perf_counter() - t0

            def report(desc: str, done: int, total: int) -> None:
                p.update(task, description=desc, completed=done, total=total)

            memo = write_memo(doc, domain, settings, engine=None, progress=report)
        memo.timings = {"ingest": ingest_s, **memo.timings, "total": time.perf_counter() - t0}
        if json_out:
            emit_json(memo.to_dict(), out)
        elif html_out:
            emit(memo.to_html(), out)
        else:
            emit(memo.to_markdown(), out)
        g = memo.grounding
        err_console.print(f"{len(memo.facts)} facts, {g['quoted_chars']:,} chars quoted, {g['verified_sentences']} "
                          f"generated sentence(s) verified, {g['dropped_sentences']} dropped, "
                          f"{memo.timings['total']:.1f}s", highlight=False)

    command.__name__ = domain
    command.__doc__ = f"Write the {domain} memo for FILE."
    return command


@handle_errors
@with_settings(*MEMO_FLAGS)
def ask(
    file: Path = typer.Argument(..., help="The document."),
    questions: list[str] = typer.Argument(None, help="The question(s), each in quotes: the model reads FILE once."),
    from_file: Path | None = typer.Option(None, "--questions", help="Also ask the questions of this text file (one "
                                          "per line; blank lines and lines starting with # are skipped)."),
    domain: str | None = typer.Option(None, "--domain", help="finance, legal or bio (default: detected)."),
    json_out: bool = typer.Option(False, "--json", help="Print the answer as JSON (text, value, citations, source); "
                                  "a list of them for several questions."),
    out: Path | None = typer.Option(None, "--out", help="Write the answer(s) to this file instead of stdout."),
    *,
    settings: Settings,
) -> None:
    """Answer QUESTION(s) about FILE with page citations (numbers from the extracted facts when possible)."""
    from m3analyst.ingest import load_document
    from m3analyst.memo import answer_questions

    questions = list(questions or []) + _questions_in(from_file)
    if not questions:
        raise UsageError('no question given: ask FILE "question" [...], or --questions questions.txt')
    with progress() as p:
        p.add_task(f"reading the document and answering {len(questions)} question(s)", total=None)
        doc = load_document(file)
        answers = answer_questions(doc, questions, settings, engine=None, domain=domain)
    if json_out:
        rows = [a.to_dict() | {"settings": settings.model_dump(mode="json")} for a in answers]
        emit_json(rows[0] if len(rows) == 1 else rows, out)
    elif len(answers) == 1:
        emit(f"{answers[0].text}\n(source: {answers[0].source})", out)
    else:
        emit("\n\n".join(f"Q: {q}\nA: {a.text}\n(source: {a.source})" for q, a in zip(questions, answers)), out)


def _questions_in(path: Path | None) -> list[str]:
    """Questions of a --questions file: one per line, blank and '#' lines skipped."""
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read the questions file ({getattr(e, 'strerror', None) or e})") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
