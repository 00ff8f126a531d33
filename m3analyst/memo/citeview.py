"""Citations as things a reader can open: each one a `CiteView` (page, quote, highlight boxes), and the cited pages'
images written beside the memo or inlined into it (`PageImages`).

A memo's renderers ask `Citations` for a view of a quote, a fact, a finding's evidence or a bare page; equal views
share one id. Pages are rendered only when cited, once (memo/pages.py caches them).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from m3analyst.memo.highlight import align, fact_boxes, line_boxes
from m3analyst.memo.pages import PageSource
from m3analyst.memo.textfix import Vocabulary


@dataclass
class CiteView:
    id: str
    page: int
    quote: str = ""  # the quoted text (artefacts repaired) or the fact row as printed
    kind: str = "page"  # "quote" | "fact" | "page"
    boxes: list[list[float]] = field(default_factory=list)  # highlighted lines, page fractions x0, top, x1, bottom
    strong: list[list[float]] = field(default_factory=list)  # the cited values within a fact row
    href: str = ""  # a link elsewhere than the page overlay (an EDGAR filing's local copy)
    concept: str = ""  # an inline-XBRL fact's concept (found by it in the filing's copy)

    @property
    def label(self) -> str:
        return f"p.{self.page}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "page": self.page, "quote": self.quote, "kind": self.kind, "boxes": self.boxes,
                "strong": self.strong, "href": self.href}


class Citations:
    """Builds and collects the memo's citation views against its source (a PageSource or None)."""

    def __init__(self, source: PageSource | None, vocab: Vocabulary | None = None, filing=None):
        self.source = source
        self.vocab = vocab or Vocabulary()
        self.filing = filing  # memo/filing_copy.FilingCopy for EDGAR HTML sources
        self.views: dict[tuple, CiteView] = {}

    def _add(self, key: tuple, make) -> CiteView:
        if key not in self.views:
            view = make()
            view.id = f"c{len(self.views) + 1}"
            if self.filing is not None:
                view.href = self.filing.anchor(view)
            self.views[key] = view
        return self.views[key]

    def _words(self, page: int):
        if self.source is None:
            return None
        try:
            return self.source.words(page)
        except (IndexError, ValueError, OSError):  # a page the PDF lacks, or a file gone since: page-only view
            return None

    def quote(self, page: int, text: str) -> CiteView:
        def make() -> CiteView:
            from m3analyst.memo.textfix import repair

            words = self._words(page)
            picked = align(words, text) if words else []
            return CiteView("", page, repair(text, self.vocab), "quote", line_boxes(words, picked) if words else [])

        return self._add(("q", page, text), make)

    def fact(self, page: int, source_text: str, values: Sequence[tuple[float, float | None]], concept: str = "",
             text_value: str = "") -> CiteView:
        def make() -> CiteView:
            words = self._words(page)
            if not words:
                return CiteView("", page, source_text, "fact", concept=concept)
            row, strong = fact_boxes(words, source_text, values, text_value)
            return CiteView("", page, source_text, "fact", line_boxes(words, row), line_boxes(words, strong))

        return self._add(("f", page, source_text, tuple(values), concept, text_value), make)

    def page(self, page: int) -> CiteView:
        return self._add(("p", page), lambda: CiteView("", page))

    def citation(self, c) -> CiteView:
        """A `Citation` (page, span, quote), e.g. a finding's evidence."""
        return self.quote(c.page, c.quote) if c.quote else self.page(c.page)

    @property
    def pages(self) -> list[int]:
        return sorted({v.page for v in self.views.values()})

    def all(self) -> list[CiteView]:
        return list(self.views.values())


class PageImages:
    """Where the cited pages' images go: a folder beside the memo (`folder`, linked relatively) or inline (data URIs)."""

    def __init__(self, source: PageSource | None, folder: Path | None = None, link_prefix: str = ""):
        self.source = source
        self.folder = folder
        self.link_prefix = link_prefix
        self.written: list[Path] = []

    @classmethod
    def beside(cls, source: PageSource | None, out_file: Path) -> "PageImages":
        """Images in `<stem>_pages/` next to `out_file`."""
        folder = out_file.parent / f"{out_file.stem}_pages"
        return cls(source, folder, f"{folder.name}/")

    def src(self, page: int) -> str | None:
        if self.source is None:
            return None
        try:
            path = self.source.image_path(page)
        except (IndexError, ValueError, OSError):
            return None
        if self.folder is None:
            return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"p{page}.jpg"
        if not target.exists() or target.stat().st_size != path.stat().st_size:
            target.write_bytes(path.read_bytes())
        self.written.append(target)
        return f"{self.link_prefix}p{page}.jpg"

    def size(self, page: int) -> tuple[int, int]:
        """The page's width and height in points (its aspect on screen); letter size when unknown."""
        if self.source is None:
            return 612, 792
        try:
            return self.source.size(page)
        except (IndexError, ValueError, OSError):
            return 612, 792
