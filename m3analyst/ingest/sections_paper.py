"""Research-paper outline: title, authors, abstract (+ structured-abstract fields), introduction,
methods, results, discussion, conclusion, acknowledgements, references.

Headings are whole lines naming a canonical section (optionally numbered "2.", "II.", or
letter-spaced "A B S T R A C T"). Body sections are taken in reading order, each kind once and
in canonical order (a later "Methods" of a second study does not move the first). Inside the
abstract, lines opening with a field name ("Objective:", "Methods We did ...") become
level-2 fields, kind "abstract_<field>".
"""

from __future__ import annotations

import re

from m3analyst.ingest.model import Document, Section
from m3analyst.ingest.sections_contract import close_spans

EXPECTED = ["title", "abstract", "introduction", "methods", "results", "discussion|conclusion", "references"]

# canonical kind -> heading names (lowercase, spaces collapsed)
HEADINGS: dict[str, tuple[str, ...]] = {
    "abstract": ("abstract", "summary", "structured abstract"),
    "introduction": ("introduction", "background", "background and introduction", "introduction and background", "rationale"),
    "methods": (
        "methods", "method", "materials and methods", "methods/design", "methods and design", "patients and methods",
        "subjects and methods", "methodology", "study design", "methods and materials", "material and methods",
        "experimental procedures", "methods and analysis",
    ),
    "results": ("results", "findings", "results and discussion"),
    "discussion": ("discussion", "general discussion", "comment"),
    "conclusion": ("conclusion", "conclusions", "concluding remarks", "implications", "conclusions and implications"),
    "acknowledgements": ("acknowledgements", "acknowledgments", "acknowledgement", "acknowledgment"),
    "references": ("references", "bibliography", "literature cited", "reference list"),
}  # fmt: skip
ORDER = ["abstract", "introduction", "methods", "results", "discussion", "conclusion", "acknowledgements", "references"]
ABSTRACT_FIELDS: dict[str, tuple[str, ...]] = {
    "background": ("background", "context", "introduction", "purpose"),
    "objective": ("objective", "objectives", "aim", "aims", "purpose"),
    "design": ("design", "setting", "participants", "patients", "interventions", "methods/design"),
    "methods": ("methods", "method", "materials and methods", "main outcome measures", "measurements"),
    "results": ("results", "findings"),
    "conclusions": ("conclusions", "conclusion", "interpretation", "discussion"),
    "keywords": ("keywords", "key words"),
}
_NUMBER = re.compile(r"^\s*(?:\d{1,2}(?:\.\d{1,2})*\.?|[IVX]{1,4}\.)\s+")
_DOTTED = re.compile(r"^([A-Z][A-Z &/]+)\.([A-Z][A-Z0-9 ,&/()\-]*):+\s*$")
_LETTER_SPACED = re.compile(r"^(?:[A-Za-z] ){3,}[A-Za-z]$")
_NAME_TO_KIND = {name: kind for kind, names in HEADINGS.items() for name in names}
_FIELD_TO_KIND = {name: kind for kind, names in ABSTRACT_FIELDS.items() for name in names}
_FIELD_RX = re.compile(
    r"^\s*(?P<name>" + "|".join(sorted((re.escape(n) for n in _FIELD_TO_KIND), key=len, reverse=True)) + r")\s*(?:[:.]|\s(?=[A-Z0-9]))",
    re.IGNORECASE,
)


