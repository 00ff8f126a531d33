"""Contract outline: title, preamble (parties/date), recitals, ARTICLEs, numbered sections and
(a)-clauses, signature block, exhibits/schedules.

Heading candidates are whole lines; the table of contents is skipped (the region from a
"Table of Contents" line while pages are mostly heading-like lines, plus any line ending in a
page number), and so is a line that continues a sentence wrapped from the line above ("... under\n
Article 11."). Text that lost its line breaks (CUAD .txt dumps) is read as "virtual lines" split at runs of 3+
spaces, with an inline upper-case "... AGREEMENT" title and the 1., 2., 3. ... chain of inline sections as fallbacks.
The signature block is "IN WITNESS WHEREOF" / "[Signature page]", else the first By:/Name:/Title: block in
the second half. Sections end where the next heading of the same or a higher level starts.
Kinds: "title", "preamble", "recitals", "article", "section", "clause", "signature", "exhibit".
"""

from __future__ import annotations

import re

from m3analyst.ingest.model import Document, Section

EXPECTED = ["title", "preamble", "article|section", "signature"]

_ROMAN = r"[IVXLC]{1,7}"
_ARTICLE = re.compile(rf"^\s*(?:ARTICLE|Article)\s+(?P<num>{_ROMAN}|\d{{1,2}})\b[.:\-–—]?\s*(?P<title>[^\n]{{0,120}})$")
_SECTION = re.compile(
    r"^\s*(?:(?:SECTION|Section)\s+)?(?P<num>\d{1,2}(?:\.\d{1,2}){0,3})(?:\.|\s)\s*(?P<title>[A-Z“\"][^\n]{0,200})$"
)
_CLAUSE = re.compile(r"^\s*\((?P<num>[a-z]{1,3}|[ivx]{1,5})\)\s+(?P<title>\S[^\n]{0,200})$")
_TITLE = re.compile(r"^\s*(?:[A-Z][A-Za-z&\-,’']*\s+){0,8}(?:AGREEMENT|Agreement|CONTRACT|LEASE|AMENDMENT|MEMORANDUM OF UNDERSTANDING)\b[^\n]{0,60}$")
_INLINE_TITLE = re.compile(r"(?:^|\s)((?:[A-Z][A-Z&\-,'’.0-9]*\s+){0,10}(?:AGREEMENT|CONTRACT|AMENDMENT)(?:\s+(?:NO\.\s*\d+|TO|OF)\b[^a-z\n]{0,80})?)(?=\s|$)")
_PREAMBLE = re.compile(r"(?im)^[^\n]{0,80}\b(?:this\s+[^\n]{0,80}agreement|agreement\s+is\s+made|by\s+and\s+between|entered\s+into)")
_RECITALS = re.compile(r"(?m)^[ \t]*(?:RECITALS|Recitals|BACKGROUND|W\s?I\s?T\s?N\s?E\s?S\s?S\s?E\s?T\s?H)\b[^\n]{0,40}$|^[ \t]*WHEREAS\b")
_SIGNATURE = re.compile(r"(?:^|(?<=\s))(?:IN\s+WITNESS\b|[Ii]n\s+[Ww]itness\s+[Ww]hereof|\[\s*Signature\s+[Pp]age)|^[ \t]*Signature\s+[Pp]age", re.MULTILINE)
_BY_NAME = re.compile(r"\bBy\s*:[^\n]{0,120}(?:\n[^\n]{0,120}){0,3}?\b(?:Name|Title|Its)\s*:")
_MONTH_START = re.compile(r"^(?:January|February|March|April|May|June|July|August|September|October|November|December)\b")
MAX_TOP_JUMP = 5  # a top-level number further ahead than this is a stray line ("30 December 2016")
_EXHIBIT = re.compile(
    r"(?m)^[ \t]*(?P<word>EXHIBIT|Exhibit|SCHEDULE|Schedule|ANNEX|Annex|APPENDIX|Appendix|ATTACHMENT|Attachment)\s+(?P<num>[A-Z0-9][\w.\-]{0,6})\b[^\n]{0,100}$"
)
_TOC_TAIL = re.compile(r"(?:\.{2,}|\s)\s*\d{1,3}\s*$")
_TOC_HEAD = re.compile(r"(?im)^[ \t]*(?:table\s+of\s+contents|contents|index)[ \t]*$")


