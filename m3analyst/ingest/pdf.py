"""PDF loader: text with pypdfium2 (fast); pdfplumber only for tables on the pages that need them.

Steps: open with pdfium (corrupt/encrypted -> `InputError`), extract each page's text layer,
judge whether a text layer exists at all (scanned PDFs -> `InputError` suggesting OCR; a few
image-only pages -> warning), clean the pages (pagelayout: hyphenation, running headers/footers,
printed page labels), analyse (kind, sections, outline), then parse the financial-statement
tables on the pages the text points at (pdf_tables).
"""

from __future__ import annotations

from pathlib import Path

from m3analyst.errors import InputError
from m3analyst.ingest.guard import check_page_count, check_pages
from m3analyst.ingest.model import Document
from m3analyst.ingest.pagelayout import clean_pages
from m3analyst.ingest.formats import register_loader

MIN_TEXT_CHARS = 20  # a page with fewer visible characters has no usable text layer
SCANNED_SHARE = 0.9  # this share of text-less pages or more: the whole PDF is treated as scanned


def _open(path: Path, data: bytes):
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        msg = str(e).lower()
        if "password" in msg or "security" in msg:
            raise InputError(path, "PDF is encrypted (password-protected)", "decrypt it first, e.g. qpdf --decrypt in.pdf out.pdf") from None
        raise InputError(path, f"PDF is corrupt or truncated ({e})", "re-download or re-export the file") from None
    if len(pdf) == 0:
        pdf.close()
        raise InputError(path, "PDF has no pages (corrupt or truncated?)", "re-download or re-export the file")
    try:
        check_page_count(path, len(pdf))
    except InputError:
        pdf.close()
        raise
    return pdf


def extract_page_texts(path: Path, data: bytes) -> list[str]:
    """Raw text layer of each page (pdfium reading order), '\\n' line ends. Length = page count."""
    import pypdfium2 as pdfium

    pdf = _open(path, data)
    texts = []
    try:
        for i in range(len(pdf)):
            try:
                page = pdf[i]
                tp = page.get_textpage()
                texts.append(tp.get_text_range().replace("\r\n", "\n").replace("\r", "\n"))
                tp.close()
                page.close()
            except pdfium.PdfiumError as e:
                raise InputError(path, f"PDF page {i + 1} cannot be read ({e}); file corrupt or truncated?") from None
    finally:
        pdf.close()
    return texts


def _visible_chars(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def text_layer_report(path: Path, texts: list[str]) -> list[str]:
    """Raise for a PDF without a text layer; return warnings naming image-only pages otherwise."""
    empty = [i + 1 for i, t in enumerate(texts) if _visible_chars(t) < MIN_TEXT_CHARS]
    if len(empty) >= max(1, SCANNED_SHARE * len(texts)):
        raise InputError(
            path,
            f"PDF has no text layer ({len(empty)} of {len(texts)} pages carry no text; scanned images?)",
            "run OCR first, e.g. ocrmypdf in.pdf out.pdf",
        )
    if not empty:
        return []
    shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
    return [f"{len(empty)} page(s) without a text layer (images only; OCR would recover them): {shown}"]


@register_loader("pdf")
def load_pdf(path: Path, data: bytes) -> Document:
    raw = extract_page_texts(path, data)
    check_pages(path, raw)
    warnings = text_layer_report(path, raw)
    clean = clean_pages(raw)
    doc = Document.from_pages(clean.texts, labels=clean.labels)
    doc.metadata.loader = "pdf"
    doc.metadata.extra["furniture"] = clean.furniture[:20]
    doc.warnings.extend(warnings)
    from m3analyst.ingest.analyze import analyze
    from m3analyst.ingest.pdf_tables import add_statement_tables
    from m3analyst.ingest.statements import warn_missing_statements

    analyze(doc)
    add_statement_tables(doc, path, data)
    warn_missing_statements(doc)
    return doc
