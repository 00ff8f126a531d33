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

import bisect
import re
from dataclasses import dataclass
from typing import Sequence

from m3analyst.ingest.model import Citation, Document
from m3analyst.text import Span, sentences, squash
from m3analyst.text import YEAR as _YEAR

# Causal cues, strongest first (weight): each introduces the reason for a change.
_CUES: list[tuple[str, float]] = [
    (r"(primarily|mainly|largely|principally|predominantly|partially|partly|mostly) (due|attributable|related) to", 3.0),
    (r"(primarily|mainly|largely|principally|partially|partly) (as a result of|driven by|reflecting|from|because of|offset by)", 3.0),
    (r"driven (primarily |mainly |largely )?by", 2.5), (r"as a result of", 2.5), (r"attributable to", 2.5),
    (r"due (primarily |mainly |largely )?to", 2.0), (r"result(ed|ing)? (primarily |mainly )?from", 2.0),
    (r"reflect(s|ed|ing)", 1.5), (r"because of", 1.5), (r"owing to", 1.5), (r"offset by", 1.5), (r"led by", 1.0),
    (r"benefit(ed|ing) from", 1.0), (r"(was|were) (primarily |mainly )?(impacted|affected) by", 1.0),
    (r"contributed to", 1.0), (r"caused by", 1.5), (r"impacted by", 1.0),
]
_CUE = re.compile("|".join(f"(?:\\b{c}\\b)" for c, _ in _CUES), re.I)
_CUE_PARTS = [(re.compile(f"\\b{c}\\b", re.I), w) for c, w in _CUES]
_CHANGE = re.compile(r"\b(increase[sd]?|decrease[sd]?|gr[eo]w(th|n)?|declined?|rose|fell|higher|lower|improved?|"
                     r"up|down|flat|unchanged|expan(ded|sion)|contract(ed|ion)|reduc(ed|tion)|rise|drop(ped)?)\b", re.I)
_AMOUNT = re.compile(r"\$\s?\d|\d(\.\d+)?\s?(%|percent|basis points|bps|percentage points?)", re.I)
_CONDITIONAL = re.compile(r"\b(could|may|might|would|can)\b", re.I)
_REFERENTIAL = re.compile(r"\b(reasons|factors|items) (described|discussed|noted|mentioned) (above|below|previously)\b", re.I)
_STATUTORY = re.compile(r"\b(than|to|from) the (u\.s\. )?(federal )?statutory (income tax )?rate\b", re.I)
_PAST = re.compile(r"\b(\w+ed|was|were|rose|fell|grew|had|drove|led|saw|declined|increased)\b", re.I)
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
# Another measure than the reported line: "non-GAAP operating income", "adjusted EBIT", "unit sales", "core net income".
_MEASURE = re.compile(r"\b(non-gaap|adjusted|core|unit|comparable|pro forma|segment)\s+(\w+\s+){0,1}$", re.I)
# How a line behaves in general: "Net operating revenue growth rates are impacted by sales volume; ..."
_GENERIC = re.compile(r"\b(is|are)\s+(generally\s+|typically\s+|primarily\s+)?(impacted|affected|driven|influenced|determined)\b"
                      r"|^(increases|decreases|changes|fluctuations) in\b.{0,80}\b(primarily |generally )?(result|depend|vary|are)\b", re.I)
_QUALIFIERS = {"organic", "currency-neutral", "constant-currency", "comparable-currency", "gaap",
               "annual", "quarterly", "higher", "lower", "strong", "weak", "record", "its", "their", "this", "that", "a",
               "an", "which", "whose", "when", "where", "than", "by", "on", "at", "from", "to", "is", "was", "were",
               "are", "been", "be", "has", "had", "have", "all"}
