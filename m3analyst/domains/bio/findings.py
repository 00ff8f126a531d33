"""Bio findings: what a study appraisal states, each with its evidence.

- PICO with short values (population, intervention, comparator, outcomes) under "Study at a glance";
- effect estimates (OR / RR / HR / mean difference, with CI and p) and significance statements of the results,
  each with a direction (significantly increased / decreased / no significant difference), under "Main results";
- risk-of-bias cues (random sequence generation, allocation concealment, blinding, intention-to-treat, attrition)
  as flags with the sentence that shows them, under "Risk of bias" (labels follow the Cochrane tool's definitions:
  a described method is low risk, a bare statement or silence unclear, open label / per-protocol only / heavy
  attrition high).
"""

from __future__ import annotations

import re

from m3analyst.domains.bio.effects import LABELS, estimates, percent_changes, read_effect, significance
from m3analyst.domains.bio.sections import in_sections, preferred_first
from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Figure, Finding
from m3analyst.domains.plugins import register_findings
from m3analyst.domains.spec import DomainSpec
from m3analyst.ingest.model import Citation, Document
from m3analyst.text import Span, sentences, squash

GLANCE, RESULTS, BIAS = "Study at a glance", "Main results", "Risk of bias"

_N_WORD = (r"(?:patients|participants|subjects|women|men|adults|children|individuals|students|volunteers|infants|persons|people"
           r"|adolescents|smokers|employees|parents|mothers|nurses|residents|survivors|girls|boys|workers|users|cases|pupils|elderly)")
_POP_HEAD = (r"(?:with|aged|who|undergoing|receiving|scheduled|admitted|diagnosed|attending|from|at|living|having|requiring"
             r"|presenting|recruited|enrolled|in)")
# '300 patients aged 18-65 years who were ASA I-II', 'adults with type 2 diabetes', 'smokers recruited from ...'
_FUNCTION = (r"(?:to|of|for|the|in|on|and|or|by|with|at|from|among|directed|that|these|those|all|our|this|between|analy[sz]\w*"
             r"|compared|retained|included|excluded|lost|remaining|other|fewer|more|less|most|many|some|we|they|\w+ed)\b")
_POPULATION = re.compile(rf"(?P<pop>(?:\b(?:a total of\s+)?[\d,]+\s+)?(?:\b(?!{_FUNCTION})[\w-]+\s+){{0,3}}?\b{_N_WORD}\s+{_POP_HEAD}\b(?!\s+(?:those|these|them|the other)\b)[^.;:]{{3,160}})",
                         re.I)
_POP_END = re.compile(r",?\s+(?:(?:and|who)\s+)?(?:were|was|are|had been|have been|participated|completed|took part|will be|reported|provided"
                      r"|showed|did|had)\b|\s*\[\d|\s+and it\b|\s+\((?![^()]*\d+\s*(?:years|yrs))"
                      r"|,\s+(?:and|with|using|by|in an?|of whom)\b|\s+\((?:n|N)\s*=|\s+(?:and|or)\s+(?:randomi|allocated|assigned)", re.I)
_TITLE_POP = re.compile(rf"\b(?:in|among|for)\s+(?P<pop>(?:[\w-]+\s+){{0,4}}?{_N_WORD}\b(?:\s+{_POP_HEAD}\b[^:;.]{{3,80}})?)", re.I)


def _short(text: str, words: int = 22) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + ("\u2026" if len(parts) > words else "")


_STRONG_HEAD = re.compile(r"^\S+(?:\s+\S+){0,5}?\s+(?:with|aged|who|undergoing|diagnosed|recruited|enrolled|admitted|scheduled|attending"
                          r"|living|having|requiring|presenting)\b", re.I)
_NOT_POP = re.compile(r"\b(?:in|of|from) (?:the |our |this )?(?:intervention|control|case|analysis|study|trial|same|each)\b"
                      r"|\b(?:from|in) (?:January|February|March|April|May|June|July|August|September|October|November|December|\d{4})\b"
                      r"|\b(?:would|should|could|will|might)\b", re.I)


