"""Bio extractor: title, study design, sample size, population, intervention, outcomes, results, harms,
limitations and funding of a research paper, each with its sentence and page.

Sentences are scanned in document order, with the sections a fact prefers (spec `prefer_sections`,
matched against ingest section kinds and their sub-kinds, or 'ABSTRACT.METHODS:'-style headings) first.
What a fact's value is comes from its spec `value:` (VALUE_READERS): `design` (the paper's own design
statement), `sample_size` (N randomised / enrolled), `arm` (intervention or comparator arm parsed from the
allocation sentence), `outcome` (what the primary outcome is), `title`, or `text` (the sentence).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from m3analyst.domains.bio.sections import in_sections, preferred_first
from m3analyst.domains.facts import Fact
from m3analyst.domains.patterns import first_match
from m3analyst.domains.plugins import register_extractor
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.ingest.model import Document
from m3analyst.text import Span, sentences, squash

# Design rules, most specific first: (label, pattern). The first that matches the title/abstract wins.
DESIGNS: list[tuple[str, str]] = [
    ("systematic review and meta-analysis", r"systematic review.{0,40}meta-?analys|meta-?analys.{0,40}systematic review"),
    ("meta-analysis", r"meta-?analys[ie]s"),
    ("systematic review", r"systematic review"),
    ("study protocol", r"^(?:.{0,80}\b)?(?:study|trial) protocol\b(?! was)|protocol (for|of) an? (randomi|trial|study|\w+ trial)"),
    ("randomised crossover trial", r"randomi[sz]ed.{0,40}cross-?over|cross-?over.{0,40}randomi[sz]ed"),
    ("cluster randomised trial", r"cluster[- ]randomi[sz]ed"),
    ("randomised controlled trial", r"randomi[sz]ed,?.{0,60}(controlled|clinical)?\s*trial|randomi[sz]ed controlled|\bRCT\b"
                                    r"|randomly (assigned|allocated|divided|distributed)|were randomi[sz]ed|randomi[sz]ed (in)?to\b"),
    ("pilot study", r"pilot (study|trial|intervention)|feasibility (study|trial)"),
    ("prospective cohort study", r"prospective(ly)? (cohort|longitudinal)|longitudinal (cohort )?study|prospective(ly)? (observational|studied)"),
    ("cohort study", r"cohort study|cohort of"),
    ("case-control study", r"case-?control"),
    ("cross-sectional study", r"cross-?sectional"),
    ("crossover study", r"cross-?over"),
    ("prospective study", r"prospective(ly)? ([\w-]+ ){0,2}study"),
]
_DESIGN_MODS = [("double-blind", r"double-?blind"), ("placebo-controlled", r"placebo-?controlled|placebo"), ("multicentre", r"multi-?cent(er|re)")]

_N_WORD = (r"(?:patients|participants|subjects|women|men|adults|children|individuals|students|volunteers|infants|persons|people"
           r"|cases|adolescents|pregnant women|employees|smokers|relatives|parents|mothers|caregivers|carers|nurses|physicians"
           r"|pupils|residents|survivors|respondents|families|households|couples|neonates|newborns|girls|boys|athletes|workers)")
SAMPLE_SIZE = [
    re.compile(rf"\b(?:randomi[sz]ed|randomly (?:assigned|allocated)|enrolled|recruited|included)\s+(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,3}}{_N_WORD}", re.I),
    re.compile(rf"\b(?:total of|overall,?|in all,?)\s+(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,3}}{_N_WORD}", re.I),
    re.compile(rf"\b(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,4}}{_N_WORD}\s+(?:\w+\s+){{0,3}}(?:were|was|had been)?\s*(?:randomi[sz]ed|enrolled|included|recruited|allocated|assigned|analy[sz]ed|participated)", re.I),
    re.compile(r"\b[Nn]\s*=\s*(\d{1,3}(?:,\d{3})+|\d+)\b"),
    re.compile(rf"\b(\d{{1,3}}(?:,\d{{3}})+|\d+)\s+(?:\w+\s+){{0,2}}{_N_WORD}\b", re.I),
    re.compile(r"\b(\d+)\s+(?:studies|trials|articles)\s+(?:were\s+)?(?:included|met|identified|eligible)", re.I),
]


# ---- design: the paper's own statement of its design wins over mentions of other studies ------------

# Words that describe a study design; a run of them before a head noun is the paper's design phrase.
_DESIGN_WORD = (r"(?:prospective|retrospective|(?:non-?|quasi-?|cluster-?)?randomi[sz]ed|(?:double|single|triple)-?blind(?:ed)?"
                r"|blind(?:ed)?|masked|open(?:-label)?|(?:placebo-?)?controlled|uncontrolled|clinical|parallel(?:-group)?"
                r"|pragmatic|exploratory|multi-?cent(?:er|re)|single-?cent(?:er|re)|multi-?site|pilot|feasibility|cross-?over"
                r"|cohort|case-?control|cross-?sectional|observational|interventional|longitudinal|comparative"
                r"|single-?(?:group|arm)|(?:two|three|four|2|3|4)-?arm|quasi-?experimental|online|factorial|non-?inferiority"
                r"|equivalence|population-based|community-based|nested|systematic|descriptive|experimental"
                r"|phase (?:I{1,3}V?|IV|[1-4])(?:/(?:I{1,3}|[1-4]))?)")
_DESIGN_HEAD = r"(?:(?:study|trial) design|study|trial|design|review|meta-?analysis|survey|experiment)"
_ONE_PHRASE = (rf"(?:{_DESIGN_WORD}(?:,?\s+(?:and\s+)?|\s+and\s+))*{_DESIGN_WORD}\s+{_DESIGN_HEAD}"
               rf"|meta-?analysis(?:\s+of\s+(?:[\w-]+\s+){{0,3}}?(?:studies|trials))?")
# one phrase, or two joined by 'and' ("feasibility study and pilot cluster-randomised controlled trial")
DESIGN_PHRASE = re.compile(rf"\b(?:{_ONE_PHRASE})(?:\s+and\s+(?:a\s+)?(?:{_ONE_PHRASE}))?", re.I)
# A sentence where the paper speaks of itself; one about other / future work is not.
_SELF = re.compile(r"\b(?:this|the present|the current|our)\b(?:\s+[\w-]+){0,6}\s+(?:study|trial|design|review|analysis)"
                   r"|\bwe (?:conducted|did|performed|carried out|undertook|designed|report)|^(?:in|using|it is|this is|this was) an?\b"
                   r"|\b(?:design|setting|methods?)\s*:|\b(?:was|were) (?:conducted|carried out|performed|done|used)\b"
                   r"|\b(?:were|was) (?:randomi[sz]ed|randomly)|\brandomly (?:assigned|allocated|divided)", re.I)
_NOT_SELF = re.compile(r"\b(?:required|needed|warranted|future|should|would|previous(?:ly)?|prior|et al|is planned)\b", re.I)


def _self_statements(doc: Document, sents: list[Span], limit: int = 8) -> list[Span]:
    """The title, then up to `limit` sentences (preferred sections first) in which the paper states what it is."""
    out = [Span(0, 0, 1, doc.metadata.title)] if doc.metadata.title and len(doc.metadata.title) >= 10 else []
    for s in sents:
        t = squash(s.text)
        if _SELF.search(t) and not _NOT_SELF.search(t):
            out.append(s)
            if len(out) > limit:
                break
    return out


def design_phrase(spans: list[Span]) -> tuple[str, Span] | None:
    """The paper's own design phrase with the most words ('prospective double-blinded randomized study');
    the earliest wins a tie. None when no sentence names a design in those words."""
    best: tuple[int, str, Span] | None = None
    for s in spans:
        for m in DESIGN_PHRASE.finditer(squash(s.text)):
            n = len(m.group(0).split())
            if best is None or n > best[0]:
                best = (n, m.group(0), s)
    return (best[1], best[2]) if best else None


def _label(pool: list[Span]) -> tuple[str, Span] | None:
    """The first DESIGNS label whose rule matches the pool's text (joined: 'randomised ... cross-over' may span
    two sentences), with the first sentence naming it."""
    text = " ".join(squash(s.text) for s in pool)
    for label, pat in DESIGNS:
        rx = re.compile(pat, re.I)
        if rx.search(text):
            hit = next((s for s in pool if rx.search(squash(s.text))), None)
            return label, hit or next((s for s in pool if label.split()[0] in s.text.lower()), pool[0])
    return None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z]+", " ", text.lower().replace("randomiz", "randomis")).strip()


def design_of(doc: Document, sents: list[Span]) -> Fact | None:
    """The design as the paper states it about itself (title, abstract 'Methods:' sentences, 'In this ...
    trial'): its own design phrase, led by the rule label (rule order = DESIGNS) when the phrase's sentence
    (or else the phrase, or else the other self-statements unless the phrase is the title's) adds one it
    lacks. Only when no self-statement names a design: the label from the first 40 sentences, else anywhere
    outside the references, with the double-blind / placebo / multicentre modifiers of the head."""
    own = _self_statements(doc, sents)
    phrase = design_phrase(own)
    if phrase is None:
        found = _label(own) or _label(sents[:40]) or _label([s for s in sents if "et al" not in s.text])
        if found is None:
            return None
        label, hit = found
        mods = [m for m, p in _DESIGN_MODS if re.search(p, " ".join(s.text for s in sents[:40]), re.I)]
        value = label + (f" ({', '.join(mods)})" if mods and "random" in label else "")
    else:
        words, hit = phrase
        words = words.lower() if hit.end == 0 and words.istitle() else words  # 'Randomized Controlled Trial' in a title
        found = _label([hit]) or _label([Span(hit.start, hit.end, hit.page, words)])
        if found is None and hit.end > 0:  # not the title: the paper's other statements about itself
            found = _label(own)
        label = found[0] if found else None
        if label is None or set(_norm(label).split()) <= set(_norm(words).split()):  # the paper's words say it all
            value = words
        elif set(_norm(words).split()) <= set(_norm(label).split()):  # they add nothing to the label
            value = label
        else:
            value = f"{label} ({words})"
    if hit.end == 0:  # the title: cite where its text is
        loc = doc.locate(squash(doc.metadata.title))
        if not loc:
            return None
        hit = Span(loc[0].start, loc[0].end, loc[0].page, doc.text[loc[0].start : loc[0].end])
    return Fact("design", value, None, 1.0, None, hit.page, squash(hit.text), "Design", extra={"label": label})


# ---- sample size: the number randomised / allocated / enrolled, from the abstract first ----------------

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
          "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_NUM = (rf"(?:(?:{'|'.join(_UNITS[1:10])})\s+hundred(?:\s+and)?\s+)?"
             rf"(?:(?:{'|'.join(_TENS[2:])})(?:[- ](?:{'|'.join(_UNITS[1:10])}))?|{'|'.join(_UNITS[10:])})\b")
NUM = rf"(\d{{1,3}}(?:[,\u2009\u202f ]\d{{3}})+\b|\d+|{_WORD_NUM})"  # '4,613', '12 092', 'Sixty'


def parse_count(text: str) -> int | None:
    """'4,613' -> 4613, 'Sixty' -> 60, 'Twenty-two' -> 22, 'one hundred and twenty' -> 120 (None if neither)."""
    t = re.sub(r"(?<=\d)[,\u2009\u202f ](?=\d{3})", "", text.lower()).strip()
    if t.isdigit():
        return int(t)
    total, words = 0, re.split(r"[\s-]+", t)
    for w in words:
        if w in _UNITS:
            total += _UNITS.index(w)
        elif w in _TENS:
            total += _TENS.index(w) * 10
        elif w == "hundred":
            total *= 100
        elif w != "and":
            return None
    return total or None


_ALLOC = r"(?:randomi[sz]ed?|randomly (?:assign(?:ed)?|allocated?|divided|distributed)|allocated|assigned)"
_ENROL = r"(?:enrolled|recruited|included|participated|took part)"
_FILLER = r"(?:(?!(?:were|was|had)\b)[\w(),-]+\s+)"  # words between 'N patients' and 'were randomised': no other verb
_NOT_UNIT = r"(?!(?:studies|trials|articles|publications|reports|papers|centres|centers|sites|schools)\b)"  # '31 studies'
# (tier, pattern): lower tiers are the number who entered the trial; higher ones are weaker hints.
SAMPLE_SIZE_TIERS: list[tuple[int, re.Pattern]] = [
    (0, re.compile(rf"\b{_ALLOC}\s+(?:a total of\s+)?{NUM}\s+(?:[\w-]+\s+){{0,3}}{_N_WORD}", re.I)),
    (0, re.compile(rf"\b{NUM}\s+(?:[\w-]+\s+){{0,3}}{_N_WORD},?\s+{_FILLER}{{0,12}}?(?:were|was|had been)\s+"
                   rf"(?:\w+\s+){{0,2}}?{_ALLOC}", re.I)),
    (0, re.compile(rf"\b{_N_WORD}\s*\(\s*N\s*=\s*{NUM}\s*\)\s*(?:were|was)\s+(?:\w+\s+){{0,2}}?{_ALLOC}", re.I)),
    (1, re.compile(rf"\b(?:{_ENROL}|conducted (?:on|in|among|with))\s+(?:a total of\s+)?{NUM}\s+"
                   rf"(?:{_NOT_UNIT}[\w-]+\s+){{0,5}}{_N_WORD}", re.I)),
    (1, re.compile(rf"\b{NUM}\s+(?:[\w-]+\s+){{0,3}}{_N_WORD},?\s+{_FILLER}{{0,12}}?(?:were|was|had been)\s+"
                   rf"(?:\w+\s+){{0,2}}?{_ENROL}", re.I)),
    (1, re.compile(rf"\b(?:participants|patients|subjects|sample)\s*:\s*{NUM}\b", re.I)),
    (1, re.compile(rf"\b(?:corresponded to|compris(?:ed|ing)|totall?ing|data (?:from|on)"
                   rf"|(?:studies|trials) (?:with|involving|including|of))\s+{NUM}\s+(?:[\w-]+\s+){{0,3}}{_N_WORD}", re.I)),
    (2, re.compile(rf"\b(?:total of|overall,?|in all,?)\s+{NUM}\s+(?:[\w-]+\s+){{0,3}}{_N_WORD}", re.I)),
    *[(3, rx) for rx in SAMPLE_SIZE],
]
# a planned or required number (power calculation), not the number who took part
_PLANNED = re.compile(r"\b(?:power|planned|target|to detect|required|would)\b", re.I)
# a count of a subset ('Of those randomised, 206 ...', '53 were analysed'), not of those who entered
_SUBSET_BEFORE = re.compile(r"\b(?:of (?:the|these|those|whom|them)|among (?:the|these|them)|of all)(?:\s+[^.;,]{0,40}?,)?\s*$", re.I)
_SUBSET_AFTER = re.compile(r"^\W*(?:\w+\W+){0,6}?(?:were\s+)?(?:analy[sz]ed|completed|lost|excluded|withdr[ae]w|dropped|died|followed)",
                           re.I)


def _share_of_n(text: str, m: re.Match) -> bool:
    """'51.2% (n = 7,230) female': the count is a share of N."""
    return bool(re.search(r"\d\s*%\s*,?\s*\(?\s*$", text[: m.start(0)]))


def _counted_by_studies(text: str, m: re.Match) -> bool:
    """'Two studies included 50 patients': patients of some included studies, not of the paper."""
    return bool(re.match(_ENROL, m.group(0), re.I) and re.search(r"\b(?:studies|trials|articles)\s*$", text[: m.start(0)]))


def _subset(text: str, m: re.Match) -> bool:
    after = _SUBSET_AFTER.search(text[m.end(1) :]) and "randomi" not in m.group(0).lower()
    return bool(_SUBSET_BEFORE.search(text[: m.start(1)]) or after)


def _count_in(s: Span, rx: re.Pattern, subsets: bool = False) -> tuple[int, re.Match] | None:
    """The first plausible count `rx` finds in the sentence; counts of subsets are skipped unless `subsets`."""
    text = squash(s.text)
    if _PLANNED.search(text):
        return None
    skips = [_share_of_n, _counted_by_studies] + ([] if subsets else [_subset])
    for m in rx.finditer(text):
        n = parse_count(m.group(1))
        if n is None or not 5 <= n <= 10_000_000 or 1900 <= n <= 2030:
            continue
        if not any(skip(text, m) for skip in skips):
            return n, m
    return None


def sample_size_of(doc: Document, sents: list[Span]) -> Fact | None:
    """N randomised or enrolled: the abstract's allocation/enrolment counts first, then the methods' and
    results', then the older anywhere-rules (tier order within each pool)."""
    pools = [(in_sections(doc, sents, ["abstract"]), 2), (in_sections(doc, sents, ["methods", "results"]), 2), (sents, 3)]
    for pool, max_tier in pools:
        for tier, rx in SAMPLE_SIZE_TIERS:
            if tier > max_tier:
                continue
            for s in pool:
                got = _count_in(s, rx, subsets=tier >= 3)  # the old anywhere-rules keep analysed counts
                if got:
                    n, m = got
                    return Fact("sample_size", float(n), "participants", 1.0, None, s.page, squash(s.text), "Sample size (N)",
                                extra={"match": m.group(0)})
    return None


# ---- arms: intervention and comparator(s) read out of the allocation sentence ------------------------

@dataclass(frozen=True)
class Arms:
    """The arms one allocation sentence names: the intervention first, then the comparators in order."""

    intervention: str
    comparators: tuple[str, ...]
    form: str  # the ARM_FORMS entry that read them


_ALLOC_VERB = r"(?:randomi[sz]ed|randomly (?:assigned|allocated|divided|distributed)|assigned|allocated|divided|distributed)"
_RECEIVE = r"(?:received|receive|receiving|were given|given|treated with|underwent)"
_USED = r"(?:was|were) (?:used|given|administered|applied|performed|delivered)"
# (form, regex, split a bare 'X and Y'?): tried in order on each candidate sentence; groups a/b or `list`.
ARM_FORMS: list[tuple[str, re.Pattern, bool]] = [
    ("groups receiving", re.compile(
        rf"\b(?:groups|arms)\b[^.;]{{0,40}}?\b(?:receiving|who {_RECEIVE}|that received|to receive|{_RECEIVE})"
        r"\s+(?:either\s+)?(?P<list>.+)", re.I), False),
    ("received either", re.compile(
        r"\b(?:received|receive|were given|were treated with|underwent)\s+either\s+(?P<list>.+)", re.I), False),
    ("allocated to", re.compile(
        rf"\b{_ALLOC_VERB}\b(?:\s+(?:a total of\s+)?[\d,]+\s+(?:[\w-]+\s+){{0,3}}?{_N_WORD})?"
        r"\s+(?:in)?to\s+(?:receive\s+|either\s+|one of\s+)*(?P<list>.+)", re.I), True),
    ("X used in, Y used in", re.compile(
        rf"^(?P<a>[^,;]+?)\s+{_USED}\s+(?:in|on)\s+(?:\d|the\s+[\w-]+\s+group|group)[^;]*?,?"
        rf"\s+(?:and|while|whereas)\s+(?P<b>[^,;]+?)\s+{_USED}\b", re.I), False),
    ("received X compared with Y", re.compile(
        r"\b(?:received|receiving)\s+(?P<a>[^;]+?)\s+(?:compared (?:with|to)|versus|vs\.?)\s+"
        rf"[^;]*?\b(?:who {_RECEIVE}|receiving)\s+(?P<b>.+)", re.I), False),
    ("enumerated arms", re.compile(r"\b(?:arms?|groups?|conditions?)\b[^;]{0,60}?\((?:i|1|a)\)\s*(?P<list>.+)", re.I), False),
]
# where an arm's text ends: the rest of the sentence is about something else
_ARM_END = re.compile(
    r"\s*(?:[;:]|\.(?:\s|$)|,?\s+respectively\b|,\s+(?:with|which|who|where|while|whereas|using|and (?:then|all|were))\b"
    r"|\s+in an? (?:[\w-]+ ){0,4}(?:trial|study|design|fashion|manner|ratio)\b|\s+using\b"
    r"|\s+for \d+ (?:days?|weeks?|months?|years?)\b|\s+to (?:attach|prevent|treat|reduce|compare)\b"
    r"|\s+(?:with|using) (?:a |the )?(?:random|computer|block|sealed)\b)", re.I)
# parentheticals that are counts or labels, not arm content: (n = 324), (1:1), (Group D0.15), (glue group), (47 eyes)
_ARM_NOISE = re.compile(r"\s*\((?:[nN]\s*=|\d+\s*:\s*\d+|ratio|group\b|[^()]{0,20}\bgroups?\)|\d+(?:\.\d+)?\s*%"
                        r"|\d+\s+(?:eyes|patients|participants))[^()]*\)", re.I)
# words before an arm's name: 'to receive', 'either', 'treatment with', '116 were allocated to', 'the'
_ARM_LEAD = re.compile(
    r"^(?:(?:\d+(?:\s+[\w-]+){0,2}?(?:\s+(?:were|was))?(?:\s+(?:randomly\s+)?(?:randomi[sz]ed|allocated|assigned))?(?=\s+to\b)"
    r"|additionally|also|to|receive|either|treatment with|treated with|(?:self-)?administer(?:ed)?|the|a|an|or|and|with)\s+)+", re.I)
# a sentence about a trial still to be done or done by others: its arms are not this paper's
_OTHER_TRIAL = re.compile(r"\b(?:is|are|be) (?:required|needed|warranted)\b|\b(?:should|would|previous(?:ly)?|et al|future)\b", re.I)
CONTROL_ARM = re.compile(r"\b(?:placebo|control|usual care|standard (?:care|treatment|therapy)|sham|no[- ](?:intervention|treatment)"
                         r"|wait(?:ing)?[- ]?list|information[- ]only|measurement[- ]only|saline|vehicle|routine care|conventional)\b", re.I)
_GENERIC_ARM = re.compile(r"^(?:the )?(?:intervention|treatment|experimental|active|study|trial)(?: (?:group|arm|condition)s?)?$", re.I)


def _listable(piece: str) -> bool:
    """A comma piece that can be an arm of a list: at most 10 words, one of them a plain word ('once-daily, 28-mg,
    extended-release memantine' is one arm)."""
    return len(piece.split()) <= 10 and bool(re.search(r"(?<![\w-])[A-Za-z]{3,}(?![\w-])", piece))


def _split_arms(text: str, and_split: bool) -> list[str]:
    """'X or Y', 'X versus Y', 'X, Y, and Z', '(i) X and (ii) Y' and (when `and_split`) 'X and Y' -> arm texts."""
    text = _ARM_NOISE.sub("", text)
    if re.match(r"(?:i|1|a)\)", text) or re.search(r"\((?:ii|2|b)\)", text):
        first = re.search(r"\((?:i|1|a)\)\s*", text)
        text = text[first.end() :] if first else text  # not the header before '(1)'
        parts = re.split(r",?\s*(?:and|or)?\s*\((?:ii|iii|iv|2|3|4|b|c|d)\)\s*", text)
    else:
        m = _ARM_END.search(text)
        text = text[: m.start()] if m else text
        if re.search(r"\s(?:or|versus|vs\.?)\s", text):
            parts = re.split(r",?\s+(?:or|versus|vs\.?)\s+", text)
            listed = re.split(r",\s*", parts[0])
            if len(listed) > 1 and all(_listable(p) for p in listed):  # 'X, Y, or Z'
                parts = listed + parts[1:]
        elif "," in text and re.search(r"(?:,\s*|\s)and\s+[^,]+$", text):  # 'X, Y(,) and Z'
            parts = re.split(r",\s*(?:and\s+|or\s+)?|\s+and\s+(?=[^,]*$)", text)
            parts = parts if all(_listable(p) for p in parts) else [text]
        else:
            parts = re.split(r"\s+and\s+", text) if and_split else [text]
            if len(parts) > 1 and any(len(p.split()) > 5 or re.match(r"\w+ed\b", p) for p in parts):  # 'and' joins clauses
                parts = [text]
    arms = []
    for part in parts:
        m = _ARM_END.search(part)
        part = _ARM_LEAD.sub("", (part[: m.start()] if m else part).strip(" ,.;"))
        if part:
            arms.append(part)
    return arms


_NOT_ARM = re.compile(r"(?:it|them|this|these|those|one|each|both)|(?:\d+|two|three|four|five)\s+(?:equal\s+)?(?:groups|arms)\b.*", re.I)


def _plausible(arms: list[str]) -> bool:
    """Two or more arms of 1-20 words, none a pronoun, a group count ('3 groups namely ...') or cut inside
    brackets, and an intervention that says more than 'intervention group'."""
    return (len(arms) >= 2 and all(1 <= len(a.split()) <= 20 and a.count("(") == a.count(")") for a in arms)
            and not _GENERIC_ARM.match(arms[0]) and not any(_NOT_ARM.fullmatch(a) for a in arms))


def parse_arms(sentence: str) -> Arms | None:
    """The arms of an allocation sentence ('randomised to receive X or Y', 'three groups receiving X, Y and Z',
    'X was used in ..., and Y in ...', 'received X compared with ... who received Y', '(i) X and (ii) Y').
    The intervention is the first arm that is not a control (placebo, usual care, ...); None when no form reads
    two plausible arms: the caller then quotes the sentence instead of guessing."""
    text = re.sub(r"^(?:[A-Z][A-Z .&/]*\.)?[A-Z][A-Za-z &/]{0,40}::?\s+", "", squash(sentence))  # 'ABSTRACT.METHODS:: '
    text = _ARM_NOISE.sub("", text)
    for form, rx, and_split in ARM_FORMS:
        m = rx.search(text)
        if m is None or (form == "allocated to" and not re.search(r"random", text, re.I)):
            continue
        raw = m.group("list") if "list" in rx.groupindex else None
        arms = _split_arms(raw, and_split) if raw is not None else [a for g in ("a", "b") for a in _split_arms(m.group(g), False)[:1]]
        if not _plausible(arms):
            continue
        active = [a for a in arms if not CONTROL_ARM.search(a)] or arms
        first = active[0]
        return Arms(first, tuple(a for a in arms if a is not first), form)
    return None


def arms_of(doc: Document, sents: list[Span]) -> tuple[Arms, Span] | None:
    """The first sentence (preferred sections first) whose arms parse_arms can read, with its arms."""
    for s in sents:
        if _OTHER_TRIAL.search(s.text):
            continue
        arms = parse_arms(s.text)
        if arms is not None:
            return arms, s
    return None


def title_of(doc: Document) -> Fact | None:
    """The paper's title as ingest read it, cited on the page where its text occurs (None when it does not:
    a PDF's metadata title may name something else)."""
    title = squash(doc.metadata.title or "")
    hit = doc.locate(title) if len(title) >= 10 else []
    if not hit:
        return None
    return Fact("title", title, None, 1.0, None, hit[0].page, squash(doc.text[hit[0].start : hit[0].end]), "Title")


def _arm_fact(doc: Document, fs: FactSpec, sents: list[Span], ordered: list[Span]) -> Fact | None:
    """Spec `arm: intervention` or `arm: comparator`: the arm text read from the allocation sentence of the
    abstract / methods (the fact's source = that sentence). When no sentence parses, the intervention fact
    quotes the first sentence matching the spec's patterns; the comparator is then left out, never guessed."""
    which = getattr(fs, "arm", "intervention")
    found = arms_of(doc, ordered)
    if found is not None:
        arms, s = found
        value = arms.intervention if which == "intervention" else "; ".join(arms.comparators)
        return Fact(fs.name, value, fs.unit, 1.0, None, s.page, squash(s.text), fs.title, extra={"form": arms.form})
    if which != "intervention":
        return None
    hit = first_match(ordered, fs)
    return Fact(fs.name, squash(hit.text), fs.unit, 1.0, None, hit.page, squash(hit.text), fs.title) if hit else None


def _sentence_fact(doc: Document, fs: FactSpec, sents: list[Span], ordered: list[Span]) -> Fact | None:
    hit = first_match(ordered, fs)
    if hit is not None and hit.words < 8:  # "Our study has limitations." -> and what they are
        nxt = next((s for s in sents if s.start > hit.end and s.start - hit.end <= 3), None)
        if nxt is not None and nxt.page == hit.page:
            hit = Span(hit.start, nxt.end, hit.page, doc.text[hit.start : nxt.end])
    return Fact(fs.name, squash(hit.text), fs.unit, 1.0, None, hit.page, squash(hit.text), fs.title) if hit else None


_OUTCOME_IS = re.compile(r"\b(?:primary|main) (?:efficacy )?(?:outcome|end[- ]?point)s?(?: measures?)?"
                         r"(?:\s*\((?P<paren>[^()]{3,120})\)"
                         r"|\s+(?:was|were|is|are|included)\s+(?:taken as\s+|defined as\s+)?(?P<v>[^;]+))", re.I)
_OUTCOME_IF = re.compile(r"\b(?:if|when|whether|unless|since|as|because)\s+(?:the\s+|a\s+|our\s+)?$", re.I)  # 'Since the ... is binary'


def outcome_value(sentence: str) -> str | None:
    """'The primary outcome was X.' -> 'X'; 'the primary outcome measure (X)' -> 'X'; else None."""
    text = squash(sentence)
    m = _OUTCOME_IS.search(text)
    if m is None or _OUTCOME_IF.search(text[: m.start()]):
        return None
    v = m.group("paren") or re.sub(r"(?<=[A-Za-z)])\.?\d{0,2}\s*$", "", m.group("v")).strip(" .,")  # drop a glued reference number
    return v if len(v.split()) >= 1 and not re.match(r"(?:to|that|which|not|also)\b", v, re.I) else None


def _outcome_fact(doc: Document, fs: FactSpec, sents: list[Span], ordered: list[Span]) -> Fact | None:
    f = _sentence_fact(doc, fs, sents, ordered)
    if f is not None:
        f.value = outcome_value(f.source_text) or f.value
    return f


def _population_fact(doc: Document, fs: FactSpec, sents: list[Span], ordered: list[Span]) -> Fact | None:
    """The population in a few words ('adults with type 2 diabetes aged 40-70'), its sentence the source; else the
    sentence the spec's patterns find."""
    from m3analyst.domains.bio.findings import population_of

    found = population_of(doc, ordered)
    if found is None or found[1] is None:
        return _sentence_fact(doc, fs, sents, ordered)
    value, s = found
    return Fact(fs.name, value, fs.unit, 1.0, None, s.page, squash(s.text), fs.title)


# spec `value:` -> reader(doc, fact spec, sentences in document order, sentences in preferred order)
VALUE_READERS: dict[str, Callable[[Document, FactSpec, list[Span], list[Span]], Fact | None]] = {
    "title": lambda doc, fs, sents, ordered: title_of(doc),
    "design": lambda doc, fs, sents, ordered: design_of(doc, ordered),
    "sample_size": lambda doc, fs, sents, ordered: sample_size_of(doc, ordered),
    "arm": _arm_fact,
    "outcome": _outcome_fact,
    "population": _population_fact,
    "text": _sentence_fact,
}


@register_extractor("bio")
def extract_bio(doc: Document, spec: DomainSpec) -> list[Fact]:
    sents = sentences(doc)
    out: list[Fact] = []
    for fs in spec.facts:
        ordered = preferred_first(doc, sents, list(getattr(fs, "prefer_sections", None) or ["abstract", "methods"]))
        f = VALUE_READERS.get(fs.value, _sentence_fact)(doc, fs, sents, ordered)
        if f is not None:
            f.label = fs.title
            out.append(f)
    return out
