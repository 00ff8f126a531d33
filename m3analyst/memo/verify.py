"""The verifier: every generated sentence is checked against the pages it cites (and the whole document).

A sentence is *verified* when it cites at least one existing page and
- every number in it appears on a cited page (or is a fact whose page is cited; "32.8 billion"
  matches a page's "32,765" printed in millions when it rounds to the same figure),
- every quoted phrase ("...") is found on a cited page,
- at least half of its content words occur on the cited pages, and it has a number, a quote or 5+ content words
  (so "The most important risks are [p.12]." is not a claim).
A model's rephrasing of a finding (`check_rephrasing`) is held to the finding: the same figures (none invented, none
dropped; "$32.8 billion" may stand for "$32,765M"), no name the finding and its evidence do not have, the same
direction of change, and only the finding's pages; on any mismatch the finding's template sentence stands.
`unsupported_figures` lists the figures of a finding not tied to an extracted or derived fact.
Citations to pages that do not exist are errors: they are removed from the text (never emitted) and counted.
A sentence that cites no page but states a number or a quote may be given one by `verify_text(..., pages=...)`: the
page (of those the model read) holding the facts its numbers match or most of its words, kept only if the sentence
then verifies against that page (`ClaimCheck.cited_by_verifier`, counted in the memo's grounding). Small models often
drop citations; a sentence of words alone ("The company's position is complex.") is never given one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Figure, Finding
from m3analyst.injection import contains_phrase, is_instruction, without_instructions
from m3analyst.ingest.model import Document
from m3analyst.memo.polarity import polarity_problem
from m3analyst.text import GENERATED_BOUNDARY, sentence_bounds, to_number

CITE = re.compile(r"\[\s*(?:p|pp|page)\.?\s*(\d+)(?:\s*(?:-|–|,)\s*(?:p\.?\s*)?(\d+))?\s*\]", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])\$?\(?-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|(?<![\w.,])\$?-?\d+(?:\.\d+)?%?")
_SCALE_WORDS = {"thousand": 1e3, "million": 1e6, "millions": 1e6, "billion": 1e9, "billions": 1e9, "trillion": 1e12,
                "k": 1e3, "m": 1e6, "mn": 1e6, "bn": 1e9, "b": 1e9}
QUOTE = re.compile(r"[\"“]([^\"”]{12,400})[\"”]")
STOP = frozenset(
    "the a an and or of to in on for with by from as at is are was were be been this that these those it its their our "
    "which who whom what when where while than then there here has have had not no but also into over under about "
    "such more most less other company year years period total during after before between each both".split()
)
_WORD = re.compile(r"[a-z][a-z\-]{3,}")


@dataclass
class ClaimCheck:
    text: str  # the sentence as it will be shown (bad citations removed)
    citations: list[int]  # valid cited pages
    status: str  # "verified" | "unsupported"
    problems: list[str] = field(default_factory=list)
    bad_citations: list[int] = field(default_factory=list)
    numbers: int = 0
    overlap: float = 0.0
    cited_by_verifier: bool = False  # the sentence cited nothing; the verifier found the page it verifies against

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    def to_dict(self) -> dict:
        return asdict(self)


def page_marks(pages: list[int]) -> str:
    """'[p.3] [p.7]': how an answer cites its pages."""
    return " ".join(f"[p.{p}]" for p in pages)


def citations_in(text: str) -> list[int]:
    pages: list[int] = []
    for m in CITE.finditer(text):
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        pages += list(range(a, b + 1)) if 0 <= b - a <= 5 else [a, b]
    return pages


def strip_bad_citations(doc: Document, text: str) -> tuple[str, list[int]]:
    """Remove citations to pages the document does not have; returns (text, bad pages)."""
    bad: list[int] = []

    def fix(m: re.Match) -> str:
        pages = citations_in(m.group(0))
        wrong = [p for p in pages if not doc.has_page(p)]
        if wrong:
            bad.extend(wrong)
            good = [p for p in pages if doc.has_page(p)]
            return f"[p.{good[0]}]" if good else ""
        return m.group(0)

    return re.sub(r"\s+(?=[.,;])", "", CITE.sub(fix, text)).strip(), bad


@lru_cache(maxsize=256)
def _page_numbers(page_text: str) -> frozenset[float]:
    out = set()
    for m in NUMBER.finditer(page_text):
        if (v := to_number(m.group(0))) is not None:
            out.add(abs(v))
    return frozenset(out)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOP}


def _number_supported(value: float, scale_word: float | None, page_nums: frozenset[float]) -> bool:
    v = abs(value)
    if v in page_nums:
        return True
    if scale_word:  # "32.8 billion" vs 32,765 (millions) on the page
        target = v * scale_word
        for s in (1e6, 1e3, 1e9, 1.0):
            for p in page_nums:
                if p and abs(p * s - target) <= 0.006 * target:
                    return True
    # rounding: "3.5%" vs 3.46 printed, "$8.9" vs 8.89
    decimals = len(str(value).split(".")[1]) if "." in str(value) and not float(value).is_integer() else 0
    return any(round(p, decimals) == v for p in page_nums if p and abs(p - v) < 1)


def _fact_supported(value: float, pct: bool, facts: list[Fact], pages: set[int]) -> bool:
    for f in facts:
        if not isinstance(f.value, float) or not set(f.pages) & pages:
            continue
        shown = abs(f.value) if f.unit in ("%", "USD/share") or pct else abs(f.value) / (f.scale or 1.0)
        if abs(shown - abs(value)) <= max(0.051, 0.0005 * shown):
            return True
    return False


def verify_sentence(doc: Document, sentence: str, facts: list[Fact] | None = None) -> ClaimCheck:
    text, bad = strip_bad_citations(doc, sentence)
    cites = sorted(set(citations_in(text)))
    check = ClaimCheck(text, cites, "verified", bad_citations=bad)
    if bad:
        check.problems.append(f"cites page(s) that do not exist: {', '.join(map(str, bad))}")
    if not cites:
        check.problems.append("no page citation")
        check.status = "unsupported"
        return check
    page_text = without_instructions("\n".join(doc.page_text(p) for p in cites))  # an instruction supports nothing
    nums = _page_numbers(page_text)
    body = CITE.sub(" ", text)
    if is_instruction(body):
        check.problems.append("an instruction addressed to a reader or model, not a claim")
    for m in NUMBER.finditer(body):
        tok = m.group(0)
        value, pct = to_number(tok), tok.endswith("%")
        if value is None:
            continue
        if not pct and not tok.startswith("$") and float(value).is_integer() and abs(value) < 10:
            continue  # list numbering, "two segments"
        check.numbers += 1
        after = body[m.end() : m.end() + 12].strip().lower().split(" ")[0].strip(".,;") if m.end() < len(body) else ""
        scale = _SCALE_WORDS.get(after)
        if not (_number_supported(value, scale, nums) or _fact_supported(value, pct, facts or [], set(cites))):
            where = "elsewhere in the document" if _number_supported(value, scale, _page_numbers(doc.text)) else "not in the document"
            check.problems.append(f"number {tok} not on cited page(s) ({where})")
    if problem := polarity_problem(body, page_text):  # memo/polarity.py: a reversed direction or significance
        check.problems.append(problem)
    for q in QUOTE.findall(body):
        if not any(doc.locate(q, p) for p in cites) or not contains_phrase(page_text, q):
            check.problems.append(f"quote not on cited page(s): \"{q[:60]}\"")
    words = _words(body)
    if len(words) < 5 and not check.numbers and not QUOTE.search(body):
        check.problems.append("too little content to carry a claim")
    if words:
        have = _words(page_text)
        check.overlap = len(words & have) / len(words)
        if check.overlap < 0.5:
            check.problems.append(f"only {check.overlap:.0%} of its content words are on the cited page(s)")
    if any(not p.startswith("cites page") for p in check.problems):
        check.status = "unsupported"
    return check


def split_sentences(text: str) -> list[str]:
    """Sentences of generated text; a trailing citation stays with its sentence."""
    text = re.sub(r"\s+", " ", text).strip()
    parts = [text[a:b] for a, b in sentence_bounds(text, GENERATED_BOUNDARY, abbreviations=False)] if text else []
    out: list[str] = []
    for p in parts:
        if out and CITE.fullmatch(p.strip()):
            out[-1] += " " + p.strip()
        elif p.strip():
            out.append(p.strip())
    return out


def verify_text(doc: Document, text: str, facts: list[Fact] | None = None,
                pages: list[int] | None = None) -> list[ClaimCheck]:
    """Check every sentence; with `pages` (those the model read), a sentence citing none gets `find_citation`'s."""
    checks = []
    for s in split_sentences(text):
        check = verify_sentence(doc, s, facts)
        if pages and not check.citations and not check.bad_citations:
            check = find_citation(doc, s, facts, pages) or check
        checks.append(check)
    return checks