def _population_in(text: str, strong: bool) -> str | None:
    for m in _POPULATION.finditer(text):
        pop = m.group("pop")
        end = _POP_END.search(pop)
        pop = (pop[: end.start()] if end else pop).strip(" ,")
        if (len(pop.split()) >= 3 and not re.match(r"(?:of|the|these|those|all)\b", pop, re.I) and not _NOT_POP.search(pop)
                and (not strong or _STRONG_HEAD.match(pop))):
            return pop
    return None


def population_of(doc: Document, sents: list[Span]) -> tuple[str, Span | None] | None:
    """The study population in a few words and its sentence: the first abstract / methods sentence describing the
    people studied ('N patients aged ... with ...', then 'N people in ...'), cut where the description ends; else
    the title's 'in X' phrase (cited to page 1). Sentences about other studies are skipped."""
    usable = [s for s in sents if not re.search(r"\bet al\b|\bprevious|\bfuture\b|\baim(?:ed|s)?\b|\bobjective|\bpurpose|\bhypothes", s.text, re.I)]
    preferred = in_sections(doc, usable, ["abstract", "methods"])
    for pool in (preferred, sorted(usable, key=lambda s: s.start)[:40]):
        for strong in (True, False):
            for s in pool:
                pop = _population_in(squash(s.text), strong)
                if pop:
                    return _short(pop), s
    title = squash(doc.metadata.title or "")
    m = _TITLE_POP.search(title)
    return (m.group("pop").strip(), None) if m else None


def _cite(doc: Document, span: Span | None, quote: str = "") -> Citation:
    if span is None:
        return Citation.page_only(1, quote)
    return Citation.of_span(doc, span.start, span.end)


def _fact_cite(doc: Document, f: Fact) -> Citation:
    hit = doc.locate(f.source_text) if f.source_text else []
    return Citation.of_span(doc, hit[0].start, hit[0].end) if hit else Citation.page_only(f.page or 1, f.source_text or "")


def pico_findings(doc: Document, facts: list[Fact], sents: list[Span]) -> list[Finding]:
    """Population, intervention, comparator and primary outcome as short values, each with its sentence."""
    out = []
    pop = population_of(doc, sents)
    if pop:
        value, span = pop
        out.append(Finding(f"Population: {value}.", "pico", GLANCE, evidence=[_cite(doc, span, doc.metadata.title or "")],
                           label=value, extra={"element": "population"}))
    names = {"intervention": "Intervention", "comparator": "Comparator", "primary_outcome": "Outcome"}
    by_name = {f.name: f for f in facts}
    for name, title in names.items():
        f = by_name.get(name)
        if f is None or not f.value or len(str(f.value).split()) > 30 or squash(str(f.value)) == squash(f.source_text or ""):
            continue  # no short value was read: the fact table quotes the sentence instead
        out.append(Finding(f"{title}: {squash(str(f.value))}.", "pico", GLANCE, evidence=[_fact_cite(doc, f)],
                           label=squash(str(f.value)), extra={"element": name}))
    return out


# ---- results -----------------------------------------------------------------------------------------

_BASELINE = re.compile(r"\bbaseline (?:characteristics|values|data|differences?)\b|\bat baseline\b|\bdemographic|\bno baseline\b"
                       r"|\b(?:prior to|before) the intervention\b|\bage differences?\b", re.I)


def _outcome_before(sentence: str, start: int, prev_end: int = 0) -> str:
    """What the estimate is about: the words before it, after the previous estimate ('... and also for the
    advanced adenoma (RR ...')."""
    head = re.split(r"[;:]|\.\s", sentence[prev_end:start])[-1]
    head = re.sub(r"^[^A-Za-z]*(?:\)\s*)?,?\s*(?:and|or|but|whereas)?\s*", "", head)
    head = re.sub(r"[(\[,]\s*$", "", head).strip()
    return _short(head, 14) if len(head.split()) >= 2 else _short(re.sub(r"[(\[].*", "", sentence[:start]) or sentence, 12)


