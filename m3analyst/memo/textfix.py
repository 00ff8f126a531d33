"""Repair a quote's PDF text-layer artefacts for display, without changing its words.

Three artefacts of PDF text layers, each repaired only when the document itself proves the repaired word:
- a word split by a kerning gap: "LIQUIDI TY" -> "LIQUIDITY";
- a lost ligature glyph (ff, fi, fl, ffi, ffl) leaving a gap: "af ected" -> "affected", "of ce" -> "office";
- a line-end hyphen kept mid-line: "manu- facturing" -> "manufacturing" (but "well- known" -> "well-known").
"Proves": the joined word occurs elsewhere in the document (`Vocabulary`: lower-case word and adjacent-pair counts)
more often than either piece does, at most one piece also occurs outside this pair (two real words, "post retirement",
"buy back", stay apart), and no piece is a common short word. Anything else is left exactly as it was.
"""

from __future__ import annotations

import re
from collections import Counter

_LIGATURE_FILL = ("", "f", "i", "l", "fi", "fl")
# Real short words a split must not swallow ("in tended" stays as printed unless "intended" is proven and
# "in" is not a piece): pieces in this list never join.
_SHORT_WORDS = frozenset(
    "a an and are as at be but by do for from he her his i if in into is it its me my no not of on or our "
    "out so than that the their them then there these they this to up us was we were who will with you".split())


class Vocabulary:
    """A document's lower-case word counts and adjacent word-pair counts."""

    def __init__(self, text: str = ""):
        words = [m.group(0).lower().rstrip("-") for m in _WORD_OR_HYPHENATED.finditer(text)]
        self.words = Counter(words)
        self.pairs = Counter(zip(words, words[1:]))

    def __bool__(self) -> bool:
        return bool(self.words)

    def count(self, word: str) -> int:
        return self.words.get(word.lower(), 0)


_WORD_OR_HYPHENATED = re.compile(r"[A-Za-z][A-Za-z'’]*-?")


def vocabulary(text: str) -> Vocabulary:
    return Vocabulary(text)


def _proven(word: str, pieces: tuple[str, str], vocab: Vocabulary, ligature: bool = False) -> bool:
    joined = vocab.count(word)
    if joined < 2:
        return False
    a, b = (p.lower().rstrip("-") for p in pieces)
    if (a in _SHORT_WORDS and not ligature) or b in _SHORT_WORDS:
        return False
    together = vocab.pairs.get((a, b), 0)
    if not ligature and vocab.count(a) > together and vocab.count(b) > together:
        return False  # both pieces are words in their own right elsewhere
    return joined > max(vocab.count(a), vocab.count(b))


def _join(left: str, right: str, vocab: Vocabulary) -> str | None:
    """The one word `left right` stands for, or None."""
    if left.endswith("-"):
        stem = left[:-1]
        if _proven(stem + right, (stem, right), vocab):
            return stem + right
        return f"{stem}-{right}" if stem and vocab.count(f"{stem}-{right}") else None
    fills = _LIGATURE_FILL if left[-1:].lower() == "f" or right[:1].lower() in "fil" else ("",)
    for fill in fills:
        if _proven(left + fill + right, (left, right), vocab, ligature=bool(fill)):
            return left + fill + right
    return None


_PAIR = re.compile(r"(?<![A-Za-z'’-])([A-Za-z]+-?) (?=([A-Za-z]+)(?![A-Za-z]))")  # overlapping word pairs


def repair(text: str, vocab: Vocabulary) -> str:
    """`text` with proven split words joined (see the module docstring); other text unchanged."""
    if not vocab:
        return text
    out, pos = [], 0
    for m in _PAIR.finditer(text):
        if m.start() < pos:
            continue
        joined = _join(m.group(1), m.group(2), vocab)
        if joined is None:
            continue
        out.append(text[pos : m.start()])
        out.append(joined)
        pos = m.end() + len(m.group(2))
    out.append(text[pos:])
    return "".join(out)
