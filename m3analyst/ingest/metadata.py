"""Document kind sniffing and metadata (company, parties, authors, dates) from the text.

Kinds are scored by registered detectors over the opening of the document; the best score over
`MIN_SCORE` wins, else "other". Each kind also registers a metadata extractor.
"""

from __future__ import annotations

import re
from typing import Callable

from m3analyst.ingest.model import Document

HEAD_CHARS = 6000  # kind cues must appear within the opening of the document
MIN_SCORE = 2.0

_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?)"
DATE = rf"(?:{_MONTHS}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?{_MONTHS},?\s+\d{{4}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}})"


def _rx(s: str, flags=re.IGNORECASE | re.MULTILINE) -> re.Pattern:
    return re.compile(s, flags)


KindScorer = Callable[[str, str], float]  # (head text, full text) -> score
KIND_SCORERS: dict[str, KindScorer] = {}


def register_kind(kind: str):
    def deco(fn: KindScorer) -> KindScorer:
        KIND_SCORERS[kind] = fn
        return fn

    return deco


def _hits(text: str, *patterns: str) -> float:
    return float(sum(1 for p in patterns if re.search(p, text, re.IGNORECASE | re.MULTILINE)))


@register_kind("10-K")
def _score_10k(head: str, text: str) -> float:
    return 3 * _hits(head, r"form\s+10-?k\b") + _hits(head, r"annual\s+report\s+pursuant", r"for\s+the\s+fiscal\s+year\s+ended")


@register_kind("10-Q")
def _score_10q(head: str, text: str) -> float:
    return 3 * _hits(head, r"form\s+10-?q\b") + _hits(head, r"quarterly\s+report\s+pursuant", r"for\s+the\s+quarterly\s+period\s+ended")


@register_kind("8-K")
def _score_8k(head: str, text: str) -> float:
    return 3 * _hits(head, r"form\s+8-?k\b") + _hits(head, r"current\s+report\s+pursuant")


@register_kind("earnings")
def _score_earnings(head: str, text: str) -> float:
    return 1.5 * _hits(head, r"press\s+release|earnings\s+release", r"reports?\s+(?:fourth|third|second|first|full)[- ](?:quarter|year)")


@register_kind("contract")
def _score_contract(head: str, text: str) -> float:
    return (
        _hits(head, r"\bagreement\b", r"by\s+and\s+(?:between|among)", r"\bwhereas\b", r"now,?\s+therefore")
        + _hits(text, r"in\s+witness\s+whereof", r"governing\s+law")
        + 0.5 * _hits(head, r"\bthe\s+parties\b", r"hereby\s+agree|agree\s+as\s+follows|in\s+consideration\s+of", r"\bhereto\b|\bhereunder\b|\bhereinafter\b")
        + (1.0 if len(re.findall(r"\bshall\b", text[:50_000])) >= 10 else 0.0)
    )


@register_kind("paper")
def _score_paper(head: str, text: str) -> float:
    return (
        1.5 * _hits(head, r"^[ \t]*abstract\b|^[ \t]*summary[ \t]*$|^background\b")
        + 1.5 * _hits(head, r"^TITLE:\s*$|^(?:ABSTRACT|BODY)\.[A-Z]")
        + _hits(text, r"^BODY\.[A-Z]") + 0.5 * _hits(text, r"\bp\s*[<=]\s*0?\.\d", r"\brandomi[sz]ed\b")
        + _hits(head, r"\bdoi\b|doi\.org", r"\bkeywords?\b", r"(?:university|institute|department|hospital)\b")
        + _hits(text, r"^[ \t]*(?:\d\.?\s*)?references[ \t]*$|^[ \t]*bibliography[ \t]*$", r"^[ \t]*(?:\d\.?\s*)?(?:methods?|materials and methods)\b")
    )


def detect_kind(doc: Document) -> str:
    head = doc.text[:HEAD_CHARS]
    scores = {k: fn(head, doc.text) for k, fn in KIND_SCORERS.items()}
    best = max(scores, key=scores.get)
    return best if scores[best] >= MIN_SCORE else "other"


# ---- metadata extractors, by kind ------------------------------------------------------------
MetaExtractor = Callable[[Document], None]
META_EXTRACTORS: dict[str, MetaExtractor] = {}


def register_metadata(*kinds: str):
    def deco(fn: MetaExtractor) -> MetaExtractor:
        for k in kinds:
            META_EXTRACTORS[k] = fn
        return fn

    return deco


_COMPANY_WORDS = r"(?:inc\.?|incorporated|corporation|corp\.?|company|co\.|ltd\.?|limited|plc|llc|l\.p\.|n\.v\.|s\.a\.|ag|holdings?)"


