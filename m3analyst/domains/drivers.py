"""Driver sentences: where a filing states why a statement line changed.

    cites = driver_sentences(doc, ["net sales", "revenue"], period="2018")        # best first
    cites = driver_sentences(doc, spec.fact("operating_income").ask, "three months to July 29, 2023", k=3)

`driver_sentences(doc, phrases, period=None, k=5) -> list[Citation]` is the stable entry point (memo findings and
`ask`'s explanation questions use it). A sentence qualifies when it names the line (one of `phrases`, e.g. a fact
spec's `ask` list, matched as whole words) and states a cause of a change with a causal cue ("primarily due to",
"driven by", "as a result of", "reflecting", "attributable to", "offset by", ...). Qualifying sentences are ranked by
how directly they explain *this* line in *this* period, from definitions rather than any one filing's wording:

- the line is the sentence's subject (named before the cue, near the start) and a change verb or amount is stated;
- the line is the company's total, not one segment's, region's or product's ("In Brazil, total sales ...",
  "Automotive aftermarket sales ..." rank lower);
- the sentence names the asked period's year (and, for a quarter, the quarter) and not only earlier years
  (prior-year narrative: "2017 sales increased ... compared with 2016" when 2018 is asked ranks last);
- it sits in the MD&A (Item 7 / 10-Q Item 2), not in the risk factors or the notes; it is prose, not a table row;
- conditional language ("could", "may") is a risk, not a stated driver.

`driver_candidates` returns the scored sentences for callers that re-rank them (the memo writer, with a model,
ranks candidate driver sentences by the engine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from m3analyst.domains.text import Span, sentences, squash
from m3analyst.ingest.model import Citation, Document

# Causal cues, strongest first (weight): each introduces the reason for a change.
_CUES: list[tuple[str, float]] = [
    (r"(primarily|mainly|largely|principally|predominantly|partially|partly|mostly) (due|attributable|related) to", 3.0),
    (r"(primarily|mainly|largely|principally|partially|partly) (as a result of|driven by|reflecting|from|because of|offset by)", 3.0),
    (r"driven (primarily |mainly |largely )?by", 2.5), (r"as a result of", 2.5), (r"attributable to", 2.5),
    (r"due (primarily |mainly |largely )?to", 2.0), (r"result(ed|ing)? (primarily |mainly )?from", 2.0),
    (r"reflect(s|ed|ing)", 1.5), (r"because of", 1.5), (r"owing to", 1.5), (r"offset by", 1.5), (r"led by", 1.0),
    (r"benefit(ed|ing) from", 1.0), (r"(was|were) (primarily |mainly )?(impacted|affected) by", 1.0),
    (r"contributed to", 1.0), (r"caused by", 1.5),
]
_CUE = re.compile("|".join(f"(?:\\b{c}\\b)" for c, _ in _CUES), re.I)
_CUE_PARTS = [(re.compile(f"\\b{c}\\b", re.I), w) for c, w in _CUES]
_CHANGE = re.compile(r"\b(increase[sd]?|decrease[sd]?|gr[eo]w(th|n)?|declined?|rose|fell|higher|lower|improved?|"
                     r"up|down|flat|unchanged|expan(ded|sion)|contract(ed|ion)|reduc(ed|tion)|rise|drop(ped)?)\b", re.I)
_AMOUNT = re.compile(r"\$\s?\d|\d(\.\d+)?\s?(%|percent|basis points|bps|percentage points?)", re.I)
_CONDITIONAL = re.compile(r"\b(could|may|might|would)\b", re.I)
_REFERENTIAL = re.compile(r"\b(reasons|factors|items) (described|discussed|noted|mentioned) (above|below|previously)\b", re.I)
_YEAR = re.compile(r"\b(19[89]\d|20[0-4]\d)\b")
_BULLET = re.compile(r"\s*[·•▪●]\s*")
# Words after the line that make it another line ("sales and marketing expenses", "sales tax") or a part of the
# company ("revenues for our Kids' business", "net income attributable to noncontrolling interests").
_OTHER_AFTER = re.compile(r"^\W{0,2}(and marketing|and administrative|expenses?|costs?|tax(es)?|force|returns|allowances|"
                          r"attributable to (non-?controlling|minority)|(for|of|in|from) (our|the|its) [^,.]{0,40}?"
                          r"\b(business|segment|division|region|brand|unit|operations))\b", re.I)
# Words before the line that keep it company-wide ("Total net sales", "Our revenue", "In fiscal 2021, revenues").
_COMPANY_WORDS = re.compile(r"^(total|consolidated|company|company's|our|the|net|in|for|fiscal|during|compared|as|"
                            r"worldwide|overall|reported|gaap|year|quarter|first|second|third|fourth|full|and|both|while|"
                            r"however|also|of|with|[\d,.$%()]+)$", re.I)
_QUALIFIERS = {"organic", "currency-neutral", "constant-currency", "comparable-currency", "gaap", "non-gaap", "adjusted",
               "annual", "quarterly", "higher", "lower", "strong", "weak", "record", "its", "their", "this", "that", "a",
               "an", "which", "whose", "when", "where", "than", "by", "on", "at", "from", "to", "is", "was", "were",
               "are", "been", "be", "has", "had", "have", "all"}
_PART_WORDS = re.compile(r"(-related|^segments?('s)?$|^divisions?$|^regions?$|^business(es)?$|^products?$|^services?$)", re.I)
_SECTION_WEIGHT = {"item_7": 2.0, "item_2": 1.5, "part2_item_1a": -3.0, "item_1a": -3.0, "item_7a": -1.0, "item_8": -0.5}


@dataclass
class DriverCandidate:
    """One sentence stating (a cause of) a line's change, with its rule score (higher is better)."""

    span: Span
    score: float
    cue: str

    def citation(self) -> Citation:
        return Citation(self.span.page, self.span.start, self.span.end, squash(self.span.text))


