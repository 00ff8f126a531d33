"""PDF loader: text with pypdfium2 (fast); pdfplumber only for tables on the pages that need them."""

from __future__ import annotations

from pathlib import Path

from m3analyst.errors import InputError
from m3analyst.ingest.model import Document
from m3analyst.ingest.registry import register_loader


@register_loader("pdf")
def load_pdf(path: Path, data: bytes) -> Document:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        msg = str(e).lower()
        if "password" in msg:
            raise InputError(path, "PDF is encrypted (password-protected)", "decrypt it first, e.g. qpdf --decrypt") from None
        raise InputError(path, f"PDF is corrupt or truncated ({e})") from None
    try:
        texts = []
        for i in range(len(pdf)):
            page = pdf[i]
            tp = page.get_textpage()
            texts.append(tp.get_text_range().replace("\r\n", "\n").replace("\r", "\n"))
            tp.close()
            page.close()
    finally:
        pdf.close()
    if not texts:
        raise InputError(path, "PDF has no pages")
    if sum(len(t.strip()) for t in texts) < 20 * len(texts) / 10 and sum(len(t.strip()) for t in texts) < 200:
        raise InputError(path, "PDF has no text layer (scanned images?)", "run OCR first, e.g. ocrmypdf")
    doc = Document.from_pages(texts)
    doc.metadata.loader = "pdf"
    from m3analyst.ingest.analyze import analyze

    return analyze(doc)
