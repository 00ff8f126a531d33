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


# Differences at baseline are about the groups' make-up, not the effect of the intervention.
_BASELINE = re.compile(r"\b(?:at|of the|in)\s+baseline\b|\bbaseline\s+(?:characteristics|values?|data|demographics)\b|"
                       r"\bat\s+(?:inclusion|enrol?lment|entry|randomi[sz]ation|study\s+start)\b|\bdemographic", re.I)
# "model for end-stage liver disease (MELD)": a long form, then its abbreviation in parentheses
_ABBR = r"\(([A-Z][A-Za-z0-9\-]{1,9})\)"  # "(PRA)"
_DEFINED_ABBR = re.compile(rf"((?:[A-Za-z][\w\-']*\s+){{1,8}}?){_ABBR}")


def abbreviations_for(doc: Document, phrase: str) -> list[str]:
    """Abbreviations the phrase carries ("... activity (PRA)") or the document defines for it: an abbreviation
    defined right after a long form most of whose content words are in the phrase (letters matched to the
    long form's initials decide where the long form starts)."""
    out = re.findall(_ABBR, phrase)
    words = {w for w in tokens(phrase) if len(w) > 3}
    if not words:
        return out
    for m in _DEFINED_ABBR.finditer(doc.text):
        abbr, before = m.group(2), m.group(1).split()
        long_form = before[-len(abbr):] if len(before) >= len(abbr) else before
        content = {w for w in tokens(" ".join(long_form)) if len(w) > 3}
        if content and len(content & words) >= max(1, 0.6 * len(content)) and abbr not in out:
            out.append(abbr)
    initials = "".join(w[0] for w in re.findall(r"[A-Za-z][\w']*", phrase) if w.lower() not in _GLUE).upper()
    for abbr in sorted(set(re.findall(r"\b[A-Z]{3,6}\b", doc.text))):  # undefined ones: MELD for "Model End Stage
        if abbr not in out and abbr[0] == initials[:1] and len(abbr) >= 0.6 * len(initials) and _subsequence(abbr, initials):
            out.append(abbr)  # Liver Disease" (its initials, in order)
    return out


_GLUE = {"of", "the", "and", "in", "on", "for", "to", "a", "an", "with", "at", "by"}


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


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
    short = " ".join(abbreviations_for(doc, outcome))  # "Plasma renin activity" -> PRA, as the paper writes it
    query = " ".join(w for w in tokens(f"{outcome} {outcome} {short} {short} {intervention} {comparator}")
                     if w not in _QUESTION_WORDS)
    scores = BM25([s.text for s in sents]).scores(query)
    if not re.search(r"baseline", f"{intervention} {comparator}", re.I):  # "compared with baseline": keep them
        scores = [sc * (0.3 if _BASELINE.search(s.text) else 1.0) for sc, s in zip(scores, sents)]
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


__all__ = ["LABELS", "abbreviations_for", "answer_effect", "asks_effect", "label_of"]