def driver_sentences(doc: Document, phrases: Sequence[str], period: str | None = None, k: int = 5) -> list[Citation]:
    """The filing's sentences that state the driver of the change of the line named by `phrases` in `period`
    (a period label as facts carry it: "2018", "three months to July 29, 2023", "2023-06-30"), best first, at most
    `k`; [] when the filing states none."""
    return [c.citation() for c in driver_candidates(doc, phrases, period)[:k]]


def driver_candidates(doc: Document, phrases: Sequence[str], period: str | None = None,
                      min_score: float = 3.0) -> list[DriverCandidate]:
    """Every qualifying sentence, scored, best first (scores below `min_score` are left out)."""
    rx = _phrase_rx(phrases)
    if rx is None:
        return []
    want = _period_years(period)
    out = []
    for s in _cue_sentences(doc):
        cand = _score(doc, s, rx, want, period or "")
        if cand is not None and cand.score >= min_score:
            out.append(cand)
    out.sort(key=lambda c: (-c.score, c.span.start))
    return out


def _phrase_rx(phrases: Sequence[str]) -> re.Pattern | None:
    alts = sorted({re.escape(p.strip().lower()).replace(r"\ ", r"\s+") for p in phrases if p and p.strip()}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(alts) + r")\b", re.I) if alts else None


def _period_years(period: str | None) -> tuple[str | None, str | None]:
    """(the asked year, the comparable prior year) from a period label."""
    years = _YEAR.findall(period or "")
    if not years:
        return None, None
    y = years[-1]
    return y, str(int(y) - 1)


def _score(doc: Document, s: Span, rx: re.Pattern, want: tuple[str | None, str | None], period: str) -> DriverCandidate | None:
    text = squash(s.text)
    words = len(text.split())
    if words < 7 or words > 90 or not _is_prose(text):
        return None
    lines = list(rx.finditer(text))
    # a cue that is part of the line's name ("net income attributable to 3M") explains nothing
    cues = [m for m in _CUE.finditer(text) if not any(0 <= m.start() - ln.end() <= 1 for ln in lines)]
    if not cues or not lines:
        return None
    cue, line = cues[0], lines[0]
    score = max(w for p, w in _CUE_PARTS if any(p.match(text, c.start()) for c in cues))
    if re.search(r"\b(of|as a % of|per)\s+(the\s+)?$", text[: line.start()], re.I):
        score -= 2.0  # "cost of sales", "percent of sales": the line is not the subject
    elif line.start() < cue.start():
        score += 2.0  # the line is what the cue explains
        if len(text[: line.start()].split()) <= 8:
            score += 1.0  # ... and the sentence's subject
    else:
        score -= 1.0  # the line is named only as a cause of something else
    if _REFERENTIAL.search(text):
        score -= 3.0
    if _OTHER_AFTER.match(text[line.end():]):
        score -= 4.0  # another line, or a part of the company
    elif _part_of_company(text[: line.start()], _company_words(doc)):
        score -= 2.5
    if _CHANGE.search(text):
        score += 1.0
    if _AMOUNT.search(text):
        score += 0.5
    if _CONDITIONAL.search(text[: cue.start()]):
        score -= 3.0
    score += _period_score(text, want, period)
    score += _SECTION_WEIGHT.get(_section_kind(doc, s.start) or "", 0.0)
    return DriverCandidate(s, score, cue.group(0))


