"""Legal extractor: CUAD-style clause facts, each with its clause text and page.

Candidate clauses are paragraphs (numbered clauses split paragraphs); a fact's clause is the
paragraph matching the most of its spec patterns (domains/legal/spec.yaml), earliest first on ties.
Values read out of the clause depend on the spec's `value`: parties, date, law, duration or text (the
clause's sentence that states it); the fact's source text is the whole clause.
"""

from __future__ import annotations

import re
from string import capwords

from m3analyst.text import DATE, DURATION_TEXT, add, parse_date, parse_duration, written
from m3analyst.domains.facts import Fact
from m3analyst.domains.legal.clauses import ClauseIndex, has_rules, is_instruction
from m3analyst.domains.patterns import compile_any
from m3analyst.domains.plugins import register_extractor
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.text import Span, paragraphs, sentences_of, squash
from m3analyst.ingest.metadata import contract_name
from m3analyst.ingest.model import Document

# "the laws of the State of New York", "LAWS OF THE PEOPLE'S REPUBLIC OF CHINA": the words around the name in any case,
# the name itself capitalised
_LAW = re.compile(
    r"(?i:laws?(?:\s*,[^,.;]{0,60},)?\s+(?:in\s+force\s+in|of)\s+(?:the\s+)?)((?i:State|Commonwealth|Province|Republic|Kingdom|People['’]s\s+Republic|Federal\s+Republic)"
    r"\s+(?i:of)\s+)?([A-Z][A-Za-z.]+(?:\s+(?:[A-Z][A-Za-z.]+|(?i:and\s+wales))){0,3})"
)
_DURATION = re.compile(
    r"\b((?:[a-z]+(?:-[a-z]+)?\s+)?\(\d+\)\s+(?:calendar\s+|business\s+)?(?:years?|months?|days?)"
    r"|\d+\s+(?:calendar\s+|business\s+)?(?:years?|months?|days?)"
    r"|(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|thirty|sixty|ninety)\s+(?:calendar\s+)?(?:years?|months?|days?))\b",
    re.IGNORECASE,
)
_BETWEEN = re.compile(r"\b(?:(?:by\s+and\s+)?(?:between|among)|entered\s+into\s+by(?!\s+and\b))\s*:?\s+(?:on\s+the\s+one\s+hand,?\s+)?(.{5,600}?)(?:(?<!\bInc)(?<!\bCorp)(?<!\bLtd)(?<!\bCo)(?<!\bN\.A)(?<!\bL\.P)(?<!\bB\.V)(?<!\bN\.V)(?<!\bS\.A)(?<!\bLLC)(?<!\b[A-Z])(?<!\bSte)(?<!\bAve)(?<!\bSt)(?<!\bNo)(?<!\bRd)(?<!\bBlvd)(?<!\bFl)\.\s(?!\s*\d)|\n\s*\n|WHEREAS|RECITALS|W I T N E S S)", re.IGNORECASE | re.DOTALL)


def _score(span: Span, rx_list: list[re.Pattern]) -> int:
    text = squash(span.text)
    return sum(1 for rx in rx_list if rx.search(text))


def _is_clause(span: Span, min_words: int = 8) -> bool:
    """Clause text, not a heading alone or a table of contents (most lines ending in a page number)."""
    lines = [ln for ln in span.text.splitlines() if ln.strip()]
    toc = len(lines) >= 3 and sum(bool(re.search(r"(?:\.{3,}|\s)\d{1,3}\s*$", ln)) for ln in lines) >= 0.5 * len(lines)
    return span.words >= min_words and not toc


def best_clause(paras: list[Span], fs: FactSpec, exclude_first: int = 0,
                squashed: list[str] | None = None) -> Span | None:
    """The clause paragraph matching the most distinct patterns of `fs` (earliest on ties); none matching its
    `avoid` patterns, and none holding an instruction to the reader (text injected into the contract)."""
    rxs = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in fs.patterns]
    if not rxs:
        return None
    avoid = compile_any(fs.avoid)
    texts = squashed if squashed is not None else [squash(p.text) for p in paras]
    best, best_score = None, 0
    for p, text in list(zip(paras, texts))[exclude_first:]:
        if (avoid is not None and avoid.search(text)) or not _is_clause(p) or is_instruction(text):
            continue
        s = sum(1 for rx in rxs if rx.search(text))
        if s > best_score:
            best, best_score = p, s
    return best