def find_citation(doc: Document, sentence: str, facts: list[Fact] | None, pages: list[int],
                  tries: int = 3) -> ClaimCheck | None:
    """The check of `sentence` + [p.N] for the first page N that makes it verify with at least one number or quote
    checked, trying the pages of facts its numbers match, then up to `tries` of `pages` by shared content words;
    None when none does."""
    words = _words(CITE.sub(" ", sentence))
    nums = []
    for m in NUMBER.finditer(sentence):
        if (v := to_number(m.group(0))) is not None:
            nums.append((v, m.group(0).endswith("%")))
    by_fact = [f.page for f in facts or [] for v, pct in nums if f.page in pages and _fact_supported(v, pct, [f], {f.page})]
    by_words = sorted(pages, key=lambda p: -len(words & _words(doc.page_text(p))))[:tries] if words else []
    for p in dict.fromkeys(by_fact + by_words):
        check = verify_sentence(doc, f"{sentence.rstrip()} [p.{p}]", facts)
        if check.ok and (check.numbers or QUOTE.search(sentence)):  # words alone are too weak a tie to a page
            check.cited_by_verifier = True
            return check
    return None


# ---- findings ------------------------------------------------------------------------------------
_UNIT_SUFFIX = {"k": 1e3, "m": 1e6, "mn": 1e6, "b": 1e9, "bn": 1e9}
_AMOUNT = re.compile(r"(?<![\w.])(\$?\(?-?\d[\d,]*(?:\.\d+)?)(%|x\b|\s?(?:bps|k|m|mn|b|bn)\b)?(\s+(?:thousand|million|billion|"
                     r"trillion|percent|percentage points?|points?|basis points)\b)?", re.I)
