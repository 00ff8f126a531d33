"""Where a citation sits on its page image: the quote's (or a fact row's) words matched against the page's word boxes.

Quotes come from the PDF's text layer as the loader read it (pdfium), the boxes from pdfplumber; the two differ in
ligatures and split words ("af ected" / "affected", "LIQUIDI TY"), so words are compared as lower-case letters and
digits and aligned as sequences (difflib), anchored on the longest run of matching words and extended over small gaps.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from typing import Sequence

from m3analyst.memo.pages import Word

MAX_GAP = 4  # words of slack between two matched runs (artefacts, footnote marks, a line's furniture)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def norm_token(text: str) -> str:
    return _NON_ALNUM.sub("", unicodedata.normalize("NFKC", text).lower())


def _tokens(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    toks, index = [], []
    for i, t in enumerate(texts):
        n = norm_token(t)
        if n:
            toks.append(n)
            index.append(i)
    return toks, index


def align(words: Sequence[Word], text: str) -> list[int]:
    """Indices of the page words that `text` covers (empty when it is not on the page)."""
    page, index = _tokens([w.text for w in words])
    quote, _ = _tokens(text.split())
    if not page or not quote:
        return []
    blocks = [b for b in SequenceMatcher(None, page, quote, autojunk=False).get_matching_blocks() if b.size]
    if not blocks:
        return []
    anchor = max(range(len(blocks)), key=lambda i: blocks[i].size)
    lo = hi = anchor
    while lo > 0 and _close(blocks[lo - 1], blocks[lo]):
        lo -= 1
    while hi + 1 < len(blocks) and _close(blocks[hi], blocks[hi + 1]):
        hi += 1
    matched = sum(b.size for b in blocks[lo : hi + 1])
    if matched < min(3, len(quote)) and matched < len(quote):
        return []
    first, last = blocks[lo].a, blocks[hi].a + blocks[hi].size
    return [index[i] for i in range(first, last)]


def _close(left, right) -> bool:
    page_gap = right.a - (left.a + left.size)
    quote_gap = right.b - (left.b + left.size)
    return page_gap <= quote_gap + MAX_GAP and quote_gap <= page_gap + MAX_GAP


def coverage(words: Sequence[Word], picked: Sequence[int], text: str) -> float:
    """Share of `text`'s letters and digits found, in order, in the picked words (1.0: every quoted word is covered)."""
    want = "".join(_tokens(text.split())[0])
    have = "".join(norm_token(words[i].text) for i in picked)
    if not want:
        return 1.0
    sm = SequenceMatcher(None, have, want, autojunk=False)
    return sum(b.size for b in sm.get_matching_blocks()) / len(want)


def value_tokens(value: float, scale: float | None) -> set[str]:
    """How a statement prints `value` (in the document's scale): '32,765', '(1,234)', '8.89' -> normalised tokens."""
    shown = abs(value) / (scale or 1.0)
    forms = {f"{shown:,.0f}", f"{shown:,.1f}", f"{shown:,.2f}", f"{shown:,.3f}"}
    return {norm_token(f) for f in forms}


def fact_boxes(words: Sequence[Word], source_text: str, values: Sequence[tuple[float, float | None]],
               text_value: str = "") -> tuple[list[int], list[int]]:
    """The fact's row on the page (its source text) and, within it, the words printing each of `values` (numbers) or
    the words of `text_value` (a clause's short answer: a law, a date, a party)."""
    row = align(words, source_text) if source_text else []
    wanted = set().union(*(value_tokens(v, s) for v, s in values)) if values else set()
    strong = [i for i in row if norm_token(words[i].text) in wanted and any(c.isdigit() for c in words[i].text)]
    if text_value and row:
        sub = [words[i] for i in row]
        strong += [row[j] for j in align(sub, text_value)]
    return row, strong


def line_boxes(words: Sequence[Word], picked: Sequence[int], pad: float = 0.002) -> list[list[float]]:
    """The picked words merged into one rectangle per line run (x0, top, x1, bottom as page fractions)."""
    boxes: list[list[float]] = []
    for i in sorted(picked):
        w = words[i]
        last = boxes[-1] if boxes else None
        height = w.bottom - w.top
        if last and abs(last[1] - (w.top - pad)) < height * 0.5 and w.x0 >= last[2] - pad - height * 0.2 \
                and w.x0 - last[2] < height * 3:
            last[2] = max(last[2], w.x1 + pad)
            last[3] = max(last[3], w.bottom + pad)
        else:
            boxes.append([w.x0 - pad, w.top - pad, w.x1 + pad, w.bottom + pad])
    return [[round(v, 5) for v in b] for b in boxes]
