"""Bio extractor: title, study design, sample size, population, intervention, outcomes, results, harms,
limitations and funding of a research paper, each with its sentence and page.

Sentences are scanned in document order, with the sections a fact prefers (spec `prefer_sections`,
matched against ingest section kinds or 'ABSTRACT.METHODS:'-style headings) first.
"""

from __future__ import annotations

import re

from m3analyst.domains.facts import Fact
from m3analyst.domains.patterns import first_match
from m3analyst.domains.registry import register_extractor
from m3analyst.domains.spec import DomainSpec
from m3analyst.domains.text import Span, paragraphs, sentences_of, squash
from m3analyst.ingest.model import Document

# Design rules, most specific first: (label, pattern). The first that matches the title/abstract wins.
DESIGNS: list[tuple[str, str]] = [
    ("systematic review and meta-analysis", r"systematic review.{0,40}meta-?analys|meta-?analys.{0,40}systematic review"),
    ("meta-analysis", r"meta-?analys[ie]s"),
    ("systematic review", r"systematic review"),
    ("study protocol", r"^(?:.{0,80}\b)?(?:study|trial) protocol\b(?! was)|protocol for a (randomi|trial|study)"),
    ("randomised crossover trial", r"randomi[sz]ed.{0,40}cross-?over|cross-?over.{0,40}randomi[sz]ed"),
    ("cluster randomised trial", r"cluster[- ]randomi[sz]ed"),
    ("randomised controlled trial", r"randomi[sz]ed,?.{0,60}(controlled|clinical)?\s*trial|randomi[sz]ed controlled|\bRCT\b|randomly (assigned|allocated)|were randomi[sz]ed"),
    ("pilot study", r"pilot (study|trial|intervention)|feasibility (study|trial)"),
    ("prospective cohort study", r"prospective(ly)? (cohort|longitudinal)|longitudinal (cohort )?study|prospective(ly)? (\w+ )?(study|studied|observational)"),
    ("cohort study", r"cohort study|cohort of"),
    ("case-control study", r"case-?control"),
    ("cross-sectional study", r"cross-?sectional"),
    ("crossover study", r"cross-?over"),
]
_DESIGN_MODS = [("double-blind", r"double-?blind"), ("placebo-controlled", r"placebo-?controlled|placebo"), ("multicentre", r"multi-?cent(er|re)")]

_N_WORD = r"(?:patients|participants|subjects|women|men|adults|children|individuals|students|volunteers|infants|persons|people|cases|adolescents|pregnant women|employees|smokers)"
SAMPLE_SIZE = [
    re.compile(rf"\b(?:randomi[sz]ed|randomly (?:assigned|allocated)|enrolled|recruited|included)\s+(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,3}}{_N_WORD}", re.I),
    re.compile(rf"\b(?:total of|overall,?|in all,?)\s+(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,3}}{_N_WORD}", re.I),
    re.compile(rf"\b(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,4}}{_N_WORD}\s+(?:\w+\s+){{0,3}}(?:were|was|had been)?\s*(?:randomi[sz]ed|enrolled|included|recruited|allocated|assigned|analy[sz]ed|participated)", re.I),
    re.compile(r"\b[Nn]\s*=\s*(\d{1,3}(?:,\d{3})+|\d+)\b"),
    re.compile(rf"\b(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,2}}{_N_WORD}\b", re.I),
    re.compile(r"\b(\d+)\s+(?:studies|trials|articles)\s+(?:were\s+)?(?:included|met|identified|eligible)", re.I),
]