# "... sales increased 3 percent in 3M's electronics-related businesses, driven by ..."
_PART_AFTER = re.compile(r"\bin\s+(\S+\s+){0,3}?([\w-]+-related|[\w-]+\s+(business(es)?|segments?|divisions?|markets?))\b", re.I)
_PART_WORDS = re.compile(r"(-related|^segments?('s)?$|^divisions?$|^regions?$|^business(es)?$|^products?$|^services?$)", re.I)
_SECTION_WEIGHT = {"item_7": 2.0, "item_2": 1.5, "part2_item_1a": -3.0, "item_1a": -3.0, "item_7a": -1.0, "item_8": -2.5}


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
    firsts = {p.strip().lower().split()[0] for p in phrases if p and p.strip()}
    out = []
    for s in _cue_sentences(doc):
        low = s.text.lower()
        if not any(w in low for w in firsts):
            continue  # cheap test before the phrase regex
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
    lines = list(rx.finditer(text))
    # a cue that is part of the line's name ("net income attributable to 3M") explains nothing
    cues = [m for m in _CUE.finditer(text) if not any(0 <= m.start() - ln.end() <= 1 for ln in lines)]
    if not cues or not lines:
        return None
    cue, line = cues[0], lines[0]
    score = max(w for p, w in _CUE_PARTS if any(p.match(text, c.start()) for c in cues))
    if line.start() > cue.start() and _continues(doc, s, rx, text):
        score += 3.0  # "Net sales increased by $107 million. The increase was primarily driven by ..."
    else:
        score += _line_score(doc, text, line, cue)
    if _REFERENTIAL.search(text) or _STATUTORY.search(text) or _GENERIC.search(text):
        score -= 3.0  # points elsewhere; a level against the statutory rate or how a line behaves is not a change
    if not _PAST.search(text):
        score -= 2.0  # present tense only: how the line behaves in general, not what happened
    score += (1.0 if _CHANGE.search(text) else 0.0) + (0.5 if _AMOUNT.search(text) else 0.0)
    if _CONDITIONAL.search(text[: cue.start()]):
        score -= 3.0
    heading_years, in_part, whole = _context(doc, s.start)
    score += 1.5 if whole and not in_part else 0.0  # under "Consolidated Results": the company's total
    in_part = in_part or _in_part_bullet(doc, s.start, _company_words(doc)) or _refers_to_part(doc, s, rx)
    if in_part or re.search(r"\bthe segment('s|’s)?\b", text, re.I):
        score -= 4.0  # under a segment's heading, or speaking of "the segment"
    score += _period_score(text if _YEAR.search(text) else f"{text} {heading_years}", want, period)
    score += _SECTION_WEIGHT.get(_section_kind(doc, s.start) or "", 0.0)
    return DriverCandidate(s, score, cue.group(0))


def _line_score(doc: Document, text: str, line: re.Match, cue: re.Match) -> float:
    """Where the line stands in the sentence: the subject the cue explains (+), a part of the company or another
    measure (-), or only a cause of something else (-)."""
    score = 0.0
    if re.search(r"\b(of|per|than)\s+(the\s+|our\s+|its\s+)?([a-z-]+\s+)?$", text[: line.start()], re.I):
        score -= 2.0  # "cost of sales", "percent of sales": the line is not the subject
    elif line.start() < cue.start():
        score += 2.0  # the line is what the cue explains
        verb = next((m for m in _CHANGE.finditer(text) if re.fullmatch(r"\w+ed|rose|fell|grew|up|down", m.group(0), re.I)), None)
        relative = verb is not None and re.search(r"\b(that|which|who)\s+$", text[: verb.start()])
        if len(text[: line.start()].split()) <= 8 and (verb is None or line.start() < verb.start() or relative):
            score += 1.0  # ... and the sentence's subject (named before its verb)
        else:
            score -= 2.5  # the object of another subject's verb ("currency translation increased sales by ...")
    else:
        score -= 1.0  # the line is named only as a cause of something else
    before = text[: line.start()]
    if _OTHER_AFTER.match(text[line.end():]) or _PART_AFTER.search(text[line.end(): cue.start()]) or _MEASURE.search(before):
        score -= 4.0  # another line or measure, or a part of the company
    elif _part_of_company(before, _company_words(doc)) or _run_in_heading(text, line):
        score -= 4.0
    return score


def _continues(doc: Document, s: Span, rx: re.Pattern, text: str) -> bool:
    """'The increase was primarily driven by ...' right after a sentence whose subject is the company's line."""
    if not re.match(r"(The|This|These) (increase|decrease|decline|growth|change|rise|drop|improvement)s?\b", text):
        return False
    p, line = _previous_line(doc, s, rx)
    return (line is not None and len(p[: line.start()].split()) <= 8 and not _MEASURE.search(p[: line.start()])
            and not _part_of_company(p[: line.start()], _company_words(doc)) and not _run_in_heading(p, line))