def parties(doc: Document) -> tuple[list[str], Span | None]:
    """Names from the preamble 'between A ("A") and B ("B")' (or 'entered into by A ... and B ...'), with the
    span they came from; else the names the opening defines ('Blue Hills Bancorp, Inc. (the "Holding Company")')."""
    head_end = min(len(doc.text), 4000)
    m = _BETWEEN.search(doc.text, 0, head_end)
    if not m:
        return _defined_parties(doc, head_end)
    names, span = _between_names(doc, m)
    roles = any(re.search(rf"[\"“]{re.escape(n)}[\"”]", doc.text[:head_end]) for n in names)
    if len(names) < 2 or roles:  # 'between the Joint Venturers as follows', 'between Consultant and Company': not names
        defined = _defined_parties(doc, head_end)
        if len(defined[0]) > len(names) or (roles and len(defined[0]) >= 2):
            return defined
    return names, span


def _between_names(doc: Document, m: re.Match) -> tuple[list[str], Span]:
    end = m.end(1)
    # "Between\n\nA\n\nand\n\nB": the names stand on lines of their own; the one after "and" belongs to the list
    more = re.match(r"\s*(?:(?i:and|&)\s*\n\s*)?(?:\n\s*)?(?i:and|&)?\s*\n*\s*([A-Z][^\n(]{2,100})", doc.text[end : end + 300])
    chunk = squash(m.group(1))
    ends_and = re.search(r"(?i)(?:\band|&)\s*$", chunk)
    if more and (ends_and or re.match(r"(?i)\s*\n\s*(?:and|&)\s*\n", doc.text[end : end + 40])):
        chunk = f"{chunk[: ends_and.start()] if ends_and else chunk} and {more.group(1)}"
        end += more.end(1)
    chunk = re.sub(r"\([^)]*\)|“[^”]*”|\"[^\"]*\"", " ", chunk)  # definitions: ("Company"), “Supplier”
    names = []
    for part in re.split(r"\s*;\s*|\s+(?:and|AND|And)\s+(?=[A-Z]|[a-z]+[A-Z])|,\s+and\s+", chunk):
        name = _NAME_END.split(re.sub(r"^[\s\-–—]*(?i:and|&)?[\s\-–—]+", "", part))[0]
        name = re.sub(r"^[a-z][a-z\s]{2,40},\s+(?=[A-Z])", "", name.strip(" ,.:"))  # "professional golfer, TOM WATSON"
        name = re.sub(r"\s+", " ", name).strip(" ,.:")
        name = _FORM_END.sub(r"\1", name)  # "NLS-1 Pharma AG Alter Postplatz 2": the name ends at its legal form
        if 2 < len(name) < 120 and re.match(r"[A-Z0-9]|[a-z]{1,2}[A-Z]", name) and not re.match(r"(?:The|This|Each|Such|Its|Their)\s+[a-z]", name):
            names.append(name)
    start = m.start(1)
    return names[:6], Span(start, end, doc.page_at(start), doc.text[start:end])


# where a party's name ends: its description, address or role ("..., a Delaware corporation", ", with offices at")
_NAME_END = re.compile(r",\s+(?:a|an)\s+|,?\s+(?:having|with\s+(?:offices|an?\s+(?:(?:principal\s+)?place|office|address)|its)|whose|located|organi[sz]ed|"
                       r"incorporated|hereinafter|c/o)\b|,?\s+\d{2,}\s|\s+(?:a|an)\s+(?:[A-Z][a-z]+\s+)?(?i:corporation|company|limited)\b|\s+of\s+_{3,}")