def estimate_findings(doc: Document, sents: list[Span], limit: int = 8) -> list[Finding]:
    """Effect estimates with CI / p from the results (abstract first), one finding each, with its direction."""
    out, seen = [], set()
    for s in sents:
        text = squash(s.text)
        if _BASELINE.search(text):
            continue
        prev_end = 0
        for e in estimates(text) + percent_changes(text):
            key, prev, prev_end = (e.kind, e.value, e.low, e.high), prev_end, e.end
            if key in seen or (e.low is None and e.p is None):  # a table cell without its CI or p: not a result to state
                continue
            seen.add(key)
            what = _outcome_before(text, e.start, prev)
            fig = [Figure(f"{e.value:g}%" if e.kind == "PCT" else f"{e.kind} {e.value:g}", e.value, "%" if e.kind == "PCT" else e.kind)]
            if e.low is not None:
                fig += [Figure(f"{e.low:g}", e.low, "CI low"), Figure(f"{e.high:g}", e.high, "CI high")]
            out.append(Finding(f"{what}: {e.shown()} \u2014 {e.label()}.", "effect", RESULTS, fig, [_cite(doc, s)],
                               label=e.label(), extra={"estimate": e.kind, "significant": e.significant()}))
            if len(out) >= limit:
                return out
    return out


# interpretation, not a result: 'was probably related to', 'may reflect', 'sample size was not increased'
_INTERPRETS = re.compile(r"\b(?:probably|possibly|likely|may|might|could|suggests?|explain\w*|power|sample size)\b", re.I)


def statement_findings(doc: Document, sents: list[Span], intervention: str, comparator: str, limit: int = 4) -> list[Finding]:
    """Result sentences of the abstract that state a significant change or its absence without an estimate."""
    out = []
    for s in sents:
        text = squash(s.text)
        if (estimates(text) or percent_changes(text) or _BASELINE.search(text) or _INTERPRETS.search(text)
                or significance(text) is None):
            continue
        r = read_effect(text, intervention, comparator)
        if r is None or r.label not in LABELS:
            continue
        out.append(Finding(f"{_short(r.clause, 30)} \u2014 {r.label}.", "effect", RESULTS, evidence=[_cite(doc, s)],
                           label=r.label, extra={"reason": r.reason}))
        if len(out) >= limit:
            break
    return out


# ---- risk of bias ------------------------------------------------------------------------------------

# (domain, [(label, pattern, what the label means)]) in order: the first pattern found decides
BIAS_RULES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("Random sequence generation", [
        ("low risk", r"computer[- ]generated|random[- ]number|(?:block|stratified|permuted|minimi[sz]ation)\b.{0,40}randomi|randomi[sz]ation (?:list|schedule|sequence)"
                     r"|coin toss|drawing lots|randomi[sz]ed (?:using|by|with) (?:a |an )?(?:computer|software|random|block|sealed)", "the method is described"),
        ("unclear", r"\brandomi[sz]ed\b|\brandomly (?:assigned|allocated|divided)", "randomised; the method is not described"),
    ]),
    ("Allocation concealment", [
        ("low risk", r"(?:sealed|opaque|sequentially numbered)\b.{0,30}envelopes?|central(?:ised|ized)? (?:randomi|allocation)|allocation (?:was )?conceal"
                     r"|concealed allocation|interactive (?:voice|web)|pharmacy[- ]controlled|web-based randomi|independent (?:statistician|person)"
                     r"|(?:completely |fully )?automated\b.{0,60}(?:randomi|allocat|assign)|(?:randomi|allocat)\w*\b.{0,80}\bautomated|no experimenter involvement",
         "concealment is described"),
    ]),
    ("Blinding", [
        ("high risk", r"\bopen[- ]label\b|\bunblinded\b|\bnot (?:be )?blinded\b|\bno blinding\b|\bwere aware of (?:the )?(?:group|allocation)", "participants or assessors knew the allocation"),
        ("low risk", r"\b(?:double|triple)[- ]?(?:blind(?:ed)?|mask(?:ed)?)\b|\bplacebo[- ]controlled\b"
                     r"|\b(?:participants|patients)\b[^.;]{0,80}\b(?:were|was) (?:masked|blinded)\b", "participants (and assessors) were blinded"),
        ("unclear", r"\bsingle[- ]?blind(?:ed)?\b|\b(?:assessors?|raters?|investigators?|outcome assessment) (?:were |was )?(?:blind|masked)|\bblinded\b", "partly blinded"),
    ]),
    ("Intention-to-treat analysis", [
        ("low risk", r"\binten(?:tion|t)[- ]to[- ]treat\b|\bITT\b", "analysed as randomised"),
        ("high risk", r"\bper[- ]protocol\b|\bcompleters?\b(?:[- ]only)? analys", "only those who completed were analysed"),
    ]),
    ("Attrition", [
        ("reported", r"\blost to follow[- ]?up\b|\bdrop(?:ped)?[- ]?outs?\b|\bwithdr[ae]w\b|\bdiscontinued\b|\bcompleted (?:the|follow)|\battrition\b|\bretention\b",
         "losses to follow-up are reported"),
    ]),
]
_PERCENT_LOST = re.compile(r"(\d+(?:\.\d+)?)\s*%\)?\s*(?:\w+\s+){0,4}?(?:were\s+)?(?:lost|dropped|withdr|discontinu|did not complete)", re.I)


