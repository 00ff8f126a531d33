"""The memo as PDF: the HTML memo printed by WeasyPrint (the `[office]` extra; a maintained HTML/CSS-to-PDF library
in pure Python over Pango, so no browser is needed). Cited pages follow the memo as an appendix, one per PDF page,
each with its highlight; every [p.N] in the memo is an internal link to its page there."""

from __future__ import annotations

from pathlib import Path

from m3analyst.memo.export_xlsx import require
from m3analyst.memo.types import Memo


def memo_pdf(memo: Memo, doc=None, template_dir: str | Path | None = None) -> bytes:
    weasyprint = require("weasyprint", "pdf")
    from m3analyst.memo.render_html import render_html

    html = render_html(memo, doc, out_file=None, template_dir=template_dir)
    return weasyprint.HTML(string=html).write_pdf()