# 'Blue Hills Bancorp, Inc. (the "Holding Company")', 'Alan Crane, an individual ("Consultant")': a name, an
# optional ", a Delaware corporation" description, then the role the contract defines for it.
_DEFINED = re.compile(r"([A-Z][\w.&'’\-]*(?:,?\s+(?:[A-Z][\w.&'’\-]*|of|and|&|de|du|la)){0,7})"
                      r"(?:,?\s+(?:a|an)\s+[^()“\"]{2,120}?)?\s*\(\s*(?:the\s+|each\s+a\s+|hereinafter\s+(?:referred\s+to\s+as\s+)?)?"
                      r"[\"“]([^\"”]{2,40})[\"”]\s*\)")
_NOT_A_PARTY = re.compile(r"agreement|contract|date|term\b|effective|services?|products?|territory|law|act\b|shares?|"
                          r"plan\b|schedule|exhibit|closing|program|property|premises|software|marks?\b|\bday\b|means\b|"
                          r"republic|united states|commission|government|\bstate of\b|\bprc\b", re.I)
# a company (its legal form ends the name) or a person ("..., an individual")
_PARTY_NAME = re.compile(r"^[A-Z][^()]*?\b(?:Inc|Corp|Corporation|LLC|L\.?L\.?C|Ltd|Limited|Company|Co|L\.?P|LP|plc|PLC|MHC|"
                         r"GmbH|AG|S\.A|N\.V|B\.V|Pty|Holdings|Partners|Group|Bank|Trust|Fund|"
                         r"INC|CORP|CORPORATION|LIMITED|COMPANY|HOLDINGS|PARTNERS|GROUP|BANK|TRUST|FUND)\b\.?\s*(?:,|\()"
                         r"|^[A-Z][a-z]+(?:\s+[A-Z]\.?)?\s+[A-Z][a-z]+,?\s+an\s+individual\b")


# a company's legal form, then an address or other words (not a further form: "Co., Ltd.", "Holdings Limited")
_FORM_END = re.compile(r"^(.{3,}?\b(?:Inc|Corp|Corporation|LLC|L\.L\.C|Ltd|AG|GmbH|S\.A|N\.V|B\.V|plc|PLC|S\.p\.A|SE|Pty\s+Ltd)\.?)"
                       r"\s+(?!(?:Inc|Corp|Corporation|LLC|Ltd|Limited|Co|Company|AG|GmbH|Holdings|Group|and|&|d/b/a)\b)[A-Z0-9].*$")


def _defined_parties(doc: Document, head_end: int) -> tuple[list[str], Span | None]:
    """Names the opening defines as parties (two or more), with the span from the first to the last."""
    found = []
    for m in _DEFINED.finditer(doc.text, 0, head_end):
        name, role = squash(re.split(r"\n\s*\n", m.group(1))[-1]).strip(" ,."), m.group(2)  # not the title line above it
        if _NOT_A_PARTY.search(role) or not _PARTY_NAME.search(m.group(0)) or (_NOT_A_PARTY.search(name) and not _PARTY_NAME.search(f"{name},")):
            continue
        if name not in (n for n, _ in found):
            found.append((name, m))
    if len(found) < 2:
        return [], None
    a, b = found[0][1].start(1), found[-1][1].end()
    return [n for n, _ in found][:6], Span(a, b, doc.page_at(a), doc.text[a:b])


def document_name(doc: Document) -> Span | None:
    """The contract's name where its text names it (ingest's `contract_name`: heading line or "This ... Agreement")."""
    where = contract_name(doc.text)
    return Span(where[0], where[1], doc.page_at(where[0]), doc.text[where[0] : where[1]]) if where else None


_START_DATE = re.compile(rf"\b(?:effective|commenc\w*|begin\w*|start\w*|come\s+into\s+(?:force|effect))\b"
                         rf"(?:\s+(?!and\b|or\b|until\b|through\b)[\w\"“”()]+){{0,3}}?\s+(?:on\s+|as\s+of\s+|from\s+|upon\s+)?(?:the\s+)?({DATE.pattern})", re.I)


