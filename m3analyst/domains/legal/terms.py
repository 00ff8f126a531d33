"""The legal term sheet: one short answer per CUAD category the spec lists (`term_sheet:` in domains/legal/spec.yaml),
each with the clause that states it.

Short answers: Yes / No for a clause category (does the contract contain a termination-for-convenience right, an
exclusivity commitment ...), a value for the others — parties, a date, a duration, a governing law — or
"Not found". The value is read from the clause the extractor chose for the fact (legal.py), so the answer and its
quoted evidence always agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.text import DATE, DURATION_TEXT, parse_date, parse_duration, written
from m3analyst.domains.facts import Fact
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.ingest.model import Citation, Document

NOT_FOUND = "Not found"
# no fixed end date: the term runs until someone ends it
_PERPETUAL = re.compile(r"\bperpetu\w*|\bindefinite\w*|\bin\s+(?:full\s+)?(?:force|effect)\s+until\s+(?:terminated|such\s+time)|"
                        r"\bremain\s+in\s+effect\s+until\s+terminated|\bunless\s+and\s+until\s+terminated|\bcontinue\s+until\s+terminated",
                        re.I)
_AUTO = re.compile(r"\bautomatic\w*|\bunless\b", re.I)
_SUCCESSIVE = re.compile(r"\bsuccessive|\bconsecutive|\beach\s+(?:year|anniversary)|\byear\s+to\s+year|\bthereafter\b", re.I)
_RENEW_WORD = re.compile(r"\b(?:renew\w*|extend\w*|extension|successive|additional|further|continu\w*)\b", re.I)
_BEFORE = re.compile(r"\b(?:prior\s+to|before|in\s+advance\s+of|preceding)\b", re.I)
_DURATION_RX = re.compile(rf"\b{DURATION_TEXT}|\b(?:\d+|one|two|three|four|six|eight|twelve)\s+(?:\(\d+\)\s+)?weeks?\b", re.I)


@dataclass
class TermAnswer:
    """One row of the term sheet."""

    fact: str  # the spec's fact name
    category: str  # the CUAD category
    title: str  # the row label shown
    answer: str  # Yes / No / Not found / a value
    evidence: Citation | None = None
    note: str = ""  # how a value was read (computed end dates say from what)

    @property
    def present(self) -> bool:
        return self.answer not in ("No", NOT_FOUND)


def term_sheet_facts(spec: DomainSpec) -> list[FactSpec]:
    """The fact specs the term sheet answers, in the spec's order (`term_sheet:` names them)."""
    names = (spec.model_extra or {}).get("term_sheet") or []
    return [fs for n in names if (fs := spec.fact(n)) is not None]


def term_sheet(doc: Document, spec: DomainSpec, facts: list[Fact]) -> list[TermAnswer]:
    by = {f.name: f for f in facts}
    out = []
    for fs in term_sheet_facts(spec):
        f = by.get(fs.name)
        cuad = str((fs.model_extra or {}).get("cuad") or fs.title)
        answer, note = _short_answer(fs, f, doc) if f is not None else (_absent(fs), "")
        cite = citation_of(doc, f) if f is not None and answer not in (NOT_FOUND, "No") else None
        out.append(TermAnswer(fs.name, cuad, fs.title, answer, cite, note))
    return out


def _absent(fs: FactSpec) -> str:
    return "No" if fs.value == "text" else NOT_FOUND


def _quote_text(f: Fact, doc: Document) -> str:
    a, b = f.extra.get("quote") or (None, None)
    return " ".join(doc.text[a:b].split()) if a is not None else f.source_text


def _short_answer(fs: FactSpec, f: Fact, doc: Document) -> tuple[str, str]:
    value = str(f.value or "")
    if fs.value == "text":
        return "Yes", ""
    if fs.value == "parties":
        return value or NOT_FOUND, ""
    if fs.value == "law":
        return (value if value and len(value.split()) <= 6 else NOT_FOUND), ""
    if fs.value == "date":
        return _date_answer(f, _quote_text(f, doc))
    if fs.name == "expiration_date":
        return _expiration(f, _quote_text(f, doc))
    if fs.name == "notice_to_terminate_renewal":
        return _notice(_quote_text(f, doc)), ""
    if fs.value == "duration":
        return _renewal(_quote_text(f, doc)), ""
    return value or NOT_FOUND, ""