def _part_of_company(before: str, company: set[str]) -> bool:
    """Whether the words just before the line narrow it to a part of the company: a segment, region or product
    ("In Brazil, total sales", "Energy-related total sales", "Intelligent Cloud revenue")."""
    if re.search(r"\b[Ii]n (the )?[A-Z][\w&.-]*[^,]{0,40},\s*(\S+\s+){0,2}$", before) and not re.search(
            r"\b[Ii]n (the )?(fiscal|first|second|third|fourth|full|year|quarter|\d)", before, re.I):
        return True
    clause = [w.strip("“”\"'()") for w in re.split(r"[,;:]", before)[-1].split()[-4:]]
    for w in clause:
        if _PART_WORDS.search(w) or (w[:1].isupper() and not _generic(w, company)):
            return True  # "Energy-related sales", "FLNA net revenue", "Intelligent Cloud revenue"
    # a plain noun just before the line names a product line ("apparel revenues"), not the company's total
    return bool(clause) and clause[-1].isalpha() and clause[-1].islower() and not _generic(clause[-1], company)


def _generic(word: str, company: set[str]) -> bool:
    """A word that leaves the line company-wide: determiners, period words, verbs and change words, the company."""
    w = word.lower()
    return bool(_COMPANY_WORDS.match(w) or _CHANGE.fullmatch(w) or w in company or w in _QUALIFIERS
                or re.fullmatch(r"[a-z]+(ed|ing|ly)", w))


def _period_score(text: str, want: tuple[str | None, str | None], period: str) -> float:
    year, prior = want
    if year is None:
        return 0.0
    years = set(_YEAR.findall(text))
    # fiscal years are named by the calendar year they end in: a period ending in July 2023 is "fiscal 2024" too
    fiscal = {str(int(y) - 1) for y in re.findall(r"\bfiscal (?:year )?(\d{4})\b", text, re.I)}
    score = 0.0
    if year in years | fiscal or re.search(rf"\bfiscal\s+{year[-2:]}\b", text, re.I):
        score += 1.5
    elif years and all(int(y) < int(year) for y in years - {str(int(f) + 1) for f in fiscal}):
        score -= 4.0  # only earlier years: prior-year narrative
    elif years and not years & {year, prior}:
        score -= 2.0
    span = re.match(r"(\w+) months", period)
    if span:  # a quarter or year-to-date column: the sentence should speak of that span
        own = {"three": r"three months|quarter", "six": r"six months|first half|year[- ]to[- ]date",
               "nine": r"nine months|year[- ]to[- ]date"}.get(span.group(1).lower())
        if own and not re.search(own, text, re.I) and re.search(r"\b(months|quarter|half|year[- ]to[- ]date)\b", text, re.I):
            score -= 1.5  # speaks of another span
    return score


def _company_words(doc: Document) -> set[str]:
    name = doc.metadata.company or ""
    return {w.lower().strip(".,") for w in name.split()} | {w.lower().strip(".,") + "'s" for w in name.split()}


def _is_prose(text: str) -> bool:
    toks = text.split()
    nums = sum(1 for t in toks if re.fullmatch(r"[\$\(\)\d,.%—–-]+", t))
    return nums / len(toks) < 0.25 and re.search(r"[a-z]{3,}\s+[a-z]{3,}", text) is not None


def _section_kind(doc: Document, offset: int) -> str | None:
    best = None
    for sec in doc.sections:
        if sec.start <= offset < sec.end and (best is None or sec.start >= best.start):
            best = sec
    return best.kind if best else None


_SENTENCES: list[tuple[Document, list[Span]]] = []  # the last few documents' cue sentences


def _cue_sentences(doc: Document) -> list[Span]:
    """Sentences (bullet items split apart) that carry a causal cue; remembered for the last few documents."""
    for d, found in _SENTENCES:
        if d is doc:
            return found
    found = []
    for s in sentences(doc):
        for part in _split_bullets(s):
            if _CUE.search(part.text):
                found.append(part)
    _SENTENCES.insert(0, (doc, found))
    del _SENTENCES[4:]
    return found


def _split_bullets(s: Span) -> list[Span]:
    out, pos = [], 0
    for m in list(_BULLET.finditer(s.text)) + [None]:
        end = m.start() if m else len(s.text)
        piece = s.text[pos:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append(Span(s.start + pos + lead, s.start + pos + lead + len(piece.strip()), s.page, piece.strip()))
        pos = m.end() if m else pos
    return out
