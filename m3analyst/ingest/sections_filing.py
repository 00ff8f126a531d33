"""10-K / 10-Q Item headings: the real ones, not the table-of-contents lines.

A candidate is a line that starts with "Item N[A-C]" followed by that Item's canonical title
(compared with spaces removed, so pdfium's "Busines s." still matches) or by nothing (title on
the next line). Rejected: lines ending in a page number (TOC rows), candidates on a TOC page
(three or more TOC rows), and cross references in prose. Among the survivors, the Items are
taken in form order: each accepted Item must come after the previous one, so a stray early
mention cannot shift the outline.

Section kinds: "item_1", "item_1a", ... for 10-K and Part I of a 10-Q; "part2_item_1a", ... for
Part II of a 10-Q (its Items restart at 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.ingest.model import Document, Section

TEN_K_ITEMS: list[tuple[str, str]] = [
    ("1", "Business"),
    ("1A", "Risk Factors"),
    ("1B", "Unresolved Staff Comments"),
    ("1C", "Cybersecurity"),
    ("2", "Properties"),
    ("3", "Legal Proceedings"),
    ("4", "Mine Safety Disclosures|Submission of Matters|Reserved|\\[Reserved\\]|Removed"),
    ("5", "Market for"),
    ("6", "Selected|\\[Reserved\\]|Reserved"),
    ("7", "Management"),
    ("7A", "Quantitative and Qualitative"),
    ("8", "Financial Statements"),
    ("9", "Changes in and Disagreements"),
    ("9A", "Controls and Procedures"),
    ("9B", "Other Information"),
    ("9C", "Disclosure Regarding Foreign"),
    ("10", "Directors"),
    ("11", "Executive Compensation"),
    ("12", "Security Ownership"),
    ("13", "Certain Relationships"),
    ("14", "Principal Account"),
    ("15", "Exhibits|Exhibit and"),
    ("16", "Form 10-K Summary|Summary"),
]
TEN_Q_ITEMS: list[tuple[str, str]] = [
    ("1", "Financial Statements"),
    ("2", "Management"),
    ("3", "Quantitative and Qualitative"),
    ("4", "Controls and Procedures"),
    ("II.1", "Legal Proceedings"),
    ("II.1A", "Risk Factors"),
    ("II.2", "Unregistered Sales"),
    ("II.3", "Defaults"),
    ("II.4", "Mine Safety|Removed|Submission"),
    ("II.5", "Other Information"),
    ("II.6", "Exhibits"),
]
EXPECTED = {
    "10-K": ["item_1", "item_1a", "item_2", "item_3", "item_5", "item_7", "item_7a", "item_8", "item_9a"],
    "10-Q": ["item_1", "item_2", "item_4", "part2_item_1", "part2_item_6"],
}

_CANDIDATE = re.compile(r"^\s*item\s*(?P<num>\d{1,2}\s?[A-Ca-c]?)\b(?P<sep>[\s.:\-–—,]*)(?P<title>.*)$", re.IGNORECASE)
_TOC_TAIL = re.compile(r"(?:\.{2,}|\s)\s*\d{1,3}\s*$")
_SQUASH = re.compile(r"[^a-z0-9\[\]]")


def _squash(s: str) -> str:
    return _SQUASH.sub("", s.lower())


@dataclass
class _Cand:
    num: str  # "7A"
    start: int  # offset into doc.text
    line: str
    title: str
    toc: bool


def _title_matches(title_pattern: str, text: str) -> bool:
    squashed = _squash(text)
    return any(squashed.startswith(_squash(alt)) for alt in title_pattern.split("|"))


def _candidates(doc: Document) -> list[_Cand]:
    out: list[_Cand] = []
    pos = 0
    lines = doc.text.split("\n")
    for i, line in enumerate(lines):
        m = _CANDIDATE.match(line)
        if m and len(line) < 220 and "," not in m.group("sep") and not m.group("title").startswith(('"', "“", "'")):
            num = m.group("num").replace(" ", "").upper()
            title = m.group("title").strip()
            if not title and i + 1 < len(lines):
                title = lines[i + 1].strip()
            out.append(_Cand(num, pos + (len(line) - len(line.lstrip())), line.strip(), title, bool(_TOC_TAIL.search(line))))
        pos += len(line) + 1
    _mark_toc_pages(doc, out)
    return out


def _mark_toc_pages(doc: Document, cands: list[_Cand]) -> None:
    per_page: dict[int, list[_Cand]] = {}
    for c in cands:
        per_page.setdefault(doc.page_at(c.start), []).append(c)
    for group in per_page.values():
        if sum(c.toc for c in group) >= 3:
            for c in group:
                c.toc = True


def _pick(cands: list[_Cand], items: list[tuple[str, str]], part2_after: int | None) -> list[tuple[str, _Cand]]:
    """Walk candidates in text order, accepting each Item at most once and in form order."""
    order = {num: i for i, (num, _) in enumerate(items)}
    titles = dict(items)
    chosen: list[tuple[str, _Cand]] = []
    last = -1
    for c in cands:
        if c.toc:
            continue
        num = c.num
        if part2_after is not None and c.start >= part2_after:
            num = f"II.{num}"
        idx = order.get(num)
        if idx is None or idx <= last or not _title_matches(titles[num], c.title):
            continue
        chosen.append((num, c))
        last = idx
    return chosen


def _part2_start(doc: Document, cands: list[_Cand]) -> int | None:
    """Offset of the 10-Q's 'PART II' heading (after the TOC), or None."""
    first_item = next((c.start for c in cands if not c.toc), 0)
    for m in re.finditer(r"(?im)^[ \t]*part\s+ii\b(?!i)[^\n]{0,60}$", doc.text):
        if m.start() > first_item and not _TOC_TAIL.search(m.group(0)):
            return m.start()
    return None


def _kind(num: str) -> str:
    return ("part2_item_" + num[3:].lower()) if num.startswith("II.") else f"item_{num.lower()}"


def detect_filing_sections(doc: Document) -> list[Section]:
    """Item sections of a 10-K / 10-Q, each spanning to the next Item (the last to the end)."""
    from m3analyst.ingest.statements import rejoin_split_words

    cands = _candidates(doc)
    if doc.metadata.kind == "10-Q":
        picked = _pick(cands, TEN_Q_ITEMS, _part2_start(doc, cands))
    else:
        picked = _pick(cands, TEN_K_ITEMS, None)
    sections = []
    for i, (num, c) in enumerate(picked):
        end = picked[i + 1][1].start if i + 1 < len(picked) else len(doc.text)
        end = len(doc.text[:end].rstrip())
        title = rejoin_split_words(" ".join(c.line.split()))[:160]
        sections.append(
            Section(title, _kind(num), 1, c.start, end, doc.page_at(c.start), doc.page_at(max(end - 1, c.start)), num.replace("II.", ""))
        )
    return sections
