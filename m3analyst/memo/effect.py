"""Model-free answers to effect questions about a trial ("Compared with C, did I significantly increase,
significantly decrease, or make no significant difference to O?", "Compared with C, what was the effect of I
on O?"): the sentence of the paper that reports
the comparison is found and quoted, and the label is read off its wording (a no-difference statement, or a
significant change and its direction, from the intervention's side). Rules, not a model: the answer says so,
and None is returned when the sentence does not say clearly.
"""

from __future__ import annotations

import re

from m3analyst.domains.bio.effects import NO_DIFF, LABELS, Reading, outcome_overlap, read_effect
from m3analyst.text import Span, sentences, squash
from m3analyst.ingest.model import Document
from m3analyst.memo.types import Answer
from m3analyst.memo.passages import BM25, tokens

_ASKS_EFFECT = re.compile(r"significantly increase.{0,40}significantly decrease.{0,60}no significant difference"
                          r"|^\s*compared (?:with|to) .+?, what (?:was|is|were) the effect of .+? on ", re.I | re.S)
_PARTS = [re.compile(r"^\s*compared (?:with|to) (?P<c>.+?),\s*did (?P<i>.+?) significantly increase.*?difference (?:to|in|on) "
                     r"(?P<o>.+?)\??\s*$", re.I | re.S),
          re.compile(r"^\s*compared (?:with|to) (?P<c>.+?),\s*what (?:was|is|were) the effect of (?P<i>.+?) on (?P<o>.+?)\??\s*$",
                     re.I | re.S)]
_SIGNIFICANT = re.compile(r"\bsignificant(?:ly)?\b|\b[Pp]s?\s*[<≤=>≥]\s*0?\.\d", re.I)
_SIGNAL = re.compile(f"{NO_DIFF.pattern}|{_SIGNIFICANT.pattern}", re.I)
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


def label_of(sentence: str, intervention: str = "", comparator: str = "", outcome: str = "") -> str | None:
    """The effect label the sentence states, from the intervention's side; None when it does not say
    (domains/bio/effects.read_effect: the outcome's clause, significance, direction, the subject's side)."""
    r = read_effect(sentence, intervention, comparator, outcome)
    return r.label if r else None


def question_parts(question: str) -> tuple[str, str, str] | None:
    """(intervention, comparator, outcome) of an effect question, or None."""
    parts = next((m for rx in _PARTS if (m := rx.match(question))), None)
    return (parts.group("i"), parts.group("c"), parts.group("o")) if parts else None


# a sentence about other studies or the trial's background, not this trial's result
_OTHERS = re.compile(r"\bet al\b|\bprevious(?:ly)?\b|\bprior (?:studies|trials|work)\b|\b(?:have|has) (?:been )?(?:shown|reported|demonstrated)\b"
                     r"|\b(?:we|to) (?:hypothesi[sz]ed?|aimed?|expect(?:ed)?)\b|\bsample size\b|\bpower\b|\bproposed\b|\bnull hypothesis"
                     r"|\bcolleagues\b|\b(?:in|by) (?:19|20)\d\d\b|\[\d+(?:\s*[,–-]\s*\d+)*\]", re.I)
# how the statistics were done, a figure's caption, a list of abbreviations: never the result
_NOT_RESULT = re.compile(r"considered (?:statistically )?significant|significance (?:level|was set)|level of significance|\bwas set at\b"
                         r"|^\W*(?:Fig(?:ure)?\.?\s*\d)|\bFig(?:ure)?\.?\s*\d+[A-Z][a-z]|\bAbbreviations?\b|\bData are (?:presented|expressed|shown) as\b",
                         re.I)


def effect_candidates(doc: Document, intervention: str, comparator: str, outcome: str) -> list[tuple[float, Span]]:
    """Sentences that may report the comparison, best first: BM25 on the outcome (twice, with its abbreviations)
    and the arms; a sentence stating significance or its absence counts more, baseline and background ones less.
    A sentence naming the outcome without any statistic is joined to the next one ("X was ... . P = 0.02")."""
    sents = [s for s in sentences(doc) if 4 <= s.words <= 150]
    if not sents:
        return []
    short = abbreviations_for(doc, outcome)  # "Plasma renin activity" -> PRA, as the paper writes it
    joined = " ".join(short)
    bm25 = BM25([s.text for s in sents])
    on_outcome = bm25.scores(" ".join(w for w in tokens(f"{outcome} {joined}") if w not in _QUESTION_WORDS))
    on_arms = bm25.scores(" ".join(w for w in tokens(f"{intervention} {comparator}") if w not in _QUESTION_WORDS))
    scores = [o + 0.3 * a if o > 0 else 0.0 for o, a in zip(on_outcome, on_arms)]
    keep_baseline = bool(re.search(r"baseline", f"{intervention} {comparator}", re.I))
    out = []
    for k, (sc, s) in enumerate(zip(scores, sents)):
        text = squash(s.text)
        if sc <= 0:
            continue
        nxt = sents[k + 1] if k + 1 < len(sents) else None
        if (nxt is not None and not _SIGNAL.search(text) and nxt.page == s.page and _SIGNAL.search(nxt.text)
                and not re.match(r"\s*(?:BODY|ABSTRACT)\.", nxt.text) and s.words + nxt.words <= 80):
            s = Span(s.start, nxt.end, s.page, doc.text[s.start:nxt.end])
            text = squash(s.text)
        sc *= (1.5 if _SIGNAL.search(text) else 0.6) * (0.3 if _BASELINE.search(text) and not keep_baseline else 1.0)
        sc *= (0.4 if _OTHERS.search(text) else 1.0) * (0.1 if _NOT_RESULT.search(text) else 1.0)
        if text.count(",") >= 6 and not re.search(r"\b(?:was|were|showed|had|did)\b", text):
            sc *= 0.3  # a legend: 'CI confidence interval, ER extended-release, ...'

        sc *= 1.0 + 0.5 * outcome_overlap(text, outcome, short)
        out.append((sc, s))
    out.sort(key=lambda t: -t[0])
    return out


def read_candidates(doc: Document, question: str, top: int = 6) -> list[tuple[float, Span, Reading]]:
    """(score, sentence, reading) for the best candidates that state a label."""
    parts = question_parts(question)
    intervention, comparator, outcome = parts if parts else ("", "", question)
    short = abbreviations_for(doc, outcome)
    got = []
    for sc, s in effect_candidates(doc, intervention, comparator, outcome)[:top]:
        r = read_effect(squash(s.text), intervention, comparator, outcome, short)
        if r is not None:
            got.append((sc, s, r))
    return got


def answer_effect(doc: Document, question: str) -> Answer | None:
    """The reported effect, quoted with its page, or None (not an effect question, or no clear sentence)."""
    if not asks_effect(question):
        return None
    got = read_candidates(doc, question)
    if not got:
        return None
    _, s, r = got[0]
    return Answer(f"{r.label} \u2014 \u201c{squash(s.text)}\u201d [p.{s.page}] (read from the quoted sentence by rules, "
                  f"not by a model: {r.reason})", None, [s.page], "rules", None, None)


__all__ = ["LABELS", "abbreviations_for", "answer_effect", "asks_effect", "effect_candidates", "label_of", "question_parts",
           "read_candidates"]
