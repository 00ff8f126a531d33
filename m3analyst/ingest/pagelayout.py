"""Page-level clean-up shared by the loaders: line repair, repeated headers/footers, printed page labels.

Input is a list of pages, each a list of text lines (page 1 first); output is the cleaned pages
plus the printed page label of each page (``"28"``, ``"F-12"``, ``"iv"`` or None).

Repeated headers/footers are found statistically: a line in the top or bottom `EDGE` lines of a
page whose digit-normalised form (``"2021 FORM 10-K 28"`` -> ``"# form #-k #"``) recurs on many
pages is page furniture, not content. Page numbers are the lone numeric line at a page edge, or
the trailing number of a repeated footer.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

EDGE = 3  # lines at the top and bottom of a page inspected for furniture
MIN_PAGES_FOR_REPEATS = 5  # shorter documents: only page numbers are stripped

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_PAGE_NUMBER = re.compile(
    r"^(?:page\s+)?(?:-\s*)?(?P<label>(?:[A-Z]{1,2}-?)?\d{1,4}|[ivxlc]{1,7})(?:\s*-)?(?:\s+of\s+\d+)?$",
    re.IGNORECASE,
)
_TRAILING_LABEL = re.compile(r"(?:^|\s|\|)(?P<label>(?:[A-Z]-)?\d{1,4}|[ivxlc]{1,7})$", re.IGNORECASE)
# pdfium marks a hyphen it found at a line break as U+FFFE; the words it joins are real compounds.
_PDFIUM_HYPHEN = "\ufffe"
# Broken ligatures ("verifi ed", "eff ective") left by some fonts' text layers.
_LIGATURE_GAP = re.compile(r"(?<=[a-z])(fi|fl|ffi|ffl) (?=[a-z])|(?<=[a-z]{1})(ff) (?=(?:e[cnr]|ic|or|us)[a-z])")
# Classic end-of-line hyphenation: "manage-\nment" -> "management\n" (lowercase on both sides).
_EOL_HYPHEN = re.compile(r"(?<=[a-z])-\n(?P<rest>[a-z]+)(?P<after>[ \t]?)")


@dataclass
class CleanPages:
    texts: list[str]
    labels: list[str | None]
    furniture: list[str]  # the repeated header/footer lines removed (normalised forms)


_MARKED_BREAK = re.compile(r"([A-Za-z]+)[\ufffe\x02]\n?([A-Za-z]+)")
_WORD = re.compile(r"[A-Za-z]{3,}")


def vocabulary(texts: list[str]) -> set[str]:
    """Lower-cased words of the document (to tell "calcu-lation" from "forward-looking")."""
    return {w.lower() for t in texts for w in _WORD.findall(t)}


def join_marked_breaks(text: str, vocab: set[str]) -> str:
    """pdfium marks a hyphen at a line end (U+FFFE) and joins the line: re-join the word when the
    document uses it unhyphenated elsewhere ("volun-tary" -> "voluntary"), else keep a real hyphen
    ("forward-looking", "S-T")."""

    def fix(m: re.Match) -> str:
        a, b = m.group(1), m.group(2)
        return a + b if (a + b).lower() in vocab and b[:1].islower() else f"{a}-{b}"

    return _MARKED_BREAK.sub(fix, text)


def repair_text(text: str, vocab: set[str] | None = None) -> str:
    """Fix extraction artifacts that do not change meaning: pdfium hyphen marks, ligature gaps, EOL hyphens."""
    text = unicodedata.normalize("NFC", text)  # canonical forms: U+037E Greek question mark -> ";", composed accents
    if vocab is not None:
        text = join_marked_breaks(text, vocab)
    text = text.replace(_PDFIUM_HYPHEN, "-").replace("\u2011", "-").replace("\x02", "-")
    text = _LIGATURE_GAP.sub(lambda m: m.group(1) or m.group(2), text)
    return _EOL_HYPHEN.sub(lambda m: m.group("rest") + "\n", text)


def normalise_line(line: str) -> str:
    return _SPACES.sub(" ", _DIGITS.sub("#", line.strip().lower()))


def _edge_lines(lines: list[str]) -> list[str]:
    idx = list(range(min(EDGE, len(lines)))) + list(range(max(len(lines) - EDGE, EDGE), len(lines)))
    return [normalise_line(lines[i]) for i in idx]


def find_furniture(pages: list[list[str]]) -> set[str]:
    """Normalised edge lines repeated on enough pages to be running headers/footers."""
    if len(pages) < MIN_PAGES_FOR_REPEATS:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update(set(_edge_lines(lines)))
    threshold = max(3, int(0.12 * len(pages)))
    return {k for k, n in counts.items() if n >= threshold and k and k != "#"}


def _label_of(line: str) -> str | None:
    s = line.strip()
    m = _PAGE_NUMBER.match(s)
    if m and not (s.isdigit() and len(s) == 4 and s.startswith(("19", "20"))):
        return m.group("label")
    return None


def _strip_edges(lines: list[str], furniture: set[str]) -> tuple[list[str], str | None]:
    """Drop furniture and page numbers from both page edges; return kept lines and the page label."""
    label = None
    top, bottom = 0, len(lines)
    for _ in range(EDGE + 1):  # peel from the bottom
        if bottom <= top:
            break
        raw = lines[bottom - 1]
        if not raw.strip():
            bottom -= 1
            continue
        lab = _label_of(raw)
        if lab is not None or normalise_line(raw) in furniture:
            if lab is None and normalise_line(raw) in furniture:
                m = _TRAILING_LABEL.search(raw.strip())
                lab = m.group("label") if m and _DIGITS.search(raw) else None
            label = label or lab
            bottom -= 1
            continue
        break
    for _ in range(EDGE + 1):  # and from the top
        if top >= bottom:
            break
        raw = lines[top]
        if not raw.strip():
            top += 1
            continue
        norm = normalise_line(raw)
        if norm in furniture:
            if label is None and _DIGITS.search(raw):
                m = _TRAILING_LABEL.search(raw.strip())
                label = m.group("label") if m else None
            top += 1
            continue
        lab = _label_of(raw)
        if lab is not None and label is None:
            label = lab
            top += 1
            continue
        break
    return lines[top:bottom], label


def clean_pages(raw_pages: list[str]) -> CleanPages:
    """Repair text, strip running headers/footers and page numbers; keep printed labels."""
    vocab = vocabulary(raw_pages)
    pages = [repair_text(t, vocab).split("\n") for t in raw_pages]
    pages = [[ln.rstrip() for ln in lines] for lines in pages]
    furniture = find_furniture(pages)
    texts, labels = [], []
    for lines in pages:
        kept, label = _strip_edges(lines, furniture)
        if not any(ln.strip() for ln in kept):  # never strip a page bare: then only its number goes
            kept, label = _strip_edges(lines, set())
        texts.append("\n".join(kept).strip("\n"))
        labels.append(label)
    return CleanPages(texts, labels, sorted(furniture))
