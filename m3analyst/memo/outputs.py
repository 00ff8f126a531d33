"""One memo, several output formats: md | html | json | xlsx | docx | pdf (`--format`, comma-separated or repeated).

Text formats (md, html, json) may go to stdout when only one is asked for; xlsx, docx and pdf need a file. With one
format `--out` is the file; with several, `--out` names the stem and each format gets its own suffix (memo.html,
memo.xlsx, ...). HTML written to a file puts the cited pages' images in `<stem>_pages/` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from m3analyst.errors import UsageError
from m3analyst.memo.render_md import render_markdown
from m3analyst.memo.types import Memo

FORMATS = ("md", "html", "json", "xlsx", "docx", "pdf")
TEXT_FORMATS = ("md", "html", "json")


def parse_formats(values: list[str] | None, default: str = "md") -> list[str]:
    """'--format html,xlsx --format pdf' -> ['html', 'xlsx', 'pdf'] (order kept, duplicates dropped)."""
    out: list[str] = []
    for v in values or []:
        for part in v.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part not in FORMATS:
                raise UsageError(f"--format must be among {', '.join(FORMATS)}, not {part!r}")
            if part not in out:
                out.append(part)
    return out or [default]


def targets(formats: list[str], out: Path | None) -> dict[str, Path | None]:
    """Where each format goes (None: stdout)."""
    if out is None:
        binary = [f for f in formats if f not in TEXT_FORMATS]
        if binary:
            raise UsageError(f"--format {binary[0]} writes a file: give --out FILE")
        if len(formats) > 1:
            raise UsageError("several formats write several files: give --out STEM (each gets its suffix)")
        return {formats[0]: None}
    if len(formats) == 1:
        return {formats[0]: out}
    stem = out.with_suffix("") if out.suffix.lstrip(".").lower() in FORMATS else out
    return {f: stem.with_name(f"{stem.name}.{f}") for f in formats}


def render(memo: Memo, fmt: str, doc=None, out: Path | None = None, template_dir: str | Path | None = None) -> str | bytes:
    """The memo in `fmt` (str for text formats, bytes for the others)."""
    vocab = _vocab(memo, doc) if fmt in ("xlsx", "docx") else None
    makers: dict[str, Callable[[], str | bytes]] = {
        "md": lambda: render_markdown(memo),
        "json": lambda: json.dumps(memo.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n",
        "html": lambda: _html(memo, doc, out, template_dir),
        "xlsx": lambda: _lazy("export_xlsx", "memo_xlsx")(memo, vocab),
        "docx": lambda: _lazy("export_docx", "memo_docx")(memo, vocab),
        "pdf": lambda: _lazy("export_pdf", "memo_pdf")(memo, doc, template_dir),
    }
    return makers[fmt]()


def _html(memo: Memo, doc, out: Path | None, template_dir) -> str:
    from m3analyst.memo.render_html import render_html

    return render_html(memo, doc, out_file=out, template_dir=template_dir)


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"m3analyst.memo.{module}"), name)


def _vocab(memo: Memo, doc):
    from m3analyst.memo.pages import PageSource
    from m3analyst.memo.textfix import Vocabulary

    if doc is not None:
        return Vocabulary(doc.text)
    source = PageSource.for_memo(memo.document)
    return source.vocabulary() if source else Vocabulary()


def write_outputs(memo: Memo, formats: list[str], out: Path | None, emit: Callable[[str | bytes, Path | None], None],
                  doc=None, template_dir: str | Path | None = None) -> dict[str, Path | None]:
    """Render each format and hand it to `emit(data, path)` (path None: stdout)."""
    where = targets(formats, out)
    for fmt, path in where.items():
        emit(render(memo, fmt, doc, path, template_dir), path)
    return where