def _part_of_company(before: str, company: set[str]) -> bool:
    """Whether the words just before the line narrow it to a part of the company: a segment, region or product
    ("In Brazil, total sales", "Energy-related total sales", "Intelligent Cloud revenue")."""
    if re.search(r"\b[Ii]n (the )?[A-Z][\w&.-]*[^,]{0,40},\s*(\S+\s+){0,2}$", before) and not re.search(
            r"\b[Ii]n (the )?(fiscal|first|second|third|fourth|full|year|quarter|\d)", before, re.I):
        return True
    clause = [w.strip("“”\"'()") for w in re.split(r"[,;:]", before)[-1].split()[-4:]]
    opens = len(before.split()) == len(clause)  # the clause opens the sentence: its first word is capitalised anyway
    for i, w in enumerate(clause):
        named = w[:1].isupper() and not _generic(w, company) and not (opens and i == 0 and not w.isupper())
        if _PART_WORDS.search(w) or named:
            return True  # "Energy-related sales", "FLNA net revenue", "Intelligent Cloud revenue"
    # a plain noun just before the line names a product line ("apparel revenues"), not the company's total
    return bool(clause) and clause[-1].isalpha() and clause[-1].islower() and not _generic(clause[-1], company)


def _run_in_heading(text: str, line: re.Match) -> bool:
    """'Europe Net revenue decreased 2%': a heading ('Europe', a segment) run into the sentence before a capitalised
    line name; 'LatAm net revenue': a name with inner capitals."""
    words = text[: line.start()].split()
    if not words:
        return False
    capital_line = line.group(0)[:1].isupper() and words[-1][:1].isupper()
    capital_line |= len(words) >= 2 and words[-1] in ("Net", "Total") and words[-2][:1].isupper()
    return capital_line or any(re.search(r"[a-z][A-Z]", w) for w in words[-2:])


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
            score -= 3.0  # speaks of another span
    return score


# A segment's heading: "Health Care Business (18.4% of consolidated sales):", "Domestic Segment".
_PART_HEADING = re.compile(r"^[A-Z][\w&,.' -]{1,60}\b(Business|Segment|Division)( \(\d[\d.]*\s?% of [a-z ]{3,30}\))?:?$")
# An all-caps heading that names no section of the filing ("GREATER CHINA", "EUROPE, MIDDLE EAST & AFRICA") names a
# segment or region; words are compared with spaces removed (PDF text splits them: "OVERVI EW").
_CAPS_HEADING = re.compile(r"^[A-Z][A-Z&,.' -]{2,40}$")
_SECTION_WORDS = re.compile(r"RESULT|OPERATION|OVERVIEW|CONSOLIDATED|LIQUIDITY|CAPITAL|MANAGEMENT|ITEM|PART|NOTE|FISCAL|YEAR"
                            r"|SUMMARY|HIGHLIGHT|DISCUSSION|ANALYSIS|CRITICAL|ACCOUNTING|OUTLOOK|TOTAL|REVENUE|INCOME|SALES"
                            r"|EXPENSE|TAX|MARGIN|PROFIT|CASH|FLOW|RISK|FACTOR|INC|CORP|COMPANY|LLC|PLC|LTD|TABLE|CONTENTS")


def _part_heading(line: str) -> bool:
    if _PART_HEADING.search(line):
        return True
    return bool(_CAPS_HEADING.match(line)) and not _SECTION_WORDS.search(re.sub(r"[^A-Z]", "", line))
# A heading naming the period the text under it speaks of: "Year 2017 results:", "Fiscal 2022 Compared with Fiscal 2021".
_PERIOD_HEADING = re.compile(r"^(year|fiscal|full year|(first|second|third|fourth) quarter|(three|six|nine|twelve) months)\b"
                             r"|\bresults\b|\bcompared (with|to)\b", re.I)