def _unreadable(fs: FactSpec, span: Span) -> bool:
    """A law clause that names no law it can be read from ("governed by the laws applicable to ...")."""
    return fs.value == "law" and read_short("law", squash(span.text)) is None


def _read_value(fs: FactSpec, span: Span, stating: Span, wider: Span | None = None) -> str:
    """What the fact states: the law / date / duration its spec asks for (read in `span`, else in `wider`),
    else (and for text facts) the clause's sentence that states it, not the whole paragraph."""
    if fs.name == "effective_date":  # the date the clause starts it on, not any date of its paragraph (an end date)
        m = _START_DATE.search(squash(span.text))
        return m.group(1) if m else squash(stating.text)
    for where in (span, wider) if fs.value == "law" else (span,):  # a duration / date of another sentence is not this one's
        value = read_short(fs.value, squash(where.text)) if where is not None else None
        if value:
            return value
    return squash(stating.text)


def read_short(kind: str, text: str) -> str | None:
    """A law / date / duration read out of clause text (None when the text states none, or for other kinds)."""
    if kind == "law":
        found = [m for m in _LAW.finditer(text) if m.group(2).strip(" .") != "The"]
        if not found:
            return "People's Republic of China" if re.search(r"\b(?:PRC|P\.R\.C\.?)\s+(?i:laws?)\b", text) else None
        # "the laws of the United States and ... of the Commonwealth of Kentucky": the state's law
        m = next((x for x in found if not re.match(r"(?i)united\s+states", x.group(2))), found[0])
        prefix = m.group(1) or ""
        name = (prefix if re.search(r"(?i)republic|kingdom", prefix) else "") + m.group(2).strip(" .")
        return capwords(name) if name.isupper() else name
    if kind == "date":
        m = DATE.search(text)
        return m and m.group(0)
    if kind == "duration":
        m = _DURATION.search(text)
        return m and m.group(0)
    return None


def _stating_sentence(span: Span, fs: FactSpec) -> Span:
    """The sentence matching the most patterns; a heading ("13.5 Governing Law.") only when no sentence of the
    clause's body (6 words or more) matches."""
    rxs = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in fs.patterns]
    best, best_key = span, (0, False)
    for s in sentences_of(span):
        score = _score(s, rxs)
        key = (score > 0 and s.words >= 6, score)
        if score and key > best_key:
            best, best_key = s, key
    if best is not span and best.words < 6:  # a heading alone matched: its clause's first sentence says it
        best = next((s for s in sentences_of(span) if s.start > best.start and s.words >= 6), best)
    return best


def _fact(fs: FactSpec, span: Span, value: str, doc: Document, stating: Span | None = None) -> Fact:
    """A clause fact: its source is the whole clause ([start, end)); `quote` = [start, end) of the sentence
    that states it (what `ask` quotes), when there is one."""
    extra = {"cuad": getattr(fs, "cuad", None), "start": span.start, "end": span.end}
    if stating is not None:
        extra["quote"] = (stating.start, stating.end)
    return Fact(fs.name, value, fs.unit, 1.0, None, span.page, squash(span.text), fs.title, extra=extra)


