"""The narrative finance findings: the filing's top risk factors (deduplicated, each a short label and its quote) and
its outlook (forward-looking statements only: guidance, or expects / anticipates / plans with a figure or a date —
never the safe-harbour notice, conditional risk language or last year's narrative).

Words and limits come from the spec's `analysis` block: `risk_themes` (label -> regex) label and deduplicate risks,
`risks_max` / `outlook_max` cap them; the Outlook heading's `avoid` patterns (safe-harbour notices) are never outlook.
"""

from __future__ import annotations

import re

from m3analyst.domains.finance.drivers import doc_sentences
from m3analyst.domains.findings import Finding
from m3analyst.ingest.model import Citation, Document
from m3analyst.text import Span, paragraphs, sentences_of, squash
from m3analyst.text import YEAR as _YEAR

_BULLET_START = re.compile(r"(?:^|\n)\s*[*•·▪●■]\s+")
_HEAD_END = re.compile(r"(?<=[a-z)”’\"])[.!?](?=\s|[A-Z“\"])")
_RISK_CUE = re.compile(r"\b(could|may|might|adverse(ly)?|risks?|uncertain(ty|ties)?|harm|depend(s|ent)?|subject to|fail(s|ure)?|"
                       r"volatil\w*|disrupt\w*|impair\w*|affect(s|ed)?|impact(s|ed)?|expos\w*|vulnerab\w*|los[se]s?)\b", re.I)
_VERBS = r"(expects?|anticipates?|plans? to|projects?|forecasts?|intends? to|estimates?|targets?|believes? .{0,40}\bwill)"
_FORWARD = re.compile(r"\b(we|the company|management|the group)\s+(currently\s+|now\s+|also\s+|still\s+)?" + _VERBS + r"\b"
                      r"|\b(outlook|guidance)\b|\b(is|are) (expected|anticipated|projected|planned|forecast) to\b", re.I)
_PAST_FORWARD = re.compile(r"\b(was|were|had been|had)\s+(expected|anticipated|projected|planned)\b|\b(expected|anticipated)\s+at the time\b", re.I)
_FIGURE = re.compile(r"\$\s?\d|\d(\.\d+)?\s?(%|percent|basis points|bps)|\b\d[\d,.]*\s+(million|billion)\b", re.I)
_FUTURE = re.compile(r"\b(next|coming|upcoming|following) (fiscal )?(year|quarter|twelve months|12 months)|\bremainder of\b|"
                     r"\b(through|by|in|during) (fiscal )?(the )?(first|second|third|fourth) quarter of", re.I)
_CONDITIONAL = re.compile(r"\b(could|may|might|would)\b", re.I)


def _section_ranges(doc: Document, kinds: tuple[str, ...]) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in doc.sections if s.kind in kinds]


def _inside(span: Span, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= span.start < b for a, b in ranges)


# ---- risks ---------------------------------------------------------------------------------------
def risk_findings(doc: Document, cfg: dict, section: str) -> list[Finding]:
    """The first `risks_max` risk factors of Item 1A, one per theme: label, the risk's heading sentence, its quote."""
    ranges = _section_ranges(doc, ("item_1a", "part2_item_1a"))
    if not ranges:
        return []
    themes = [(label, re.compile(rx, re.I)) for label, rx in (cfg.get("risk_themes") or {}).items()]
    out: list[Finding] = []
    seen: set[str] = set()
    for head, body in _risk_items(doc, ranges):
        text = squash(head.text)
        hits = [(m.start(), lab) for lab, rx in themes if (m := rx.search(text))]
        label = min(hits)[1] if hits else None  # the theme named first
        key = label or " ".join(text.lower().split()[:6])
        if key in seen:
            continue
        seen.add(key)
        label = label or _short_label(text)
        ev = [Citation(body.page, body.start, body.end, squash(body.text))] if body is not None else []
        out.append(Finding(f"{text} [p.{head.page}]", "risk", section, [], ev, label=label))
        if len(out) >= int(cfg.get("risks_max", 5)):
            break
    return out


def _risk_items(doc: Document, ranges: list[tuple[int, int]]):
    """(heading sentence, the sentences after it up to ~45 words) for each risk factor, in the filing's order."""
    for para in paragraphs(doc, min_chars=60, max_chars=6000):
        if not any(a < para.end and para.start < b for a, b in ranges):
            continue
        for item in _split_items(para):
            head = _heading(item) if _inside(item, ranges) else None
            if head is None:
                continue
            rest = item.text[head.end - item.start:]
            lead = len(rest) - len(rest.lstrip(" .\n"))
            body = _first_words(Span(head.end + lead, item.end, item.page, rest[lead:]), 45) if rest.strip(" .\n") else None
            yield head, body


def _split_items(para: Span) -> list[Span]:
    cuts = [m.end() for m in _BULLET_START.finditer(para.text)]
    starts = [0] + cuts if not cuts or cuts[0] > 2 else cuts
    out = []
    for i, a in enumerate(starts):
        b = (_last_bullet_before(para.text, starts[i + 1]) if i + 1 < len(starts) else len(para.text))
        piece = para.text[a:b]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append(Span(para.start + a + lead, para.start + a + lead + len(piece.strip()), para.page, piece.strip()))
    return out


def _last_bullet_before(text: str, end: int) -> int:
    m = list(_BULLET_START.finditer(text, 0, end))
    return m[-1].start() if m else end