@register_metadata("10-K", "10-Q", "8-K", "earnings")
def _filing_metadata(doc: Document) -> None:
    head = doc.text[:HEAD_CHARS]
    m = _rx(r"([^\n]{2,100})\n[^\n]*\(?exact\s+name\s+of\s+registrant").search(head)
    company = m.group(1).strip(" _\t") if m else None
    if company and (re.search(r"commission|file\s+n|^\W*$", company, re.IGNORECASE) or len(company) < 2):
        company = None
    if not company:
        m = _rx(rf"^[ \t]*([A-Z0-9][A-Za-z0-9&.,'’\- ]{{1,80}}\b{_COMPANY_WORDS})[ \t]*$", re.MULTILINE | re.IGNORECASE).search(head)
        company = m.group(1).strip() if m else None
    if not company:
        company = _most_named_company(doc.text[: 4 * HEAD_CHARS])
    if company:
        doc.metadata.company = " ".join(company.split())
    m = _rx(rf"for\s+the\s+(?:fiscal\s+year|quarterly\s+period|year)\s+ended\s*:?\s*({DATE})").search(head)
    if m:
        doc.metadata.dates["period_end"] = " ".join(m.group(1).split())
    m = _rx(rf"date\s+of\s+report[^\n]*?\)?\s*:?\s*({DATE})").search(head)
    if m:
        doc.metadata.dates["report"] = " ".join(m.group(1).split())
    doc.metadata.title = doc.metadata.title or f"{doc.metadata.company or 'Unknown registrant'} Form {doc.metadata.kind}"


_NAMED_COMPANY = re.compile(r"\b((?:The\s+)?(?:[A-Z][\w.&'’\-]*\s+){1,4}(?:Company|Inc\.|Corporation|Incorporated|plc|PLC|N\.V\.))")


def _most_named_company(text: str) -> str | None:
    """The company name written most often in `text` (fallback when the cover page has a logo)."""
    from collections import Counter

    counts = Counter(m.group(1) for m in _NAMED_COMPANY.finditer(text))
    return counts.most_common(1)[0][0] if counts else None


_AGREEMENT_TITLE = _rx(r"^[ \t]*(?:[A-Z][A-Za-z&\-,]*\s+){0,8}AGREEMENT\b[^\n]{0,60}$", re.MULTILINE)
_KIND = r"(?:Agreement|Contract|Licen[cs]e|Lease|Amendment|Addendum|Plan|Memorandum|Arrangement|Terms and Conditions|Statement of Work|Deed)"
_NAME_LINE = re.compile(rf"^[A-Z0-9][\w&,.’'()/\-\s]{{0,100}}?\b{_KIND}\b(?:[A-Za-z,\s]{{0,40}})$", re.IGNORECASE)
_NAME_IN_TEXT = re.compile(rf"\b(?:This|THIS)\s+((?:[A-Z][\w&’'\-]*\s+){{0,8}}(?i:{_KIND}))\b")


def contract_name(text: str, head_chars: int = 3000) -> tuple[int, int] | None:
    """Where the contract's name is in `text` ([start, end) offsets): the first heading-like line of its
    opening that names a kind of agreement ("CONSULTING AGREEMENT", "Joint Venture Agreement"; all capitals
    or title case, not an "Exhibit" line), else the "This ... Agreement" of its first sentences."""
    head_end = min(len(text), head_chars)
    for m in re.finditer(r"[^\n]+", text[:head_end]):
        line = m.group(0).strip()
        words = [w for w in re.findall(r"[A-Za-z]+", line) if len(w) > 3]
        titled = words and (line.isupper() or all(w[0].isupper() for w in words))
        if 5 <= len(line) <= 120 and titled and not line.lower().startswith("exhibit") and _NAME_LINE.match(line):
            start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            return start, start + len(line)
    m = _NAME_IN_TEXT.search(text, 0, head_end)
    return (m.start(1), m.end(1)) if m else None
_BETWEEN = _rx(r"\b(?:by\s+and\s+(?:between|among)|between|among)\s*:?\s*(?:,?\s*on\s+the\s+one\s+hand\s*,?\s*)?")
_PARTY_END = re.compile(
    rf"\s*(?:,|\(|“|\"|;|\s+and\s+|\s+a\s+[A-Z]|\s+an\s+[A-Z]|\s+dated\b|\s+effective\b|\s+date\b|\s+table\s+of\b|\s+{_MONTHS}\s+\d|$)",
    re.IGNORECASE,
)
_PARTY = re.compile(r"[A-Za-z0-9][^,;()“”\"\n]{1,100}")
MAX_PARTY_CHARS = 80


