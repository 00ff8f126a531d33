"""Model-free answers to effect questions about a trial ("Compared with C, did I significantly increase,
significantly decrease, or make no significant difference to O?", "Compared with C, what was the effect of I
on O?"): the sentence of the paper that reports
the comparison is found and quoted, and the label is read off its wording (a no-difference statement, or a
significant change and its direction, from the intervention's side). Rules, not a model: the answer says so,
and None is returned when the sentence does not say clearly.
"""

from __future__ import annotations

import re

from m3analyst.domains.text import Span, sentences, squash
from m3analyst.ingest.model import Document
from m3analyst.memo.model import Answer
from m3analyst.memo.passages import BM25, tokens

LABELS = ("significantly increased", "significantly decreased", "no significant difference")
_ASKS_EFFECT = re.compile(r"significantly increase.{0,40}significantly decrease.{0,60}no significant difference"
                          r"|^\s*compared (?:with|to) .+?, what (?:was|is|were) the effect of .+? on ", re.I | re.S)
_PARTS = [re.compile(r"^\s*compared (?:with|to) (?P<c>.+?),\s*did (?P<i>.+?) significantly increase.*?difference (?:to|in|on) "
                     r"(?P<o>.+?)\??\s*$", re.I | re.S),
          re.compile(r"^\s*compared (?:with|to) (?P<c>.+?),\s*what (?:was|is|were) the effect of (?P<i>.+?) on (?P<o>.+?)\??\s*$",
                     re.I | re.S)]
_NO_DIFF = re.compile(
    r"\bno (?:statistically )?significant (?:difference|change|effect|association|improvement|reduction|increase|decrease)"
    r"|\bnot (?:statistically )?significant(?:ly)?\b|\bdid not (?:significantly )?(?:differ|change|improve|reduce|increase|"
    r"decrease|affect)|\b(?:were|was) (?:comparable|similar)\b|\bsimilar (?:in|between|among|across)\b"
    r"|\bp\s*[>≥]\s*0?\.0[5-9]|\bp\s*[>=≥]\s*0?\.[1-9]|\(\s*n\.?s\.?\s*\)", re.I)
_SIGNIFICANT = re.compile(r"\bsignificant(?:ly)?\b|\bp\s*[<≤]\s*0?\.0[0-5]|\bp\s*=\s*0?\.0[0-4]", re.I)
_DOWN = re.compile(r"\b(?:lower|reduc(?:ed|tion|es)|decreas(?:ed|e|es)|less|fewer|shorter|declin(?:ed|e)|smaller|attenuated|"
                   r"diminished)\b", re.I)
_UP = re.compile(r"\b(?:higher|increas(?:ed|e|es)|greater|more|longer|elevated|larger|raised)\b", re.I)
_SIGNAL = re.compile(f"{_NO_DIFF.pattern}|{_SIGNIFICANT.pattern}", re.I)
_QUESTION_WORDS = {"significantly", "increase", "decrease", "significant", "difference", "make", "compared", "with", "did",
                   "what", "was", "the", "effect"}


def asks_effect(question: str) -> bool:
    return bool(_ASKS_EFFECT.search(question))


def _first_mention(sentence: str, phrase: str) -> int | None:
    """Position of the first content word of `phrase` in the sentence (None when none occurs)."""
    hits = [m.start() for w in tokens(phrase) if len(w) > 3 and (m := re.search(rf"\b{re.escape(w)}", sentence, re.I))]
    return min(hits) if hits else None


def label_of(sentence: str, intervention: str = "", comparator: str = "") -> str | None:
    """The effect label the sentence states, from the intervention's side; None when it does not say."""
    if _NO_DIFF.search(sentence):
        return "no significant difference"
    if not _SIGNIFICANT.search(sentence):
        return None
    down, up = _DOWN.search(sentence), _UP.search(sentence)
    if not (down or up):
        return None
    goes_down = bool(down) and (not up or down.start() < up.start())
    i, c = _first_mention(sentence, intervention), _first_mention(sentence, comparator)
    if c is not None and (i is None or c < i):  # "the control group had significantly higher ..." : the other side
        goes_down = not goes_down
    return "significantly decreased" if goes_down else "significantly increased"


def answer_effect(doc: Document, question: str) -> Answer | None:
    """The reported effect, quoted with its page, or None (not an effect question, or no clear sentence)."""
    if not asks_effect(question):
        return None
    parts = next((m for rx in _PARTS if (m := rx.match(question))), None)
    intervention, comparator, outcome = (parts.group("i"), parts.group("c"), parts.group("o")) if parts else ("", "", question)
    sents = [s for s in sentences(doc) if 6 <= s.words <= 120 and _SIGNAL.search(s.text)]
    if not sents:
        return None
    query = " ".join(w for w in tokens(f"{outcome} {outcome} {intervention} {comparator}") if w not in _QUESTION_WORDS)
    scores = BM25([s.text for s in sents]).scores(query)
    ranked = sorted(range(len(sents)), key=lambda k: -scores[k])[:3]
    for k in ranked:
        if scores[k] <= 0:
            break
        s: Span = sents[k]
        label = label_of(squash(s.text), intervention, comparator)
        if label:
            return Answer(f"{label} \u2014 \u201c{squash(s.text)}\u201d [p.{s.page}] (read from the quoted sentence by rules, "
                          "not by a model)", None, [s.page], "rules", None, None)
    return None


__all__ = ["LABELS", "answer_effect", "asks_effect", "label_of"]