_UP = re.compile(r"\b(rose|grew|increased?|widened|higher|improved|gains?|up|expanded|positive)\b", re.I)
_DOWN = re.compile(r"\b(fell|declined?|decreased?|narrowed|lower|dropped|down|contracted|negative|shrank)\b", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][A-Za-z&'’.-]+)")


def _amounts(text: str) -> list[tuple[float, str]]:
    """Figures of a sentence in comparable form: (value in units, kind) with kind "%" / "x" / "pts" / "" (amounts)."""
    out = []
    for m in _AMOUNT.finditer(CITE.sub(" ", text)):
        num, suffix, word = m.group(1), (m.group(2) or "").strip().lower(), (m.group(3) or "").strip().lower()
        if (v := to_number(num)) is None:
            continue
        v = abs(v)
        if suffix == "%" or word == "percent":
            out.append((v, "%"))
        elif suffix == "x":
            out.append((v, "x"))
        elif suffix == "bps" or word == "basis points":
            out.append((v / 100, "pts"))
        elif word.startswith(("point", "percentage")):
            out.append((v, "pts"))
        elif not suffix and not word and not num.startswith("$"):
            out.append((v, "n"))  # a bare number (a year, a count): only the same number matches
        else:
            scale = _UNIT_SUFFIX.get(suffix) or _SCALE_WORDS.get(word.split(" ")[0] if word else "", 1.0)
            out.append((v * scale, ""))
    return out


def _roles(text: str) -> dict[str, list[tuple[float, str]]]:
    """The figures a sentence puts after 'from' (the earlier value) and after 'to' (the later one)."""
    out: dict[str, list[tuple[float, str]]] = {"from": [], "to": []}
    plain = CITE.sub(" ", text)
    for m in re.finditer(r"\b(from|to)\s+(?=[$\d(])", plain):
        got = _amounts(plain[m.end():m.end() + 40])
        if got:
            out[m.group(1).lower()].append(got[0])
    return out


_UP_NEAR = re.compile(rf"(?:{_UP.pattern}|\bgrowth\b)[^.;:]{{0,24}}$", re.I)
_DOWN_NEAR = re.compile(rf"(?:{_DOWN.pattern}|\bdecline\b)[^.;:]{{0,24}}$", re.I)


def _figure_directions(text: str) -> list[tuple[tuple[float, str], str]]:
    """Each percentage or points figure with the direction word just before it ("revenue fell 15.4%": down;
    "revenue growth of 15.4%": up), where one is."""
    plain, out = CITE.sub(" ", text), []
    for m in _AMOUNT.finditer(plain):
        got = _amounts(m.group(0))
        if not got or got[0][1] not in ("%", "pts"):
            continue
        before = plain[max(0, m.start() - 40):m.start()]
        up, down = _UP_NEAR.search(before), _DOWN_NEAR.search(before)
        if up or down:
            out.append((got[0], "up" if up and (not down or up.start() > down.start()) else "down"))
    return out


def _same(a: tuple[float, str], b: tuple[float, str]) -> bool:
    kinds = {a[1], b[1]}
    if "n" in kinds:
        return kinds == {"n"} and a[0] == b[0]
    if len(kinds) > 1 and kinds != {"%", "pts"}:
        return False
    if kinds <= {"%", "pts", "x"}:  # rates and multiples: rounding to one decimal (49.1% is not 49.3%)
        return abs(a[0] - b[0]) <= 0.051
    hi = max(abs(a[0]), abs(b[0]))
    return abs(a[0] - b[0]) <= max(0.051, 0.006 * hi)


def check_rephrasing(finding: Finding, text: str) -> list[str]:
    """What is wrong with `text` as a rephrasing of `finding` ([] when it states the same figures, names, direction
    and pages)."""
    template = finding.template or finding.claim
    problems = []
    mine, theirs = _amounts(template), _amounts(text)
    problems += [f"figure {v[0]:g} not in the finding" for v in theirs if not any(_same(v, t) for t in mine)]
    problems += [f"figure {v[0]:g} of the finding dropped" for v in mine if not any(_same(v, t) for t in theirs)]
    known = " ".join([template, *(c.quote for c in finding.evidence)]).lower()
    names = {m.group(1).strip(".’'") for m in _NAME.finditer(CITE.sub(" ", text))}
    problems += [f"name {n!r} not in the finding" for n in sorted(names) if n.lower() not in known]
    mine_roles, their_roles = _roles(template), _roles(text)
    for role, other in (("from", "to"), ("to", "from")):
        if any(_same(v, t) for v in their_roles[role] for t in mine_roles[other]):
            problems.append(f"a figure moved from '{other}' to '{role}'")
    up, down = bool(_UP.search(template)), bool(_DOWN.search(template))
    if (up and not down and _DOWN.search(text) and not _UP.search(text)) or (down and not up and _UP.search(text) and not _DOWN.search(text)):
        problems.append("direction of change reversed")
    else:  # each change figure keeps its own direction ("revenue fell 15.4%" is not "revenue growth of 15.4%")
        mine_dir = _figure_directions(template)
        problems += [f"direction of {v[0]:g}{'%' if v[1] == '%' else ' points'} reversed"
                     for v, d in _figure_directions(text) if any(_same(v, t) and d != e for t, e in mine_dir)]
    allowed = set(finding.pages) | set(citations_in(template))
    problems += [f"cites p.{p}, which the finding does not" for p in citations_in(text) if p not in allowed]
    problems += [f"subject word {w!r} of the finding dropped" for w in _subject_words(template)
                 if _stem(w) not in {_stem(x) for x in _content_words(text)}]
    known_stems = {_stem(w) for w in _content_words(known)}
    problems += [f"word {w!r} not in the finding or its evidence" for w in sorted(set(_content_words(text)))
                 if w not in PARAPHRASE_WORDS and _stem(w) not in known_stems]
    return problems


# Words a rephrasing may use without the finding having them: directions of change, comparisons and connectives.
PARAPHRASE_WORDS = frozenset("""rose rise rising risen grew grow growing grown growth increase increased increasing
increases higher improved improve improvement gain gained gains expanded expand widened widen widening fell fall
falling fallen declined decline declining declines decrease decreased decreasing decreases lower dropped drop narrowed
narrow narrowing contracted contract shrank down compared comparison against versus stood reached amounted totaled
totalled came previous prior earlier last annual ended ending end whereas respectively meanwhile representing
represented represents equal equivalent times reported recorded then about approximately roughly change changed
thousand million millions billion billions trillion bps basis
points point percent percentage level remained resulting result meaning amount""".split())
_CONTENT = re.compile(r"[a-z][a-z'’]+")


def _content_words(text: str) -> list[str]:
    return [w for w in _CONTENT.findall(CITE.sub(" ", text).lower()) if len(w) >= 3 and w not in STOP]


def _stem(word: str) -> str:
    """A crude stem: without -ing / -ed / -es / -s, its first five letters (lagging, lagged -> lagg)."""
    return re.sub(r"(?:ing|ed|es|s)$", "", word)[:5]


def _subject_words(template: str) -> list[str]:
    """Content words of the finding's subject: what comes before its first figure, direction or verb 'was/were'."""
    plain = CITE.sub(" ", template)
    m = re.search(rf"[\d$]|{_UP.pattern}|{_DOWN.pattern}|\b(?:was|were|is|are)\b", plain, re.I)
    return _content_words(plain[: m.start()]) if m else []


def unsupported_figures(finding: Finding, facts: list[Fact]) -> list[Figure]:
    """Figures of `finding` not tied to a fact: a reported figure needs its fact (name, period, value); a computed one
    needs each input `name@period` among the facts."""
    have = {(f.name, f.period): f for f in facts}
    bad = []
    for g in finding.figures:
        if g.fact is None:
            bad.append(g)
        elif g.derived and g.inputs and all("@" in i for i in g.inputs):
            if not all(tuple(i.rsplit("@", 1)) in have for i in g.inputs):
                bad.append(g)
        elif not g.derived or not g.inputs:
            f = have.get((g.fact, g.period))
            if f is None or not isinstance(f.value, float) or not isinstance(g.value, float) or abs(f.value - g.value) > 1e-6 * max(1.0, abs(f.value)):
                bad.append(g)
        elif (g.fact, g.period) not in have:  # a derived fact of the extractor (inputs: its expression)
            bad.append(g)
    return bad