@register_extractor("legal")
def extract_legal(doc: Document, spec: DomainSpec) -> list[Fact]:
    paras = paragraphs(doc, min_chars=30)
    out: list[Fact] = []
    index: ClauseIndex | None = None
    squashed: list[str] | None = None
    for fs in spec.facts:
        if fs.value == "parties":
            names, span = parties(doc)
            if names and span:
                out.append(_fact(fs, span, "; ".join(names), doc))
            elif doc.metadata.parties:  # the loader's preamble parse, located on its page
                hit = doc.locate(doc.metadata.parties[0])
                if hit:
                    span = Span(hit[0].start, hit[0].end, hit[0].page, doc.text[hit[0].start : hit[0].end])
                    out.append(_fact(fs, span, "; ".join(doc.metadata.parties), doc))
        elif fs.value == "document_name":
            span = document_name(doc)
            if span is not None:
                out.append(_fact(fs, span, squash(span.text), doc))
        elif fs.name == "effective_date" and (hit := _effective_in_preamble(doc)) is not None:
            out.append(_date_fact(fs, doc, hit.start, hit.end))
        elif fs.name == "agreement_date":
            m = agreement_date(doc)
            if m:
                out.append(_date_fact(fs, doc, m.start(), m.end()))
        elif has_rules(fs):  # found by what a sentence does (legal_clauses)
            index = index or ClauseIndex(doc)
            by_rule = bool((fs.model_extra or {}).get("prefer_first_rule"))  # the first rule's clause before later rules'
            found = index.find(fs, first=not by_rule)
            if found:
                c = min(found, key=lambda c: (_unreadable(fs, c.sentence), c.rule)) if by_rule else found[0]
                out.append(_fact(fs, c.paragraph, _read_value(fs, c.sentence, c.sentence, c.paragraph), doc, c.sentence))
        else:
            squashed = squashed or [squash(p.text) for p in paras]
            span = best_clause(paras, fs, squashed=squashed)
            if span is not None:
                stating = _stating_sentence(span, fs)
                out.append(_fact(fs, span, _read_value(fs, span, stating), doc, stating))
    _resolve_dates(out, doc, spec.fact("effective_date"))
    return out


# An effective date defined as the contract's own date: "“Effective Date” means the date first written above",
# "shall become effective on the date hereof", "effective as of the date of this Agreement", "effective upon
# execution" (the preamble's date is the date the contract was made).
# the contract's own date, named by reference
_OWN_DATE = (r"date\s+(?:first\s+)?(?:written|set\s+forth|stated|appearing)\s+above|date\s+hereof|"
             r"date\s+and\s+year\s+first\s+(?:above\s+)?(?:written|set\s+forth)|"
             r"date\s+of\s+(?:this|the)\s+(?:agreement|contract)")
_EFFECTIVE_ABOVE = re.compile(rf"\beffective\b(?:\s+date\b)?[\"”']?\s*(?:\([^)]{{0,40}}\)\s*)?(?:means|shall\s+mean|shall\s+be|is|"
                              rf"on|upon|as\s+of)\s+(?:the\s+)?(?:{_OWN_DATE})\b"
                              r"|\b(?:effective|effect|begin|commence)\w*\s+(?:on|upon|as\s+of|from)\s+(?:the\s+)?(?:later\s+of\s+the\s+)?"
                              r"(?:dates?\s+(?:on\s+which\s+|when\s+|that\s+)?(?:it|this\s+(?:agreement|contract))\s+(?:is|has\s+been)\s+"
                              r"(?:signed|executed)|(?:its\s+)?(?:execution|signing|signatures?)|date\s+of\s+(?:the\s+)?last\s+signature|"
                              r"(?:the\s+)?signatures?\s+(?:and\s+seals?\s+)?of\s+both\s+parties)\b"
                              r"|\beffective\s+date\b[^.;]{0,30}?\b(?:means|shall\s+(?:mean|be)|is)\s+the\s+date\s+(?:of\s+the\s+last\s+signature|"
                              r"(?:on\s+which\s+|when\s+)?(?:this\s+agreement|it)\s+(?:is|has\s+been)\s+(?:signed|executed))"
                              r"|\b(?:begin|commence|start)\w*\s+on\s+the\s+date\s+(?:this\s+agreement|it)\s+is\s+signed\b", re.I)