def _heading_title(raw: str, limit: int = 120) -> str:
    """'1. Consulting Services. REIT hereby ...' -> '1. Consulting Services.'"""
    s = " ".join(raw.split())
    m = re.match(r"^(.{3,}?[.:])\s+[A-Z(“\"]", s)
    return (m.group(1) if m and len(m.group(1)) <= limit else s[:limit]).strip()


def _toc_ranges(doc: Document) -> list[tuple[int, int]]:
    """[start, end) offsets of table-of-contents regions."""
    out = []
    for m in _TOC_HEAD.finditer(doc.text, 0, min(len(doc.text), 60_000)):
        page = doc.page_at(m.start())
        end = doc.pages[page - 1].end
        for n in range(page + 1, doc.n_pages + 1):
            lines = [ln for ln in doc.page_text(n).split("\n") if ln.strip()]
            heads = sum(1 for ln in lines if _ARTICLE.match(ln) or _SECTION.match(ln) or _TOC_TAIL.search(ln))
            if not lines or heads < 0.5 * len(lines):
                break
            end = doc.pages[n - 1].end
        out.append((m.start(), end))
    return out


def _in(ranges: list[tuple[int, int]], pos: int) -> bool:
    return any(a <= pos < b for a, b in ranges)


_VIRTUAL_BREAK = re.compile(r"\n|[ \t]{3,}")


def _line_iter(text: str):
    """(offset, line) pairs; runs of 3+ spaces also end a line (text dumps that lost their line breaks)."""
    pos = 0
    for m in _VIRTUAL_BREAK.finditer(text):
        yield pos, text[pos : m.start()]
        pos = m.end()
    yield pos, text[pos:]


def _mk(doc: Document, title: str, kind: str, level: int, start: int, number: str | None = None) -> Section:
    return Section(title, kind, level, start, start, doc.page_at(start), doc.page_at(start), number)


def close_spans(doc: Document, sections: list[Section]) -> list[Section]:
    """Sort by start; each section ends where the next one of the same or a higher level starts."""
    sections.sort(key=lambda s: (s.start, s.level))
    for i, s in enumerate(sections):
        end = len(doc.text)
        for nxt in sections[i + 1 :]:
            if nxt.level <= s.level and nxt.start > s.start:
                end = nxt.start
                break
        end = len(doc.text[:end].rstrip())
        s.end = max(end, s.start + len(s.title))
        s.page_end = doc.page_at(max(s.end - 1, s.start))
    return sections