def _heading(item: Span) -> Span | None:
    """The risk's heading: a Title Case title run into its text ('... Highly Volatile We have ...'), else its first
    sentence (PDF text may run it into the next: 'preferences.Demand'), when it states a risk in 6-45 words. Section
    intros ('Item 1A. Risk Factors ...', 'the following risks') and sentences that continue an earlier one ('In
    addition, ...', 'It ...') are not risk headings."""
    start = item.start
    title = _title_run(item.text)
    if title is not None and len(title.split()) < 4:  # a category line ("Business Risks"): skip it
        cut = len(title) + len(item.text[len(title):]) - len(item.text[len(title):].lstrip())
        start, title = start + cut, _title_run(item.text[cut:])
    text = doc_text = item.text[start - item.start:]
    if title is not None and len(title.split()) >= 4:
        end = len(title)
    else:
        m = _HEAD_END.search(doc_text)
        end = m.end() if m else len(doc_text)
    text = doc_text[:end]
    if not 6 <= len(text.split()) <= 45 or not _RISK_CUE.search(text) or not text[:1].isupper() or _NOT_HEAD.match(text):
        return None
    return Span(start, start + end, item.page, text)


_SMALL = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with", "our", "its"}
_NOT_HEAD = re.compile(r"(item\s+1a\b|in addition|additionally|also|for example|for instance|however|further(more)?|therefore|"
                       r"thus|accordingly|as a result|"
                       r"moreover|these|this|such|it\b|they\b|see\b|please\b)|.{0,80}\b(following|below)\b.{0,40}\brisks?\b", re.I)


def _title_run(text: str) -> str | None:
    """'We May Be Subject to Risks Related to X Our contracts with ...' -> 'We May Be Subject to Risks Related to X':
    the Title Case words before the capitalised word that opens the text's first lower-case run."""
    words = text.split()
    for i, w in enumerate(words):
        if w.lower() in _SMALL or not w[:1].isalpha():
            continue
        if w[:1].islower():
            capitals = [x for x in words[: i - 1] if x[:1].isupper() and x.lower() not in _SMALL]
            if i < 2 or not words[i - 1][:1].isupper() or len(capitals) < 2:
                return None  # an ordinary sentence ("Change in the Company's credit ratings could ...")
            cut = text.index(words[i - 1], sum(len(x) + 1 for x in words[: i - 1]) - 1 if i > 1 else 0)
            return text[:cut].rstrip() or None
    return None


def _first_words(span: Span, n: int) -> Span:
    sents = sentences_of(span)
    end, words = span.start, 0
    for s in sents:
        if words and words + s.words > n:
            break
        words += s.words
        end = s.end
    return Span(span.start, end, span.page, span.text[: end - span.start]) if end > span.start else span


def _short_label(text: str) -> str:
    """A risk without a theme: its first words up to the verb, at most six."""
    words = re.sub(r"^(the|our|a|an)\s+", "", text, flags=re.I).split()
    out = []
    for w in words[:6]:
        if _RISK_CUE.fullmatch(w.strip(",.").lower()) or w.lower() in ("is", "are", "can", "will", "and", "to"):
            break
        out.append(w.strip(",."))
    return " ".join(out or words[:4]).rstrip(",;:")


# ---- outlook -------------------------------------------------------------------------------------
def outlook_findings(doc: Document, cfg: dict, section: str, latest_year: int | None,
                     avoid: list[str] | None = None, names: list[str] | None = None) -> list[Finding]:
    """Forward-looking statements with a figure or a date, best first: MD&A first, guidance words, figures, a named
    future year. The subject is the company (we, the company, management, or its name in `names`). Risk factors,
    the safe-harbour notice (`avoid`) and statements about past years are never outlook."""
    forward = _FORWARD
    if names:
        alts = "|".join(re.escape(n) for n in names if n)
        forward = re.compile(f"{_FORWARD.pattern}|\\b({alts})\\s+(currently\\s+|also\\s+)?{_VERBS}\\b", re.I)
    risk = _section_ranges(doc, ("item_1a", "part2_item_1a"))
    mdna = _section_ranges(doc, ("item_7", "item_2"))
    rx_avoid = re.compile("|".join(f"(?:{p})" for p in avoid), re.I | re.S) if avoid else None
    scored = []
    for s in doc_sentences(doc):
        if not forward.search(s.text) or _inside(s, risk):
            continue
        text = squash(s.text)
        score = _outlook_score(text, latest_year)
        if score is not None and not (rx_avoid and rx_avoid.search(text)):
            scored.append((score + (2.0 if _inside(s, mdna) else 0.0), s))
    scored.sort(key=lambda t: (-t[0], t[1].start))
    out, seen = [], set()
    for _, s in scored:
        text = squash(s.text)
        key = " ".join(text.lower().split()[:8])
        if key in seen:
            continue
        seen.add(key)
        out.append(Finding(f"{text} [p.{s.page}]", "outlook", section, [],
                           [Citation(s.page, s.start, s.end, text)]))
        if len(out) >= int(cfg.get("outlook_max", 4)):
            break
    return out


def _outlook_score(text: str, latest_year: int | None) -> float | None:
    words = len(text.split())
    if not 8 <= words <= 80 or _PAST_FORWARD.search(text):
        return None
    years = [int(y) for y in _YEAR.findall(text)]
    future_year = bool(latest_year and any(y > latest_year for y in years))
    future = future_year or bool(_FUTURE.search(text))
    if not future or (years and latest_year and max(years) <= latest_year and not _FUTURE.search(text)):
        return None  # no date ahead: last year's narrative or a standing statement
    if not _FIGURE.search(text) and not future_year:
        return None
    if _CONDITIONAL.search(text) and not re.search(r"\b(outlook|guidance|expects?|anticipates?)\b", text, re.I):
        return None
    score = 1.0 + (1.0 if _FIGURE.search(text) else 0.0) + (1.0 if future_year else 0.0)
    score += 1.0 if re.search(r"\b(outlook|guidance)\b", text, re.I) else 0.0
    return score