# a fixed term that runs from the effective date / the contract's date: "for a period of five (5) years from the
# date hereof", "shall commence on the Effective Date and continue for three (3) years" (not "... commence on the
# Effective Date and terminate five (5) years following the launch": that term runs from something else)
_REF = rf"(?:the\s+)?(effective\s+date|{_OWN_DATE})\b"
_SPAN = rf"({DURATION_TEXT})"
_YEARS = DURATION_TEXT.replace("(?:years?|months?|days?)", "years?")  # a length in years only
_TERM_FROM = [
    re.compile(rf"\b{_SPAN}\s+(?:\([^)]{{0,40}}\)\s+)?(?:period\s+)?(?:from|after|following|of|(?:commencing|beginning|starting)\s+"
               rf"(?:on|as\s+of|with))\s+{_REF}", re.I),
    re.compile(rf"\b(?:commenc\w*|begin\w*|start\w*|become\s+effective|be\s+effective|take\s+effect)\s+(?:on|as\s+of|upon|from)\s+"
               rf"{_REF}.{{0,120}}?\b(?:continu\w*|remain\w*|be\s+in\s+effect|in\s+(?:full\s+)?"
               rf"(?:force|effect))\b.{{0,40}}?\b{_SPAN}(?!\s+(?:from|after|following))", re.I | re.S),
    # "until the five (5) year anniversary of the Effective Date", "the four-year anniversary of the date hereof"
    re.compile(rf"\b({_YEARS}|\w+-years?)\s+anniversary\s+of\s+{_REF}", re.I),
]
# no fixed end: "until terminated", "in perpetuity", "the later of ..." ("unless terminated earlier" still has one)
_OPEN_ENDED = re.compile(r"\buntil\s+(?:terminated|the\s+(?:later|earlier))|\bperpetu|\bindefinite|\blater\s+of\b|"
                         r"\bearlier\s+of\b", re.I)


def _resolve_dates(facts: list[Fact], doc: Document, fs_effective: FactSpec | None = None) -> None:
    """Dates the contract states by reference, read through: an effective date defined as "the date first
    written above" (in the clause found for it, or any clause of the contract) takes the agreement date; a fixed initial term that runs from the effective date (or the
    contract's date) gets its end date computed ("December 23, 2006 (three (3) years from the Effective Date,
    December 23, 2003)"), marked derived. Nothing is set when a date or the term's length cannot be read."""
    by = {f.name: f for f in facts}
    eff, agreed, term = by.get("effective_date"), by.get("agreement_date"), by.get("expiration_date")
    if agreed is not None and (eff is None or parse_date(str(eff.value)) is None):
        definition = _EFFECTIVE_ABOVE.search(_quote(eff, doc)) if eff is not None else None
        where = None if definition else _EFFECTIVE_ABOVE.search(doc.text)  # the clause that defines it elsewhere
        if definition or where:
            if eff is None and fs_effective is not None:
                eff = Fact(fs_effective.name, None, None, 1.0, None, None, "", fs_effective.title,
                           extra={"cuad": getattr(fs_effective, "cuad", None)})
                facts.append(eff)
            if eff is not None:
                said = (eff.page, eff.source_text) if definition else (doc.page_at(where.start()), _context(doc, where.start(), where.end()))
                eff.extra = {**agreed.extra, "defined_by": {"page": said[0], "text": said[1]}, "cuad": eff.extra.get("cuad")}
                eff.value, eff.page, eff.source_text = agreed.value, agreed.page, agreed.source_text  # cite the date
    if term is None or "quote" not in term.extra:
        return
    sentence = _quote(term, doc)
    found = _term_length(sentence)
    if found is None or found[2] is None or _OPEN_ENDED.search(sentence):
        return
    length, ref, duration = found
    dated = eff is not None and parse_date(str(eff.value)) is not None
    start_fact = eff if ref.lower().startswith("effective") and dated else agreed  # no effective date read: the contract's
    start = parse_date(str(start_fact.value)) if start_fact is not None else None
    if start is None:
        return
    end = add(start, *duration)
    term.value = f"{written(end)} ({length} from the {ref}, {written(start)})"
    term.derived = True
    term.extra["computed_from"] = [start_fact.name, "expiration_date"]
    term.extra["pages"] = sorted({term.page, start_fact.page} - {None})