# a date the contract defines by an event: '"Effective Date" means the Closing Date ...', "shall become effective upon
# the approval of ...", "shall commence upon expiration of the Warranty Period"
_EVENT = re.compile(r"(?:\beffective\s+date[\"”']?\s*(?:\([^)]{0,40}\)\s*)?(?:shall\s+)?(?:means?|shall\s+be|is|will\s+be)"
                    r"|\b(?:shall|will)\s+(?:become|be)\s+effective\s+(?:on|upon|as\s+of|at)"
                    r"|\b(?:agreement|contract|term)\b[^.;]{0,40}?\b(?:shall|will)\s+(?:commence|begin|start|take\s+effect|come\s+into\s+"
                    r"(?:force|effect))\s+(?:on|upon|as\s+of|at|from))\s+((?:the|its|such|a)\b[^.;]{3,160})", re.I)


def _date_answer(f: Fact, sentence: str) -> tuple[str, str]:
    """A calendar date (noted with the clause that defines it, when another clause does), else the event the clause
    names as the date ("the Closing Date as set forth in the Share Purchase Agreement"), else Not found."""
    d = parse_date(str(f.value or ""))
    if d:
        return written(d), str((f.extra.get("defined_by") or {}).get("text") or "")[:400]
    m = _EVENT.search(sentence)
    if not m or parse_date(m.group(1)) or re.match(r"(?i)the\s+(?:date\s+)?(?:first\s+)?(?:written|set\s+forth|hereof)|the\s+effective\s+date\b(?!\s+of)",
                                                   m.group(1)):
        return NOT_FOUND, ""
    event = " ".join(m.group(1).split()[:20]).rstrip(" ,")
    return event, sentence


def _expiration(f: Fact, sentence: str) -> tuple[str, str]:
    """A computed end date (legal._resolve_dates), a date the clause states, Perpetual, or the term's length."""
    if f.derived and (d := parse_date(str(f.value))):
        return written(d), str(f.value)
    if _PERPETUAL.search(sentence):
        return "Perpetual", ""
    if d := _end_date(sentence):
        return written(d), ""
    m = _DURATION_RX.search(sentence)
    if m:
        return _duration_label(m.group(0)), sentence
    if _UNTIL_ENDED.search(sentence):
        return "Perpetual", sentence
    if _REDACTED.search(sentence):
        return "Redacted in the filing ([***])", sentence
    e = _END_EVENT.search(sentence)
    return (f"Until {' '.join(e.group(1).split()[:20]).rstrip(' ,')}", sentence) if e else (NOT_FOUND, "")


_REDACTED = re.compile(r"\[\s*\*[\s*]*\]|\*{3,}")
# no date and no length: the term runs until a party ends it ("will continue until termination as provided below",
# "for so long as X remains a shareholder"), or until an event ("until completion of the Project")
_UNTIL_ENDED = re.compile(r"\b(?:continu|remain|be\s+in\s+effect|in\s+(?:full\s+)?(?:force|effect))\w*\b[^.;]{0,60}?\buntil\s+"
                          r"(?:terminated|termination\b(?!\s+of\s+(?:the|this|any|such)\s+\w+))"
                          r"|\bfor\s+so\s+long\s+as\b|\b(?:end|expire)s?\s+(?:only\s+)?when\s+terminated\b", re.I)
_END_EVENT = re.compile(r"\b(?:until|expire\s+(?:on|upon|at)|end\s+(?:on|upon|at)|terminate\s+(?:on|upon|at)|ending\s+(?:on\s+)?)\s+"
                        r"((?:the|a|an|such|all|its|completion|acceptance|expiration|termination)\b[^.;]{3,160})", re.I)


_END_CUE = re.compile(r"\b(?:until|through|thru|to|expir\w*|end\w*|terminat\w*|before|by)\s+(?:on\s+|at\s+)?(?:the\s+)?(?:close\s+of\s+business\s+on\s+)?$",
                     re.I)