def _bias_flag(doc: Document, sents: list[Span], domain: str, rules: list[tuple[str, str, str]]) -> Finding:
    for label, pattern, meaning in rules:
        rx = re.compile(pattern, re.I)
        hits = [s for s in sents if rx.search(squash(s.text)) and not re.search(r"\bet al\b|\bprevious", s.text) and s.words <= 80]
        hit = next((s for s in hits if _PERCENT_LOST.search(squash(s.text))), hits[0] if hits else None)
        if hit is None:
            continue
        text = squash(hit.text)
        lost = _PERCENT_LOST.search(text)
        if domain == "Attrition" and lost and float(lost.group(1)) >= 20:
            label, meaning = "high risk", f"{lost.group(1)}% lost (20% or more)"
        return Finding(f"{domain}: {label} \u2014 {meaning}.", "bias", BIAS, evidence=[_cite(doc, hit)], label=label,
                       extra={"domain": domain})
    return Finding(f"{domain}: unclear \u2014 not reported.", "bias", BIAS, label="unclear", extra={"domain": domain})


_NOT_TRIAL = re.compile(r"meta-?analys|systematic review|cohort|cross-sectional|case-control|observational|longitudinal|protocol", re.I)


def bias_findings(doc: Document, sents: list[Span], design: str = "") -> list[Finding]:
    """The risk-of-bias flags of a randomised trial; for another design, one finding saying they do not apply."""
    if design and _NOT_TRIAL.search(design) and not re.search(r"randomi", design, re.I):
        return [Finding(f"Risk-of-bias flags for randomised trials do not apply: the design is {design}.", "bias", BIAS,
                        label="not applicable", extra={"domain": "all"})]
    return [_bias_flag(doc, sents, domain, rules) for domain, rules in BIAS_RULES]


def _results_first(doc: Document, sents: list[Span]) -> list[Span]:
    """Abstract results, then results sections, then the rest (methods and discussion last)."""
    first = in_sections(doc, sents, ["abstract_results", "results", "abstract"])
    ids = {id(s) for s in first}
    return first + [s for s in sents if id(s) not in ids]


@register_findings("bio")
def bio_findings(doc: Document, spec: DomainSpec, facts: list[Fact]) -> list[Finding]:
    """PICO, results with direction, risk-of-bias flags (see the module docstring)."""
    sents = [s for s in sentences(doc) if s.words >= 4]
    by_name = {f.name: str(f.value) for f in facts}
    ordered = preferred_first(doc, sents, ["abstract", "methods"])
    results = _results_first(doc, sents)
    found = pico_findings(doc, facts, ordered)
    found += estimate_findings(doc, results)
    in_results = in_sections(doc, sents, ["abstract_results", "results"])
    found += statement_findings(doc, in_results, by_name.get("intervention", ""), by_name.get("comparator", ""))
    found += bias_findings(doc, ordered, by_name.get("design", ""))
    return found


__all__ = ["BIAS", "BIAS_RULES", "GLANCE", "RESULTS", "bias_findings", "bio_findings", "estimate_findings", "pico_findings",
           "population_of", "statement_findings"]