def _party_at(s: str) -> str | None:
    m = _PARTY.match(s)
    if not m:
        return None
    cut = _PARTY_END.search(s, 1)
    name = s[: cut.start()] if cut and cut.start() < m.end() + 1 else m.group(0)
    name = name.strip(" .:")[:MAX_PARTY_CHARS]
    return name if len(name) >= 3 and not name.lower().startswith(("the parties", "each of")) else None


_PARTY_LABEL = re.compile(r"\bParty\s+[A-D](?:\s*\([^)]{1,40}\))?\s*:\s*([A-Z][^:;]{2,100}?)"
                          r"(?=\s+(?:Address|Legal Representative|Registered|Domicile|Contact|Tel)\b|\s*;|$)")


def find_parties(head: str) -> list[str]:
    """The parties named after 'by and between' / 'between' in the opening text, or in its
    "Party A (Shipper): NAME Address: ..." lines."""
    flat = " ".join(head.split())
    labelled = [m.group(1).strip(" ,.") for m in _PARTY_LABEL.finditer(flat)]
    if len(labelled) >= 2:
        return list(dict.fromkeys(labelled))[:6]
    for m in _BETWEEN.finditer(flat):
        rest = flat[m.end() : m.end() + 600]
        if rest.startswith("(a)"):  # "by and among (a) Skype ..., (b) Skype Technologies ..., and (e) Tel-Online ..."
            listed = [_party_at(seg) for seg in re.split(r"\([a-h]\)\s+", flat[m.end() : m.end() + 2500])[1:7]]
            if any(listed):
                return [p for p in listed if p]
        first = _party_at(rest)
        if not first:
            continue
        # the second party: after the first party's defined term ('(“Ehave”); - and - COMPANION ...'), else after 'and'
        defined = re.search(r"[)”\"]\s*[;,]?\s*-?\s*\band\b\s*-?\s*:?\s*(?:,?\s*on\s+the\s+other\s+hand\s*,?\s*)?(?=[A-Z0-9])", rest[len(first) :], re.IGNORECASE)
        if defined:
            second = _party_at(rest[len(first) + defined.end() :])
            if second:
                return [first, second]
        for a in re.finditer(r"(?:^|[\s,;)”\"])and\s*,?\s+(?:on\s+the\s+other\s+hand\s*,?\s*)?", rest[len(first) :], re.IGNORECASE):
            second = _party_at(rest[len(first) + a.end() :])
            if second:
                return [first, second]
        return [first]
    return []


@register_metadata("contract")
def _contract_metadata(doc: Document) -> None:
    head = doc.text[:HEAD_CHARS]
    name = contract_name(head)
    m = None if name else _AGREEMENT_TITLE.search(head) or _rx(r"^[^\n]*\bagreement\b[^\n]{0,60}$").search(head)
    if name or m:
        doc.metadata.title = " ".join((head[name[0] : name[1]] if name else m.group(0)).split())[:160]
    doc.metadata.parties = find_parties(head)
    for key, pat in (
        ("effective", rf"effective\s+(?:as\s+of\s+)?(?:the\s+)?(?:date\s+)?[:]?\s*({DATE})"),
        ("dated", rf"(?:dated|made\s+(?:and\s+entered\s+into\s+)?(?:as\s+of|on|this))\s+(?:the\s+)?({DATE})"),
    ):
        m = _rx(pat).search(head)
        if m:
            doc.metadata.dates[key] = " ".join(m.group(1).split())
    if "dated" not in doc.metadata.dates:
        m = _rx(DATE).search(head)
        if m:
            doc.metadata.dates["first_date"] = " ".join(m.group(0).split())


_AUTHOR_LINE = _rx(r"^(?:[A-Z][a-zA-Z'’\-]+\.?[ \t]+(?:[A-Z][a-zA-Z'’\-]*\.?[ \t]*){1,3}[\d,*†‡§¶]*(?:,[ \t]*|[ \t]+and[ \t]+|[ \t]*&[ \t]*|$)){2,}", re.MULTILINE)