# a term stated only by its length ("The term of this Agreement shall be five (5) years."): it runs from the
# effective date, unless the length is counted from something else ("five (5) years following the first sale")
_TERM_ONLY = re.compile(rf"\b(?:initial\s+)?term\b[^.]{{0,120}}?\b(?:shall|will)\s+(?:be|continue|remain|run|last|extend)\b[^.]{{0,60}}?"
                        rf"\b({DURATION_TEXT})(?!\s+(?:\([^)]{{0,40}}\)\s+)?(?:from|after|following|of|commencing|beginning|starting)\b)", re.I)


def _term_length(sentence: str) -> tuple[str, str, tuple[int, str] | None] | None:
    """(length as written, what it runs from, parsed length) of a fixed term, or None."""
    for rx in _TERM_FROM:
        m = rx.search(sentence)
        if m:
            length, ref = (m.group(2), m.group(1)) if rx is _TERM_FROM[1] else (m.group(1), m.group(2))
            return length.strip(), ref, parse_duration(length.replace("-", " "))
    m = _TERM_ONLY.search(sentence)
    if m and not re.search(r"\b(?:from|after|following)\b", sentence[m.end() : m.end() + 80], re.I):
        return m.group(1).strip(), "Effective Date", parse_duration(m.group(1))
    return None


def _date_fact(fs: FactSpec, doc: Document, start: int, end: int) -> Fact:
    """A date read at doc.text[start:end], with the text around it as its source."""
    return Fact(fs.name, doc.text[start:end], None, 1.0, None, doc.page_at(start), _context(doc, start, end), fs.title,
                extra={"cuad": getattr(fs, "cuad", None), "start": start, "end": end})


def _quote(f: Fact, doc: Document) -> str:
    """The sentence a clause fact was read from (extra["quote"]), else its whole clause."""
    a, b = f.extra.get("quote") or (None, None)
    return squash(doc.text[a:b]) if a is not None else f.source_text


def _effective_in_preamble(doc: Document) -> Span | None:
    """The effective date the contract's opening states ("effective as of May 1, 2021"; ingest reads it into
    metadata.dates["effective"]), located in the text; else a date the contract names as its effective date
    anywhere ("effective as of ...", '... (the "Effective Date")', '"Effective Date" means ...'); None otherwise."""
    date = doc.metadata.dates.get("effective") if doc.metadata.dates else None
    hits = doc.locate(date) if date else []
    hit = next((h for h in hits if h.start < 6000), None)
    if hit:
        return Span(hit.start, hit.end, hit.page, doc.text[hit.start : hit.end])
    for m in _EFFECTIVE_NAMED.finditer(doc.text):
        d = DATE.search(m.group(0))
        if d and not _in_filing_line(doc.text, m.start()):
            a = m.start() + d.start()
            return Span(a, a + len(d.group(0)), doc.page_at(a), d.group(0))
    return None


_D = r"(?:[A-Z][a-z]{2,8}\.?\s+\d{1,2}(?:st|nd|rd|th)?\s*,?\s+\d{4}|\d{1,2}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?[A-Z][a-z]{2,8},?\s+\d{4}|\d{1,2}/\d{1,2}/\d{2,4})"
# a date the contract names its effective date
_EFFECTIVE_NAMED = re.compile(
    rf"\beffective\s+(?:as\s+of|on|from|upon)\s+(?:the\s+)?{_D}"
    rf"|{_D}\s*(?:\(\s*(?:the\s+|such\s+date,?\s+)?[\"“]?Effective\s+Date[\"”]?\s*\)|,?\s+(?:which\s+)?(?:shall\s+be|being|is)\s+the\s+[\"“]?Effective\s+Date)"
    rf"|[\"“]?Effective\s+Date[\"”]?\s*(?:shall\s+mean|means|shall\s+be|is|:)\s*(?:12:01\s+a\.?m\.?[^,]{{0,40}}?\s+on\s+)?(?:the\s+)?{_D}",
    re.IGNORECASE)
# the agreement's own date: a date the opening introduces as the date it is made ("dated as of", "made this 7th day of",
# "entered into on"), or states beside the agreement's name
_AGREEMENT_CUE = re.compile(r"\b(?:dated|as\s+of|made|entered|executed|signed|concluded|effective|day\s+of)\b[^.;]{0,80}$"
                            r"|\b(?:agreement|contract|date[ds]?)\b[\s:,\-–—]{0,12}$", re.IGNORECASE)


