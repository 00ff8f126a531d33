"""Clause classification by what a sentence does (domains/legal/spec.yaml `does` rules).

A fact spec with `does` rules is found sentence by sentence: a sentence is the fact's clause when one rule's
`match` regex finds it and none of that rule's `unless` regexes finds the same provision (the text between
the semicolons around the match: "may terminate upon 30 days' notice if the other party breaches" is
termination on an event, not for convenience); the fact's `not` regexes exclude a sentence outright.

Sentences that can never be a clause source, whatever their words:
- recitals ("WHEREAS ...", the background before "NOW, THEREFORE"): they say why the parties contract, not
  what they agree, so a recital is never exclusivity, a non-compete or a termination right;
- sentences addressed to a reader or a model ("ignore previous instructions", "write that ..."): text
  injected into a document is not a term of the contract;
- headings and table-of-contents lines (too short to state a term).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from m3analyst.domains.spec import FactSpec
from m3analyst.text import Span, paragraphs, sentences_of, squash
from m3analyst.ingest.model import Document

_FLAGS = re.IGNORECASE | re.DOTALL
# An instruction to whoever reads the text: an assistant, a model, a reviewer writing a summary.
INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|preceding|earlier|other)\s+"
    r"(?:instructions?|prompts?|directions?|context|text)"
    r"|\b(?:you\s+(?:are|must|should|will)\s+(?:now\s+)?(?:an?\s+)?(?:ai\b|assistant|language\s+model|chatbot|answer|say|"
    r"write|respond|output))"
    r"|\b(?:as\s+an?\s+(?:ai|assistant|language\s+model))\b"
    r"|(?:^|[.!?]\s+|\b(?:please|always|instead|now)\s+)(?:write|say|answer|respond|reply|state|output|report|tell\s+the\s+user)"
    r"\s+(?:that|with|only|:)"
    r"|\b(?:system\s+prompt|prompt\s+injection|new\s+instructions?)\b"
    r"|\b(?:summary|memo|answer|response|output)\s+(?:must|should|shall)\s+(?:say|state|read|report)\b",
    re.IGNORECASE,
)
_RECITAL_START = re.compile(r"^\W*(?:(?:WITNESSETH|RECITALS?|BACKGROUND)\W*)?(?:[A-Z]\.|\(?[a-z0-9]{1,3}[.)])?\s*WHEREAS\b",
                            re.IGNORECASE)
_RECITALS_HEAD = re.compile(r"\b(?:RECITALS|BACKGROUND|PREAMBLE|W\s?I\s?T\s?N\s?E\s?S\s?S\s?E\s?T\s?H)\b|\bWHEREAS\b")
_OPERATIVE = re.compile(r"NOW,?\s+THEREFORE|(?:the\s+parties|they)\s+(?:hereto\s+)?(?:hereby\s+)?(?:agree|covenant)\w*\s+as\s+follows"
                        r"|IN\s+CONSIDERATION\s+OF|AGREED\s+TERMS", re.IGNORECASE)
_DEFINITION = re.compile(r"^\W*(?:\d+(?:\.\d+)*\.?\s+|\(?[a-z0-9]{1,4}[.)]\s+)?[\"“][^\"”]{2,60}[\"”]\s+(?:shall\s+)?(?:mean|means|has\s+the\s+meaning|"
                         r"shall\s+have\s+the\s+meaning|refers?\s+to)\b", re.IGNORECASE)


# a table-of-contents run: "Section 2.01 Appointment; Exclusivity 5 Section 2.02 ..."
_TOC = re.compile(r"\b(?:Section|Article|SECTION|ARTICLE)\s+[0-9IVX]+(?:\.\d+)*\s+[A-Z][^.]{0,60}?\s\d{1,3}\s")


@dataclass(frozen=True)
class Rule:
    match: re.Pattern
    unless: tuple[re.Pattern, ...] = ()


@dataclass(frozen=True)
class Clause:
    """A classified clause: the sentence that does it and the paragraph it stands in."""

    sentence: Span
    paragraph: Span
    rule: int  # index of the matching rule in the spec's `does` list


def _compile(p: str) -> re.Pattern:
    return re.compile(p, _FLAGS)


@lru_cache(maxsize=256)
def _rules_of(key: tuple) -> tuple[tuple[Rule, ...], tuple[re.Pattern, ...]]:
    does, nots = key
    rules = []
    for r in does:
        if isinstance(r, str):
            rules.append(Rule(_compile(r)))
        else:
            rules.append(Rule(_compile(r[0]), _patterns(r[1])))
    return tuple(rules), _patterns(nots)


def rules(fs: FactSpec) -> tuple[tuple[Rule, ...], tuple[re.Pattern, ...], tuple[re.Pattern, ...]]:
    """The spec's `does` rules (a regex, or {match, unless: [...]}), its `not` patterns and its `need` patterns
    (a sentence must match one of them, when there are any), compiled once."""
    extra: dict[str, Any] = fs.model_extra or {}
    does = tuple(r if isinstance(r, str) else (r["match"], tuple(r.get("unless") or ())) for r in extra.get("does") or ())
    rs, nots = _rules_of((does, tuple(extra.get("not") or ())))
    return rs, nots, _patterns(tuple(extra.get("need") or ()))


@lru_cache(maxsize=256)
def _patterns(ps: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    return tuple(_compile(p) for p in ps)


def has_rules(fs: FactSpec | None) -> bool:
    return fs is not None and bool((fs.model_extra or {}).get("does"))


_ENUM = re.compile(r"\(\s*(?:[a-z]|[ivx]{1,4}|\d{1,2})\s*\)\s(?!\s*(?:calendar\s+|business\s+)?(?:days?|weeks?|months?|years?|hours?)\b)")


def _provision(text: str, a: int, b: int) -> str:
    """The provision a match at [a, b) states: the text between the semicolons around it, and where it runs over
    enumerated alternatives ("(x) by mutual agreement, or (y) at any time upon notice"), the lead-in before the
    first of them plus the alternative the match ends in."""
    left = text.rfind(";", 0, a) + 1
    right = text.find(";", b)
    part = text[left : right if right >= 0 else len(text)]
    cuts = [m.start() for m in _ENUM.finditer(part)]
    end = b - left
    inside = [c for c in cuts if c < end]
    if not inside:
        return part
    after = next((c for c in cuts if c >= end), len(part))
    return part[: inside[0]] + " " + part[inside[-1] : after]


def classify(text: str, fs: FactSpec) -> int | None:
    """Index of the first `does` rule that `text` (one sentence) satisfies, or None."""
    does, nots, need = rules(fs)
    if any(n.search(text) for n in nots) or (need and not any(n.search(text) for n in need)):
        return None
    for i, rule in enumerate(does):
        for m in rule.match.finditer(text):
            part = _provision(text, m.start(), m.end())
            if not any(u.search(part) for u in rule.unless):
                return i
    return None


class ClauseIndex:
    """A contract's sentences, each with its paragraph, with recitals and instructions marked; built once
    per document and shared by every category."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.paras = paragraphs(doc, min_chars=30)
        operative = _OPERATIVE.search(doc.text, 0, min(len(doc.text), 30000))
        recital_end = operative.start() if operative else -1
        head = _RECITALS_HEAD.search(doc.text, 0, recital_end) if recital_end > 0 else None
        self.units: list[tuple[Span, Span, str, bool]] = []  # sentence, paragraph, squashed text, usable
        for p in self.paras:
            for s in sentences_of(p):
                in_recitals = head is not None and head.start() <= s.start < recital_end
                t = squash(s.text)
                usable = (len(t.split()) >= 6 and not in_recitals and len(_TOC.findall(t)) < 3 and not _RECITAL_START.search(t)
                          and not INSTRUCTION.search(t) and not _DEFINITION.search(t))
                self.units.append((s, p, t, usable))

    def find(self, fs: FactSpec, first: bool = True) -> list[Clause]:
        """Sentences that do what `fs` describes (the first only, unless first=False)."""
        out = []
        for s, p, t, usable in self.units:
            if not usable:
                continue
            i = classify(t, fs)
            if i is not None:
                out.append(Clause(s, p, i))
                if first:
                    break
        return out


def is_instruction(text: str) -> bool:
    return bool(INSTRUCTION.search(text))


__all__ = ["Clause", "ClauseIndex", "INSTRUCTION", "classify", "has_rules", "is_instruction", "rules"]