def heading_kind(line: str) -> str | None:
    """Canonical kind of a heading line ('2. Materials and Methods' -> 'methods'), else None."""
    s = line.strip().lstrip("#").strip()  # Markdown "## Methods"
    if not s or len(s) > 60:
        return None
    dotted = _DOTTED.match(s)  # PubMed Central text dumps: "ABSTRACT.METHODS:", "METHODS.STATISTICAL ANALYSIS:"
    if dotted:
        head, sub = dotted.group(1).strip().lower(), " ".join(dotted.group(2).lower().split())
        if head == "abstract":
            return "abstract"
        return _NAME_TO_KIND.get(sub if head == "body" else head)
    if _LETTER_SPACED.match(s):
        s = s.replace(" ", "")
    caps = s.isupper()
    s = " ".join(_NUMBER.sub("", s).strip().rstrip(":.").strip().lower().split())
    kind = _NAME_TO_KIND.get(s)
    if kind is None and caps:  # "FEASIBILITY STUDY DISCUSSION", "OVERALL DISCUSSION"
        words = s.split()
        kind = next((_NAME_TO_KIND.get(" ".join(words[-k:])) for k in (3, 2, 1) if len(words) > k and len(words) <= 5 and " ".join(words[-k:]) in _NAME_TO_KIND), None)
    return kind


def _lines(text: str):
    pos = 0
    for line in text.split("\n"):
        yield pos, line
        pos += len(line) + 1


def _mk(doc: Document, title: str, kind: str, level: int, start: int) -> Section:
    p = doc.page_at(start)
    return Section(title, kind, level, start, start, p, p)


def _front_matter(doc: Document) -> list[Section]:
    out = []
    first = doc.pages[0] if doc.pages else None
    if first is None:
        return out
    title = doc.metadata.title
    if title:
        hit = doc.locate(" ".join(title.split()[:6]), page=1)
        if hit:
            out.append(_mk(doc, title[:200], "title", 1, hit[0].start))
    if doc.metadata.authors:
        hit = doc.locate(doc.metadata.authors[0].split()[-1], page=1)
        if hit:
            out.append(_mk(doc, ", ".join(doc.metadata.authors[:6]), "authors", 1, hit[0].start))
    return out


def detect_paper_sections(doc: Document) -> list[Section]:
    headings = [(pos + len(line) - len(line.lstrip()), " ".join(line.split()), kind) for pos, line in _lines(doc.text) if (kind := heading_kind(line))]
    found: list[Section] = []
    last_rank = -1
    for start, title, kind in headings:  # pass 1: canonical order
        rank = ORDER.index(kind)
        if rank > last_rank:
            found.append(_mk(doc, title, kind, 1, start))
            last_rank = rank
    have = {s.kind for s in found}
    after = found[0].start if found else 0
    for start, title, kind in headings:  # pass 2: a section placed unusually (BMC: Methods at the end)
        if kind not in have and start > after:
            found.append(_mk(doc, title, kind, 1, start))
            have.add(kind)
    found.sort(key=lambda s: s.start)
    found = _structured_abstract(doc, found)
    return close_spans(doc, _front_matter(doc) + found)


def _structured_abstract(doc: Document, found: list[Section]) -> list[Section]:
    """Add abstract fields; create the abstract section from them when it has no heading."""
    abstract = next((s for s in found if s.kind == "abstract"), None)
    intro = next((s for s in found if s.kind != "abstract"), None)
    lo = abstract.start if abstract else 0
    hi = intro.start if intro else min(len(doc.text), lo + 6000)
    if abstract is None and intro is not None and intro.kind != "introduction":
        hi = min(hi, lo + 6000)
    fields = []
    for pos, line in _lines(doc.text[lo:hi]):
        if line.upper().startswith("ABSTRACT."):
            pos, line = pos + len("ABSTRACT."), line[len("ABSTRACT.") :]
        m = _FIELD_RX.match(line)
        if m and m.group("name")[0].isupper() and (abstract is not None or line[m.end() - 1 : m.end()] in (":", ".")):
            name = m.group("name").lower()
            fields.append(_mk(doc, " ".join(line[: m.end()].split()).rstrip(":"), f"abstract_{_FIELD_TO_KIND[name]}", 2, lo + pos))
    if len({f.kind for f in fields}) < 2:
        return found  # a lone "Background" line is not a structured abstract
    if abstract is None:
        found.insert(0, _mk(doc, "Abstract", "abstract", 1, fields[0].start))
    return found + fields