def _in_filing_line(text: str, pos: int) -> bool:
    """A position on an EDGAR filing line ("Source: ACME INC, 10-K, 3/1/2019"), not the contract's text."""
    line_start = max(text.rfind("\n", 0, pos) + 1, pos - 100)
    return bool(re.search(r"\bSource:|\bfiled\b|\bEDGAR\b", text[line_start:pos]))


# a date after "this" or the agreement's name in a phrase ("This Event is scheduled to take place on April 22, 2000",
# "AGREEMENT for Boxing Event in China, on April 22, 2000") is the agreement's only when no date the opening introduces
# as the agreement's own ("dated as of", "made this ... day of", right under its title, "Date:") is found
_WEAK_CUE = re.compile(r"\b(?:this|agreement|contract|date[ds]?)\b[^.;]{0,80}$", re.I)
# a date that names another agreement ("First Amendment to the Supply Agreement dated April 1, 2017"), not this one's
_OTHER_AGREEMENT = re.compile(r"\b(?:to|under|of|amends?|amending|amended|supplement\w*)\s+(?:the|that\s+certain|a|an|said)\s+"
                              r"[^.;]{0,120}?\b(?:agreements?|contracts?|licen[cs]e|lease|plan)\b[\"”]?\s*(?:\([^)]{0,40}\)\s*)?,?\s*"
                              r"(?:dated|made|entered\s+into|executed)\s*(?:as\s+of\s+|on\s+)?(?:the\s+)?$", re.I)


def agreement_date(doc: Document, window: int = 6000) -> re.Match | None:
    """The date the contract is made: in the opening, the first date a strong cue introduces ("dated as of", "made
    this ... day of"), else the first with any cue (not a filing line, not the date of another agreement it names);
    else the date the parties signed it (signature_date)."""
    found = []
    for m in DATE.finditer(doc.text, 0, min(len(doc.text), window)):
        before = doc.text[max(0, m.start() - 120) : m.start()]
        if _in_filing_line(doc.text, m.start()) or _OTHER_AGREEMENT.search(before) or parse_date(m.group(0)) is None:
            continue
        if _SIGNED_CUE.search(doc.text[max(0, m.start() - 300) : m.start()]):  # "Date:" under signatures: the last one
            return signature_date(doc) or m
        if _AGREEMENT_CUE.search(before):
            return m
        if _WEAK_CUE.search(before):
            found.append(m)
    return found[0] if found else signature_date(doc)


# where a contract states when it was signed: "Date: August 8, 2018" under a signature, "IN WITNESS WHEREOF ... on
# November 8, 2002", "This Agreement is dated April 29, 2010"
_SIGNED_CUE = re.compile(r"(?:(?<!Effective\s)\bDated?\s*:\s*|\bIN\s+WITNESS\s+WHEREOF\b[^.]{0,250}?\b(?:on|as\s+of|this|dated)\s+(?:the\s+)?"
                         r"|\b(?:agreement|contract)\s+is\s+(?:dated|made|signed|executed)\s+(?:as\s+of\s+|on\s+)?(?:the\s+)?)$",
                         re.I)


def signature_date(doc: Document) -> re.Match | None:
    """The date the last party signed (the latest date a signature block or closing line states), or None."""
    best = None
    for m in DATE.finditer(doc.text):
        d = parse_date(m.group(0))
        if d is not None and _SIGNED_CUE.search(doc.text[max(0, m.start() - 300) : m.start()]):
            if best is None or d > best[1]:
                best = (m, d)
    return best[0] if best else None


def _context(doc: Document, start: int, end: int, width: int = 160) -> str:
    return squash(doc.text[max(0, start - width) : min(len(doc.text), end + width)])


__all__ = ["DATE", "best_clause", "document_name", "extract_legal", "parties", "read_short"]