def detect_contract_sections(doc: Document) -> list[Section]:
    text = doc.text
    toc = _toc_ranges(doc)
    out: list[Section] = []
    head = text[:8000]
    m = next(((p, ln) for p, ln in _line_iter(head) if _TITLE.match(ln) and not _in(toc, p)), None)
    if m is None:  # text that lost its line breaks: an upper-case "... AGREEMENT" run near the top
        inline = _INLINE_TITLE.search(head, 0, 2500)
        if inline:
            m = (inline.start(1), inline.group(1))
    if m:
        out.append(_mk(doc, " ".join(m[1].split()), "title", 1, m[0] + len(m[1]) - len(m[1].lstrip())))
    pre_limit = min(len(text), max(20_000, len(text) // 4))
    pre = _PREAMBLE.search(text, m[0] if m else 0, pre_limit)
    while pre and _in(toc, pre.start()):
        pre = _PREAMBLE.search(text, pre.end(), pre_limit)
    if pre:
        out.append(_mk(doc, _heading_title(text[pre.start() : pre.start() + 200], 80), "preamble", 1, pre.start()))
    rec = _RECITALS.search(text, pre.start() if pre else 0, min(len(text), 60_000))
    if rec and not _in(toc, rec.start()):
        out.append(_mk(doc, _heading_title(rec.group(0), 60), "recitals", 1, rec.start()))
    sig_start, sig_title = _signature(text, toc)
    body_end = sig_start if sig_start is not None else len(text)
    has_articles = False
    last_top = 0
    prev = ""
    for pos, line in _line_iter(text):
        wrapped = pos > 0 and text[pos - 1] == "\n" and _continues_sentence(prev)
        if line.strip():
            prev = line
        if pos >= body_end or _in(toc, pos) or _TOC_TAIL.search(line) and len(line) < 100 or wrapped:
            continue
        a = _ARTICLE.match(line)
        if a:
            has_articles = True
            title = " ".join(line.split())
            out.append(_mk(doc, title[:120], "article", 1, pos + len(line) - len(line.lstrip()), a.group("num")))
            continue
        s = _SECTION.match(line)
        if s and not re.match(r"^\s*\d{1,2}\.\d{1,2}\s*%", line) and not _MONTH_START.match(s.group("title")):
            num = s.group("num")
            depth = num.count(".") + 1
            top = int(num.split(".")[0])
            if top > last_top + MAX_TOP_JUMP:
                continue
            last_top = top
            out.append(_mk(doc, _heading_title(line), "section", depth, pos + len(line) - len(line.lstrip()), num))
            continue
        c = _CLAUSE.match(line)
        if c:
            out.append(_mk(doc, _heading_title(line, 60), "clause", 4, pos + len(line) - len(line.lstrip()), f"({c.group('num')})"))
    if sum(1 for x in out if x.kind in ("article", "section")) < 3:
        out += _inline_sections(doc, pre.end() if pre else 0, body_end)
    if has_articles:  # numbered sections sit under their ARTICLE
        for s in out:
            if s.kind == "section":
                s.level += 1
    if sig_start is not None:
        out.append(_mk(doc, sig_title, "signature", 1, sig_start))
        for e in _EXHIBIT.finditer(text, sig_start + len(sig_title)):
            out.append(_mk(doc, " ".join(e.group(0).split())[:100], "exhibit", 1, e.start() + len(e.group(0)) - len(e.group(0).lstrip()), e.group("num")))
    return close_spans(doc, _dedupe(out))


_INLINE = re.compile(r"(?:(?<=[.:;)]\s)|(?<=\s\s))(?:(?:Section|SECTION)\s+)?(?P<num>\d{1,2})\.(?:\d{1,2}\.?)?\s+(?=[A-Z“\"])")


def _inline_sections(doc: Document, lo: int, hi: int) -> list[Section]:
    """Numbered sections in text that lost its line breaks: the chain 1., 2., 3., ... found in order."""
    out, expected = [], 1
    for m in _INLINE.finditer(doc.text, lo, hi):
        if int(m.group("num")) == expected:
            out.append(_mk(doc, _heading_title(doc.text[m.start() : m.start() + 160], 80), "section", 1, m.start(), m.group("num")))
            expected += 1
    return out if len(out) >= 3 else []


def _continues_sentence(prev: str) -> bool:
    """A long previous line ending mid-sentence ("... obligations under") makes this line its continuation."""
    p = prev.rstrip()
    return len(p) > 60 and bool(re.search(r"[a-z,]$", p))


def _signature(text: str, toc: list[tuple[int, int]]) -> tuple[int | None, str]:
    """Start and title of the signature block: 'IN WITNESS WHEREOF…', else the first 'By:/Name:' block in the second half."""
    sig = next((s for s in _SIGNATURE.finditer(text) if not _in(toc, s.start())), None)
    if sig:
        return sig.start() + len(sig.group(0)) - len(sig.group(0).lstrip()), " ".join(sig.group(0).split())
    by = _BY_NAME.search(text, len(text) // 2)
    if by:
        line_start = text.rfind("\n", 0, by.start()) + 1
        return line_start, "Signature block"
    return None, ""


def _dedupe(sections: list[Section]) -> list[Section]:
    seen, out = set(), []
    for s in sections:
        key = (s.start, s.kind)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
