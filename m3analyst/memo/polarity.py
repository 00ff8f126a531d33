"""Direction and polarity of a claim against the sentence it cites: the verifier rejects a claim that states the
reverse of its source (higher / lower, increase / decrease, more / less than, significant / not significant,
negated / not), even when every figure and word of it is on the cited page.

The claim's source sentence is the one on the cited page(s) that shares most of its content words. Both are read
with the same rules (domains/bio/effects.py): the direction word nearest the shared topic, whether it is negated,
whether a difference is stated significant or not, and which side is the subject ('A was higher than B' against
'B was higher than A' is a reversal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.domains.bio.effects import DOWN, NO_DIFF, SIG_WORD, UP, p_significance

_SPLIT = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\"“])")
_WORD = re.compile(r"[a-z][a-z-]{2,}")
_STOP = {"the", "and", "was", "were", "for", "with", "than", "that", "this", "from", "are", "its", "their", "which", "has", "have",
         "had", "been", "compared", "group", "groups", "significantly", "significant", "statistically"}
_NEG = re.compile(r"\b(?:not|no|never|neither|nor|without|did not|does not|do not|failed to)\b[^.;,]{0,25}$", re.I)
_THAN = re.compile(r"\b(?:than|versus|vs\.?|compared (?:with|to)|relative to)\b", re.I)


@dataclass
class Polarity:
    direction: str | None  # "up" | "down" | None
    negated: bool
    significant: bool | None  # True / False / None (not stated)
    subject: set[str]  # content words before the direction word
    other: set[str]  # content words after 'than / versus / compared with'


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def polarity(sentence: str, topic: set[str] = frozenset()) -> Polarity:
    """How the sentence says things move: its direction word (the first after the topic's first mention when a
    topic is given, else the first), negation before it, significance stated, and the two sides compared."""
    cues = sorted([(m.start(), "up") for m in UP.finditer(sentence)] + [(m.start(), "down") for m in DOWN.finditer(sentence)])
    if topic and cues:
        at = [m.start() for m in _WORD.finditer(sentence.lower()) if m.group(0) in topic]
        if at:
            after = [c for c in cues if c[0] >= at[0]]
            cues = after or cues
    sig: bool | None = None
    if NO_DIFF.search(sentence) or any(not s for _, s in p_significance(sentence)):
        sig = False
    elif SIG_WORD.search(sentence) or any(s for _, s in p_significance(sentence)):
        sig = True
    if not cues:
        return Polarity(None, False, sig, set(), set())
    pos, way = cues[0]
    than = _THAN.search(sentence, pos)
    other = _words(sentence[than.end(): than.end() + 60]) if than else set()
    return Polarity(way, bool(_NEG.search(sentence[max(0, pos - 40): pos])), sig, _words(sentence[:pos]), other)


def _source(claim: str, page_text: str) -> str | None:
    """The sentence of the cited page(s) sharing most of the claim's content words (at least half of them)."""
    words = _words(claim)
    if len(words) < 2:
        return None
    best, score = None, 0.0
    for s in _SPLIT.split(" ".join(page_text.split())):
        share = len(words & _words(s)) / len(words)
        if share > score:
            best, score = s, share
    return best if score >= 0.5 else None


def polarity_problem(claim: str, page_text: str) -> str | None:
    """A reason to reject the claim when it states the reverse of its source sentence on the cited page(s); None
    when they agree or the source does not say."""
    src = _source(claim, page_text)
    if src is None:
        return None
    a = polarity(claim)
    b = polarity(src, a.subject)
    if a.significant is not None and b.significant is not None and a.significant != b.significant:
        said = "a significant difference" if a.significant else "no significant difference"
        return f"polarity: the claim states {said}, its source sentence the opposite: \"{src[:80]}\""
    if a.direction and b.direction:
        # 'the control group had higher X than the ketamine group' against 'X was lower in the ketamine group than in
        # the control group': the claim's subject is what its source compares against
        swapped = bool(a.subject & b.other and not a.other & b.other)
        way_a = a.direction if not a.negated else ("down" if a.direction == "up" else "up")
        way_b = b.direction if not b.negated else ("down" if b.direction == "up" else "up")
        if (way_a != way_b) != swapped:
            return f"polarity: the claim's direction ({a.direction}) reverses its source sentence's: \"{src[:80]}\""
    return None


__all__ = ["Polarity", "polarity", "polarity_problem"]
