"""Cited pages as evidence a reader can check: each cited PDF page rendered as an image and its words' boxes, both
with pypdfium2 and cached on disk under $M3ANALYST_HOME/pages/<sha256>/, so a page is rendered at most once.

Word boxes come from pdfium's character boxes: the same text layer the loader read the quotes from (pdfplumber's
words take 0.7-1 s a page on this 2-core VM, pdfium's 0.02-0.07 s; tests check the boxes against pdfplumber's).

`PageSource.image(n)` -> JPEG bytes; `PageSource.words(n)` -> the page's words with their boxes as fractions of the
page (x0, top, x1, bottom in 0..1), in pdfplumber's reading order. Only pages a memo cites are ever rendered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

SCALE = 1.5  # 108 dpi: small print stays legible
QUALITY = 85  # JPEG: a text page is 80-190 KB and encodes in ~0.02 s (PNG: 100-230 KB in 0.1-0.2 s on this VM)
RENDER_VERSION = 2  # bump when the cached form changes


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    top: float
    x1: float
    bottom: float

    def box(self) -> list[float]:
        return [round(self.x0, 5), round(self.top, 5), round(self.x1, 5), round(self.bottom, 5)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PageSource:
    """One PDF's cited pages: images and word boxes, rendered lazily and cached (memory and disk)."""

    def __init__(self, path: str | Path, sha256: str | None = None, cache_dir: Path | None = None, scale: float = SCALE):
        self.path = Path(path)
        self.sha256 = sha256 or _sha256(self.path)
        if cache_dir is None:
            from m3analyst.resources import home_dir

            cache_dir = home_dir() / "pages"
        self.dir = cache_dir / f"{self.sha256[:32]}-v{RENDER_VERSION}"
        self.scale = scale
        self._words: dict[int, list[Word]] = {}
        self._pdfium = None

    @classmethod
    def for_memo(cls, document: dict) -> "PageSource | None":
        """The memo's source PDF when it is still where the memo says it was (and unchanged), else None."""
        src = document.get("source")
        if not src or not str(src).lower().endswith(".pdf") or not Path(src).is_file():
            return None
        source = cls(src)
        if document.get("sha256") and document["sha256"] != source.sha256:
            return None
        return source

    # ---- images --------------------------------------------------------------------------
    def image_path(self, page: int) -> Path:
        """The page's image (JPEG) on disk (rendered now if it is not cached yet)."""
        path = self.dir / f"p{page}@{self.scale:g}.jpg"
        if not path.exists():
            self._render(page, path)
        return path

    def image(self, page: int) -> bytes:
        return self.image_path(page).read_bytes()

    def _render(self, page: int, path: Path) -> None:
        pg = self._pdf()[page - 1]
        bitmap = pg.render(scale=self.scale)
        img = bitmap.to_pil()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        img.save(tmp, format="JPEG", quality=QUALITY)
        tmp.replace(path)
        pg.close()

    # ---- words ---------------------------------------------------------------------------
    def words(self, page: int) -> list[Word]:
        if page not in self._words:
            self._words[page] = self._load_words(page)
        return self._words[page]

    def _load_words(self, page: int) -> list[Word]:
        path = self.dir / f"p{page}.words.json"
        if path.exists():
            return [Word(*w) for w in json.loads(path.read_text(encoding="utf-8"))]
        words = self._pdfium_words(page)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([[x.text, *x.box()] for x in words]), encoding="utf-8")
        tmp.replace(path)
        return words

    def _pdfium_words(self, page: int) -> list[Word]:
        """Words as runs of non-space characters, each box the union of its characters' boxes."""
        pg = self._pdf()[page - 1]
        width, height = pg.get_size()
        tp = pg.get_textpage()
        text = tp.get_text_range()
        words: list[Word] = []
        chars: list[str] = []
        box: list[float] = []
        for i in range(min(tp.count_chars(), len(text))):
            ch = text[i]
            if ch.isspace():
                if chars:
                    words.append(Word("".join(chars), box[0] / width, 1 - box[3] / height, box[2] / width, 1 - box[1] / height))
                chars, box = [], []
                continue
            left, bottom, right, top = tp.get_charbox(i)
            box = [left, bottom, right, top] if not box else [min(box[0], left), min(box[1], bottom), max(box[2], right), max(box[3], top)]
            chars.append(ch)
        if chars:
            words.append(Word("".join(chars), box[0] / width, 1 - box[3] / height, box[2] / width, 1 - box[1] / height))
        tp.close()
        pg.close()
        return words

    def vocabulary(self):
        """The document's word counts (memo/textfix.py), from its whole text layer (cached as text on disk)."""
        from m3analyst.memo.textfix import Vocabulary

        path = self.dir / "text.txt"
        if path.exists():
            return Vocabulary(path.read_text(encoding="utf-8"))
        parts = []
        for pg in self._pdf():
            tp = pg.get_textpage()
            parts.append(tp.get_text_range())
            tp.close()
            pg.close()
        text = "\n".join(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return Vocabulary(text)

    def size(self, page: int) -> tuple[int, int]:
        w, h = self._pdf()[page - 1].get_size()
        return round(w), round(h)

    def _pdf(self):
        import pypdfium2 as pdfium

        if self._pdfium is None:
            self._pdfium = pdfium.PdfDocument(str(self.path))
        return self._pdfium

    def close(self) -> None:
        if self._pdfium is not None:
            self._pdfium.close()
            self._pdfium = None