@register_metadata("paper")
def _paper_metadata(doc: Document) -> None:
    info = doc.metadata.extra.get("pdf_info", {})
    title = (info.get("Title") or "").strip()
    first = doc.page_text(1) if doc.pages else ""
    m = re.match(r"\s*TITLE:\s*\n?\s*([^\n]+)", first)
    if m and not title:
        title = m.group(1).strip()
    if len(title) < 15 or title.lower().endswith((".pdf", ".doc", ".docx")):
        title = _guess_paper_title(first)
    doc.metadata.title = title or None
    authors = (info.get("Author") or "").strip()
    names = [a.strip() for a in re.split(r";|,|\band\b", authors) if len(a.strip()) > 3] if authors else []
    if not names and title:
        names = authors_after_title(first, title)
    if not names:
        m = _AUTHOR_LINE.search(first[:3000])
        if m:
            names = [re.sub(r"[\d,*†‡§¶]+$", "", a).strip() for a in re.split(r",|\band\b|&", m.group(0))]
            names = [n for n in names if not re.search(r"\b(?:care|sciences?|department|university|institute|health)\b", n, re.I)]
            names = [n for n in names if len(n.split()) >= 2]
    doc.metadata.authors = names[:30]
    m = _rx(rf"(?:published|accepted|received)[:\s]+(?:online\s+)?[:\s]*({DATE})").search(first)
    if m:
        doc.metadata.dates["published"] = " ".join(m.group(1).split())


_AUTHOR_STOP = _rx(
    r"^\s*(?:abstract|summary|background|a b s t r a c t|keywords?|correspond|received|article|doi|open access|to cite)\b"
    r"|university|universidad|universidade|department|institute|hospital|school of|faculty|centre|center|programa|@|http"
)
_DEGREES = re.compile(r"\b(?:PhD|MD|MSc|BSc|MPH|MA|BA|RN|FRCGP|FRCP|DPhil|MBBS|MB|ChB|Prof|Dr)\b\.?")
_NAME = re.compile(r"^(?:[A-Z][\w'’\-.]*|de|da|van|von|der|del|dos|le|la)(?:\s+(?:[A-Z][\w'’\-.]*|de|da|van|von|der|del|dos|le|la)){1,5}$")


def authors_after_title(first_page: str, title: str) -> list[str]:
    """Author names from the lines between the title and the abstract/affiliations of page 1.

    Superscript affiliation marks ("Lhakhang1", "Seretny a,⇑", "GonçalvesI"), degrees and "and"/"&" are removed.
    """
    words = title.split()
    hit = re.search(r"\s+".join(map(re.escape, words[-3:])), first_page) if len(words) >= 3 else None
    if not hit:
        return []
    block = []
    for ln in first_page[hit.end() :].split("\n")[1:14]:
        if _AUTHOR_STOP.search(ln) or (re.match(r"^\s*(?:\d|[a-z]\s|[IVX]+\s)", ln) and len(ln) > 40):
            break
        block.append(ln.strip())
    return _names_in(" ".join(block), strict=False)


def _names_in(line: str, strict: bool = True) -> list[str]:
    """Person names in an author line ('Marta Seretny a,⇑', 'Lucy Yardley1, PhD; ...'); strict: every part is a name."""
    text = _DEGREES.sub("", line)
    text = re.sub(r"(?<=[a-zà-ÿ])(?:[IVX]+|\d+(?:,\d+)*)(?=[\s,*†‡§¶⇑]|$)", "", text)  # superscript marks
    text = re.sub(r"[*†‡§¶⇑]|\b[a-z]\b(?=\s*[,⇑]|\s*$)", " ", text)
    parts = [" ".join(p.split()).strip(" .") for p in re.split(r",|;|\band\b|&", text)]
    parts = [p for p in parts if p]
    names = [p for p in parts if _NAME.match(p) and len(p) <= 60]
    if strict and (not names or len(names) != len(parts) or not re.search(r"[\d*†‡§¶⇑,]|\b[a-z]\b|(?<=[a-zà-ÿ])[IVX]+\b", line)):
        return []  # a title line is not a name line: it has lowercase words and no affiliation marks
    return names


def _guess_paper_title(first_page: str) -> str:
    """The first run of 1-3 substantial lines that is not journal furniture (volume, doi, url, licence)."""
    skip = _rx(
        r"doi|http|www\.|\bvolume\s+\d|vol\.|issn|journal|open access|research article|copyright|©|received|page|^\s*\d+\s*$"
        r"|^articles?$|^original|terms\s*&\s*conditions|download|to cite|\d;\d|review$"
    )
    lines = [ln.strip() for ln in first_page.split("\n")[:40]]
    for i, ln in enumerate(lines):
        if len(ln) >= 25 and len(ln.split()) >= 4 and not skip.search(ln) and not _AUTHOR_LINE.match(ln):
            parts = [ln]
            for nxt in lines[i + 1 : i + 6]:
                if len(nxt) >= 3 and not skip.search(nxt) and not _AUTHOR_LINE.match(nxt) and not nxt.endswith(".") and not _names_in(nxt):
                    parts.append(nxt)
                else:
                    break
            return " ".join(parts)[:250]
    return ""


def extract_metadata(doc: Document) -> None:
    fn = META_EXTRACTORS.get(doc.metadata.kind)
    if fn:
        fn(doc)