def _context(doc: Document, offset: int, reach: int = 12000) -> tuple[str, bool, bool]:
    """(the years the nearest heading above names, whether a heading above names a segment, whether the nearest
    heading names the consolidated company) — what a sentence speaks of ("Year 2017 results:" ... "Operating income
    margins increased ...")."""
    lines = doc.text[max(0, offset - reach): offset].split("\n")[:-1]
    years, part, whole, first = "", False, False, True
    for ln in reversed(lines):
        ln = ln.strip()
        if not ln or len(ln) > 90 or (ln.endswith(".") and not ln.endswith(":")) or len(re.findall(r"\d[\d,.]*", _YEAR.sub("", ln))) > 1:
            continue  # body text and table rows are not headings
        if not years and _PERIOD_HEADING.search(ln) and _YEAR.search(ln):
            years = " ".join(_YEAR.findall(ln))
        if first and ln[:1].isupper():
            whole, first = bool(re.search(r"\b(consolidated|total company)\b", ln, re.I)), False
        if not part and re.search(r"^(consolidated|total company)\b", ln, re.I):
            break  # the company's own results start below this heading: segments above it do not apply
        part = part or _part_heading(ln)
    return years, part, whole


def _in_part_bullet(doc: Document, offset: int, company: set[str], reach: int = 800) -> bool:
    """Whether the bullet item the sentence belongs to opens on a part of the company ("· In Health Care, ...")."""
    before = doc.text[max(0, offset - reach): offset]
    m = list(_BULLET.finditer(before))
    if not m:
        return False
    item = before[m[-1].end():]
    return bool(re.match(r"In (the )?[A-Z][^,]{0,40},", item)) and not _generic(item.split()[1], company)


def _previous_line(doc: Document, s: Span, rx: re.Pattern) -> tuple[str, re.Match | None]:
    """The sentence just before `s` in the same passage (same page, close by) and where it names the line."""
    every = doc_sentences(doc)
    i = bisect.bisect_left([x.start for x in every], s.start)
    prev = every[i - 1] if i > 0 else None
    if prev is None or prev.page != s.page or s.start - prev.end > 400:
        return "", None
    text = squash(prev.text)
    return text, rx.search(text)


def _refers_to_part(doc: Document, s: Span, rx: re.Pattern) -> bool:
    """'North America sales increased 33%. The sales growth in each year primarily reflects ...': a sentence that
    refers back ('The', 'This', 'These') speaks of what the sentence before it names."""
    if not re.match(r"(The|This|These|That|Such)\b", s.text):
        return False
    text, line = _previous_line(doc, s, rx)
    return line is not None and (_part_of_company(text[: line.start()], _company_words(doc)) or _run_in_heading(text, line))


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


_SENTENCES: list[tuple[Document, list[Span], list[Span]]] = []  # the last few documents' sentences, cue sentences


def doc_sentences(doc: Document) -> list[Span]:
    """The document's sentences with bullet items split apart ('· In Health Care, ...'), remembered for the last few
    documents (findings scan them several times)."""
    return _sentences(doc)[0]


def _cue_sentences(doc: Document) -> list[Span]:
    """Prose sentences of 7-90 words that carry a causal cue."""
    return _sentences(doc)[1]


def _sentences(doc: Document) -> tuple[list[Span], list[Span]]:
    for d, every, cued in _SENTENCES:
        if d is doc:
            return every, cued
    every = [_after_table(part) for s in sentences(doc) for part in _split_bullets(s)]
    cued = [s for s in every if _CUE.search(s.text) and 7 <= s.words <= 90 and _is_prose(squash(s.text))]
    _SENTENCES.insert(0, (doc, every, cued))
    del _SENTENCES[4:]
    return every, cued


_TABLE_RUN = re.compile(r"(?:[\$(]?\s?-?\d[\d,.]*\)?\s?%?\s+){3,}(?=[A-Z][a-z]+\s+[a-z])")


def _after_table(s: Span) -> Span:
    """A sentence with a flattened table glued in front ('... 2024 vs. 2023 ... $ 5,360,508 16 % Streaming revenues for
    the year ... increased 16% ...'): the prose after the table's last run of figures."""
    if _is_prose(squash(s.text)):
        return s
    runs = list(_TABLE_RUN.finditer(s.text))
    if not runs:
        return s
    cut = runs[-1].end()
    tail = s.text[cut:]
    return Span(s.start + cut, s.end, s.page, tail) if len(tail.split()) >= 7 else s


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