def _end_date(sentence: str):
    """The date a term ends on: the one introduced by until / through / expires on ..., else the only date."""
    found = [(m, parse_date(m.group(0))) for m in DATE.finditer(sentence)]
    found = [(m, d) for m, d in found if d is not None]
    for m, d in found:
        if _END_CUE.search(sentence[max(0, m.start() - 40) : m.start()]):
            return d
    starts = [m for m, _ in found if _START_CUE.search(sentence[max(0, m.start() - 40) : m.start()])]
    return found[0][1] if len(found) == 1 and not starts else None


# a date the term starts on ("shall commence as of April 1, 2018"): not its end
_START_CUE = re.compile(r"\b(?:commenc\w*|begin\w*|start\w*|effective|dated|from)\s+(?:on\s+|as\s+of\s+|from\s+)?(?:the\s+)?$", re.I)


def _duration_label(text: str) -> str:
    weeks = re.search(r"(\d+|one|two|three|four|six|eight|twelve)\s+(?:\(\d+\)\s+)?weeks?", text, re.I)
    if weeks:
        return f"{weeks.group(1)} weeks"
    d = parse_duration(text)
    if d is None:
        return NOT_FOUND
    n, unit = d
    return f"{n} {unit}{'s' if n != 1 else ''}"


# a renewal period written as one word: "1-year terms", "one-year periods", "on a year to year basis"
_HYPHENED = re.compile(r"\b(\d+|one|two|three|four|five|six|ten|twelve)(?:\s*\(\d+\))?(?:\s*-\s*|\s+|\s+(?:additional|further|successive|more)\s+)(year|month)\b(?!s?\s+(?:prior|notice|before|in\s+advance))", re.I)
_YEAR_TO_YEAR = re.compile(r"\b(year|month)[- ]to[- ](?:year|month)\b|\b(?:annual|yearly)\s+basis\b", re.I)
# a notice period inside a renewal clause ("unless either party gives ninety days' prior written notice"): not the renewal's length
_NOTICE_AFTER = re.compile(r"^['’]?\s*(?:\(\d+\)\s*)?(?:prior|advance|written|notice|before|in\s+advance|preceding|following\s+(?:receipt|notice))", re.I)


def _renewal_length(tail: str) -> str | None:
    """The length of one renewal in `tail` (the clause from its renewal word on), skipping notice periods."""
    for m in _DURATION_RX.finditer(tail):
        if not _NOTICE_AFTER.search(tail[m.end() : m.end() + 30]):
            h = _HYPHENED.search(tail, 0, m.start())
            return _duration_label(h.group(0).replace("-", " ") + "s" if h else m.group(0))
    h = _HYPHENED.search(tail)
    if h:
        return _duration_label(f"{h.group(1)} {h.group(2)}s")
    y = _YEAR_TO_YEAR.search(tail)
    return f"1 {(y.group(1) or 'year').lower()}" if y else None


def _renewal(sentence: str) -> str:
    """'successive 1 year (automatic)': the renewal's length written nearest after a renewal word."""
    anchor = _RENEW_WORD.search(sentence)
    label = _renewal_length(sentence[anchor.start():] if anchor else sentence) or _renewal_length(sentence)
    if not label:
        return "Yes (length not stated)"
    if _SUCCESSIVE.search(sentence):
        label = f"successive {label}"
    return f"{label} (automatic)" if _AUTO.search(sentence) else label


def _notice(sentence: str) -> str:
    """The notice period: the duration written nearest before 'prior to / before' (the end of the term)."""
    before = _BEFORE.search(sentence)
    cands = list(_DURATION_RX.finditer(sentence[: before.start()] if before else sentence))
    if not cands:
        cands = list(_DURATION_RX.finditer(sentence))
    return _duration_label(cands[-1].group(0)) if cands else "Yes (period not stated)"


def citation_of(doc: Document, f: Fact) -> Citation:
    """The sentence the answer was read from (else the clause), with its page."""
    a, b = f.extra.get("quote") or (f.extra.get("start"), f.extra.get("end"))
    if a is not None and b is not None and 0 <= a < b:
        return Citation.of_span(doc, a, b)
    return Citation.page_only(f.page or 1, f.source_text[:400])


__all__ = ["NOT_FOUND", "TermAnswer", "citation_of", "term_sheet", "term_sheet_facts"]