def _ordered(doc: Document, sents: list[Span], prefer: list[str]) -> list[Span]:
    """Sentences in the preferred sections first (in the given order), then all in document order."""
    if not prefer:
        return sents
    ranges: list[tuple[int, int]] = []
    for kind in prefer:
        ranges += [(s.start, s.end) for s in doc.sections if s.kind == kind]
        for m in re.finditer(rf"(?im)^\s*(?:ABSTRACT\.)?{re.escape(kind)}[A-Z .]*:?\s*$|^\s*ABSTRACT\.{re.escape(kind)}\w*:", doc.text):
            end = doc.text.find("\n\n", m.end() + 1)
            nxt = re.search(r"(?m)^\s*(?:ABSTRACT|BODY)\.[A-Z]", doc.text[m.end():])
            ranges.append((m.start(), m.end() + nxt.start() if nxt else (end if end > 0 else len(doc.text))))
    first = [s for r in ranges for s in sents if r[0] <= s.start < r[1]]
    seen = {id(s) for s in first}
    return first + [s for s in sents if id(s) not in seen]


def design_of(doc: Document, sents: list[Span]) -> Fact | None:
    """Most specific design named in the title, else in the abstract, else anywhere (rule order = DESIGNS)."""
    head = sents[:40]  # title + abstract when the paper has them (preferred sections come first)
    body = [s for s in sents if "et al" not in s.text]  # not the reference list
    for pool in (sents[:3], head, body):
        text = " ".join(squash(s.text) for s in pool)
        for label, pat in DESIGNS:
            rx = re.compile(pat, re.I)
            if not rx.search(text):
                continue
            hit = next((s for s in pool if rx.search(squash(s.text))), None)
            hit = hit or next(s for s in pool if any(w in s.text.lower() for w in label.split()[:1]))
            mods = [m for m, p in _DESIGN_MODS if re.search(p, " ".join(s.text for s in head), re.I)]
            value = label + (f" ({', '.join(mods)})" if mods and "random" in label else "")
            return Fact("design", value, None, 1.0, None, hit.page, squash(hit.text), "Design")
    return None


def sample_size_of(sents: list[Span]) -> Fact | None:
    for rx in SAMPLE_SIZE:
        for s in sents:
            m = rx.search(squash(s.text))
            if m:
                n = int(m.group(1).replace(",", ""))
                if 5 <= n <= 10_000_000 and not 1900 <= n <= 2030:
                    return Fact("sample_size", float(n), "participants", 1.0, None, s.page, squash(s.text), "Sample size (N)",
                                extra={"match": m.group(0)})
    return None


def title_of(doc: Document) -> Fact | None:
    """The paper's title as ingest read it, cited on the page where its text occurs (None when it does not:
    a PDF's metadata title may name something else)."""
    title = squash(doc.metadata.title or "")
    hit = doc.locate(title) if len(title) >= 10 else []
    if not hit:
        return None
    return Fact("title", title, None, 1.0, None, hit[0].page, squash(doc.text[hit[0].start : hit[0].end]), "Title")


@register_extractor("bio")
def extract_bio(doc: Document, spec: DomainSpec) -> list[Fact]:
    sents = [s for p in paragraphs(doc, min_chars=20) for s in sentences_of(p)]
    out: list[Fact] = []
    for fs in spec.facts:
        ordered = _ordered(doc, sents, list(getattr(fs, "prefer_sections", None) or ["abstract", "methods"]))
        if fs.value == "title":
            f = title_of(doc)
        elif fs.value == "design":
            f = design_of(doc, ordered)
        elif fs.value == "sample_size":
            f = sample_size_of(ordered)
        else:
            hit = first_match(ordered, fs)
            if hit is not None and hit.words < 8:  # "Our study has limitations." -> and what they are
                nxt = next((s for s in sents if s.start > hit.end and s.start - hit.end <= 3), None)
                if nxt is not None and nxt.page == hit.page:
                    hit = Span(hit.start, nxt.end, hit.page, doc.text[hit.start : nxt.end])
            f = Fact(fs.name, squash(hit.text), fs.unit, 1.0, None, hit.page, squash(hit.text), fs.title) if hit else None
        if f is not None:
            f.label = fs.title
            out.append(f)
    return out

