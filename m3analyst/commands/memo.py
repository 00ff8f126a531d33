"""`m3analyst DOMAIN FILE` (memo; one command per registered domain) and `m3analyst ask FILE "question"`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from m3analyst.commands.common import (domain_names, emit, emit_json, err_console, handle_errors, progress, safe,
                                       set_help)
from m3analyst.commands.options import MEMO_FLAGS, with_settings
from m3analyst.errors import InputError, UsageError
from m3analyst.settings import Settings

_IMPORTED = time.monotonic()


def process_started() -> float:
    """time.monotonic() when this process started (Linux: /proc/self/stat; else when this module was imported), so
    a memo's time budget counts the interpreter's start and imports too."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.monotonic() - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED

FORMAT_HELP = ("Output format(s): md (default), html, json, xlsx, docx, pdf; comma-separated or repeated. xlsx/docx/pdf "
               "need --out and the [office] extra; with several, --out is the stem.")
TEMPLATE_HELP = "Folder of Jinja2 templates overriding the packaged ones (memo.html.j2, memo.css.j2)."


def _emit(data: str | bytes, path: Path | None) -> None:
    from m3analyst.io import write_atomic

    if isinstance(data, bytes) or path is not None:
        write_atomic(path, data)
        err_console.print(f"wrote {path}", highlight=False)
    else:
        emit(data, None)


def register(app: typer.Typer) -> None:
    from m3analyst.domains.search import list_domains, reads

    taken = {c.name for c in app.registered_commands} | {"ask", "engine", "models", "serve"}
    for domain in list_domains():
        if domain in taken:  # a domain named like a command stays usable through ask / batch / eval --domain
            continue
        what = reads(domain) or f"{domain} document"
        app.command(domain, help=f"Write the analyst memo for a {what}, every claim with a checked page citation.")(
            _memo_command(domain))
    set_help(ask, "domain", f"{domain_names()} (default: detected).")
    app.command("ask")(ask)


def _memo_command(domain: str):
    @handle_errors
    @with_settings(*MEMO_FLAGS)
    def command(
        file: Path = typer.Argument(..., help="The document (PDF, EDGAR HTML/iXBRL, text)."),
        out: Path | None = typer.Option(None, "--out", help="Write the memo to this file instead of stdout."),
        json_out: bool = typer.Option(False, "--json", help="JSON: sections, facts with pages, citations, budget, engine stats, grounding."),
        html_out: bool = typer.Option(False, "--html", help="A styled HTML page (finance: with a chart of the key series)."),
        formats: list[str] = typer.Option(None, "--format", help=FORMAT_HELP),
        template: Path | None = typer.Option(None, "--template", help=TEMPLATE_HELP),
        *,
        settings: Settings,
    ) -> None:
        from m3analyst.ingest import load_document
        from m3analyst.memo import write_memo
        from m3analyst.memo.outputs import write_outputs

        from m3analyst.memo.outputs import parse_formats, targets

        wanted = parse_formats([*(formats or []), *(["json"] if json_out else []), *(["html"] if html_out else [])])
        targets(wanted, out)  # a bad combination fails before the document is read
        with progress() as p:
            task = p.add_task("reading the document", total=None)
            t0 = time.perf_counter()
            doc = load_document(file, settings.limits)
            ingest_s = time.perf_counter() - t0

            def report(desc: str, done: int, total: int) -> None:
                p.update(task, description=safe(desc), completed=done, total=total)

            memo = write_memo(doc, domain, settings, engine=None, progress=report, started=process_started())
        memo.timings = {"ingest": ingest_s, **memo.timings, "total": time.perf_counter() - t0}
        write_outputs(memo, wanted, out, _emit, doc=doc, template_dir=template)
        g = memo.grounding
        err_console.print(f"{len(memo.facts)} facts, {g['quoted_chars']:,} chars quoted, {g['verified_sentences']} of "
                          f"{g['generated_sentences']} generated sentence(s) verified, {g['dropped_sentences']} dropped, "
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
    domain: str | None = typer.Option(None, "--domain", help="A registered domain (default: detected)."),
    json_out: bool = typer.Option(False, "--json", help="Print the answer as JSON (text, value, citations, source); "
                                  "a list of them for several questions."),
    out: Path | None = typer.Option(None, "--out", help="Write the answer(s) to this file instead of stdout."),
    *,
    settings: Settings,
) -> None:
    """Answer QUESTION(s) about FILE with page citations (numbers from the extracted facts when possible)."""
    from m3analyst.ingest import load_document
    from m3analyst.memo import answer_questions

    if domain is not None:
        from m3analyst.domains import load_domain

        load_domain(domain)  # an unknown domain is a usage error, not a silent fallback
    questions = list(questions or []) + _questions_in(from_file)
    if not questions:
        raise UsageError('no question given: ask FILE "question" [...], or --questions questions.txt')
    with progress() as p:
        p.add_task(f"reading the document and answering {len(questions)} question(s)", total=None)
        doc = load_document(file, settings.limits)
        answers = answer_questions(doc, questions, settings, engine=None, domain=domain)
    if json_out:
        rows = [a.to_dict() | {"settings": settings.model_dump(mode="json")} for a in answers]
        emit_json(rows[0] if len(rows) == 1 else rows, out)
    elif len(answers) == 1:
        emit(f"{answers[0].text}\n{_how(answers[0])}", out)
    else:
        emit("\n\n".join(f"Q: {q}\nA: {a.text}\n{_how(a)}" for q, a in zip(questions, answers)), out)


def _how(a) -> str:
    """The answer's source line, with its reason (a computed answer's derivation: every input and page)."""
    return f"(source: {a.source}{'; ' + a.reason if getattr(a, 'reason', '') else ''})"


def _questions_in(path: Path | None) -> list[str]:
    """Questions of a --questions file: one per line, blank and '#' lines skipped."""
    if path is None:
        return []
    from m3analyst.ingest.guard import read_source
    from m3analyst.settings import LimitsSettings

    try:
        data = read_source(path, LimitsSettings(max_file_mb=16))  # a regular file: a FIFO or device is refused
    except InputError as e:
        raise InputError(path, f"cannot read the questions file ({e.problem})") from None
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(path, f"the questions file is not UTF-8 text (byte at offset {e.start})") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
