"""Reading what a sentence of a trial report says about an effect: its clauses, whether a difference is
significant (words and p-values), its direction (direction words near the outcome, then paired figures), which
arm is the sentence's subject ("the control group had higher ..." speaks from the comparator's side), and the
effect estimates it reports (OR / RR / HR / mean difference / percent change, with CI and p).

Rules from definitions: a p-value below 0.05 or a confidence interval of a ratio that excludes 1 (of a difference
that excludes 0) is significant; "no significant", "did not differ", "similar", "a trend" are not. Used by the bio
findings (domains/bio/findings.py), effect questions (memo/effect.py) and the verifier's polarity check
(memo/polarity.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from m3analyst.text import to_number

UP_WORDS = (r"higher|increas(?:ed|es|e|ing)|greater|more|longer|elevated|larger|raised|rose|rise|rising|grew|gain(?:ed)?"
            r"|exceed(?:ed|s)?|boost(?:ed)?|enhanced|augmented|prolonged|upregulated|up-regulated|doubled|tripled|above|later|delayed")
DOWN_WORDS = (r"lower|reduc(?:ed|es|e|ing|tions?)|decreas(?:ed|es|e|ing)|less|fewer|shorter|declin(?:ed|es|e|ing)|smaller"
              r"|attenuated|diminished|dropped|drop|fell|fall(?:en)?|lowered|lessened|suppressed|downregulated|down-regulated"
              r"|halved|below|cut|shortened|slower|earlier|sooner")
UP = re.compile(rf"\b(?:{UP_WORDS})\b", re.I)
DOWN = re.compile(rf"\b(?:{DOWN_WORDS})\b", re.I)
BETTER = re.compile(r"\b(?:improv(?:ed|es|e|ing|ements?)|outperform(?:ed|s)?|benefit(?:ed|ted|s)?|superior|better|favou?r(?:ed|s)?)\b", re.I)
WORSE = re.compile(r"\b(?:wors(?:e|ened|ening)|deteriorat(?:ed|ion|es)|inferior|impaired)\b", re.I)

# Not significant: the absence of a difference, a trend, a p-value at or above 0.05.
NO_DIFF = re.compile(
    r"\bno (?:statistically |clinically )?(?:significant |significative |meaningful |relevant |major |notable |apparent )?"
    r"(?:differences?|changes?|effects?|associations?|improvements?|reductions?|increases?|decreases?|benefits?|impact|influence|correlation)"
    r"|\bnot (?:statistically |reach(?:ed)? |significantly |independently )?(?:significant(?:ly)?|significance|different|changed|altered|affected|improved"
    r"|reduced|increased|decreased|associated|related|correlated|predictive|linked)\b|\bno (?:significant |clear |independent )?(?:relationship|relation)\b"
    r"|\bnon-?\s?significant(?:ly)?\b|\bn\.\s?s\.|\(\s*ns\s*\)|\binsignificant(?:ly)?\b"
    r"|\b(?:did|does|do|could|was|were) not (?:significantly |statistically )?(?:differ|change|improve|reduce|increase|decrease|affect|alter"
    r"|modify|influence|reach|show|lead|result|vary|be detected)\b|\bfailed to\b|\bwithout (?:any |a )?(?:significant )?(?:difference|change|effect)"
    r"|\b(?:were|was|remained|are|is) (?:\w+ )?(?:comparable|similar|unchanged|unaltered|unaffected|equivalent|stable)\b|\bsimilar (?:in|between|among|across|for)\b"
    r"|\b(?:a |the )?trends? (?:towards?|for)\b|\btended to\b|\bborderline\b|\bmarginally\b|\bno longer significant\b"
    r"|\bno (?:differences?|changes?) (?:were|was) (?:found|observed|detected|seen|noted)", re.I)
SIG_WORD = re.compile(r"(?<!not )(?<!non-)(?<!non)(?<!no )\b(?:statistically )?significant(?:ly)?\b(?! (?:difference|change|effect)s? (?:was|were) not)", re.I)
P_VALUE = re.compile(r"\b[Pp]s?\s*(?:value\s*)?(?P<op>[<>=≤≥]|&lt;|&gt;|<=|>=|=<|=>)\s*(?P<v>0?\.\d+|[01](?:\.\d+)?(?:\s*[x×]\s*10\s*[-−–]\s*\d+)?)")

# Where one sentence's statements part: only outside brackets (a CI's ';' stays with its estimate).
_CLAUSE_BREAK = re.compile(r";|,?\s+(?:but|whereas|while|although|though|however|yet|except)\b|,\s+and\s+(?=(?:the|a|an|in|there|no|this|it|they)\b)"
                           r"|\s+and\s+(?=an? (?:\w+ ){0,2}(?:increase|decrease|reduction|improvement|rise|decline|change)\b)"
                           r"|\s+and\s+(?=(?:\w+\s+)?(?:borderline|marginally|non-?significantly|significantly|no|not)\b)", re.I)


def decimals(text: str) -> str:
    """'1·52' (a typeset decimal point) -> '1.52'; same length, so offsets stay."""
    return re.sub(r"(?<=\d)[·\u00b7\u2219](?=\d)", ".", text)


def p_significance(text: str) -> list[tuple[int, bool]]:
    """(position, significant?) of each p-value the text states: p < 0.05 / p = 0.03 are significant;
    p > 0.05 / p = 0.13 / p >= 0.05 are not."""
    text = decimals(text)
    out = []
    for m in P_VALUE.finditer(text):
        op, raw = m.group("op").replace("&lt;", "<").replace("&gt;", ">"), m.group("v")
        try:
            v = float(re.sub(r"\s*[x×]\s*10\s*[-−–]\s*(\d+)", r"e-\1", raw))
        except ValueError:
            continue
        if v > 1:
            continue
        below = op in ("<", "≤", "<=", "=<")
        if not below and op != "=" and v < 0.05:
            continue  # 'p > 0.001' does not say whether it is significant
        out.append((m.start(), v <= 0.05 if below else (v < 0.05 if op == "=" else False)))
    return out


def clauses(sentence: str) -> list[tuple[int, str]]:
    """(offset, text) of the sentence's clauses: split at ';', 'but', 'whereas', 'while', 'although' and a
    ', and' starting a new statement, never inside brackets."""
    depth, cuts = 0, []
    masked = []
    for ch in sentence:
        depth += ch in "([{"
        masked.append(ch if depth == 0 else "_")
        depth = max(0, depth - (ch in ")]}"))
    flat = "".join(masked)
    for m in _CLAUSE_BREAK.finditer(flat):
        cuts.append((m.start(), m.end()))
    out, pos = [], 0
    for a, b in cuts:
        if sentence[pos:a].strip():
            out.append((pos, sentence[pos:a]))
        pos = b
    if sentence[pos:].strip():
        out.append((pos, sentence[pos:]))
    return out or [(0, sentence)]


_NEGATED = re.compile(r"\b(?:no|not|non|without|neither|nor|lack of|absence of)\b[^.;,]{0,25}$", re.I)


_HEDGED = re.compile(r"\b(?:borderline|marginally|nearly|almost|approaching|close to)\s+(?:statistically\s+)?$", re.I)


def significance(text: str, anchor: int = 0) -> bool | None:
    """True: the text states a significant difference; False: it states none (or p >= 0.05); None: it does not
    say. When it says both, the statement nearest `anchor` (the outcome's mention) wins."""
    cues = [(m.start(), False) for m in NO_DIFF.finditer(text)]
    cues += [(m.start(), not (_NEGATED.search(text[max(0, m.start() - 30): m.start()])
                              or _HEDGED.search(text[max(0, m.start() - 20): m.start()])))
             for m in SIG_WORD.finditer(text) if not NO_DIFF.search(text[max(0, m.start() - 30): m.end() + 5])]
    cues += p_significance(text)
    if not cues:
        return None
    kinds = {s for _, s in cues}
    if len(kinds) == 1:
        return kinds.pop()
    words = [(p, s) for p, s in cues if not text[p:p + 1].lower() == "p"] or cues  # a stated word outranks a p-value
    return min(words, key=lambda c: (abs(c[0] - anchor), c[0]))[1]


@dataclass
class Sides:
    """Words naming the intervention and the comparator arm (their distinctive words; generic arm words)."""

    intervention: list[str] = field(default_factory=list)
    comparator: list[str] = field(default_factory=list)


_GENERIC_I = r"intervention|treatment|treated|experimental|active|study group|exposed"
_GENERIC_C = r"control|placebo|usual care|sham|comparison|standard care|conventional|untreated|vehicle"
_COMPARE_BEFORE = re.compile(r"(?:\bthan|\bvs\.?|\bversus|\bcompared (?:with|to)|\brelative to|\bcomparison (?:with|to)|\bover|\bagainst"
                             r"|\bfrom|\bto|\band)\s+(?:\w+\s+){0,4}$", re.I)
_STOP = {"with", "the", "and", "for", "from", "group", "groups", "arm", "patients", "receiving", "received", "plus", "alone", "only",
         "daily", "twice", "once", "weeks", "week", "days", "months", "dose", "standard", "therapy", "treatment", "care", "who", "that"}


def _content(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9-]{2,}", text.lower()) if w not in _STOP}


def sides(intervention: str, comparator: str, outcome: str = "") -> Sides:
    """The arms' distinctive words (not shared with the other arm, nor part of the outcome's name)."""
    i, c, o = _content(intervention), _content(comparator), _content(outcome)
    return Sides(sorted(i - c - o), sorted(c - i - o))


def _mentions(text: str, words: list[str], generic: str) -> list[int]:
    hits = [m.start() for w in words for m in re.finditer(rf"\b{re.escape(w[:6])}", text, re.I)]
    if not hits:
        hits = [m.start() for m in re.finditer(rf"\b(?:{generic})\b", text, re.I)]
    return sorted(hits)


def subject_is_comparator(text: str, pos: int, arms: Sides) -> bool:
    """Does the clause speak from the comparator's side ('the control group had higher X than the ketamine group',
    'placebo patients had more ...')? Only an arm named before the direction word (at `pos`) and outside a
    'than / versus / compared with' phrase can be the subject; the first such arm is it."""
    def subjects(words: list[str], generic: str) -> list[int]:
        return [p for p in _mentions(text, words, generic) if p < pos and not _COMPARE_BEFORE.search(text[max(0, p - 40):p])]

    c_hits, i_hits = subjects(arms.comparator, _GENERIC_C), subjects(arms.intervention, _GENERIC_I)
    return bool(c_hits) and (not i_hits or c_hits[0] < i_hits[0])


# Outcomes where less is better: an 'improvement' in them is a decrease.
ADVERSE = re.compile(r"\b(?:pain|stiffness|mortality|death|deaths|risk|symptoms?|anxiety|depressi\w*|stress|fatigue|nausea|vomiting"
                     r"|complications?|infections?|adverse|errors?|bleed\w*|loss|severity|incidence|disability|WOMAC|VAS|dyspnea"
                     r"|dyspnoea|recurrence|relapse|failure|duration|length of (?:hospital )?stay|time to|edema|oedema|inflammation"
                     r"|hypoglyc\w*|sleepiness|craving|distress|burden|morbidity|toxicity|itch\w*|discomfort|resistance)\b", re.I)


# 'more reduced', 'greater increase': the comparative modifies the direction word after it, which decides
_MODIFIER = re.compile(rf"(?:more|less|greater|further|significantly more)\s+(?=(?:\w+\s+)?(?:{UP_WORDS}|{DOWN_WORDS})\b)", re.I)


def _own_word(text: str, pos: int, own: set[str]) -> bool:
    """Is the word at `pos` part of the outcome's own name ('gained' for 'weight gain')?"""
    word = re.match(r"[\w-]+", text[pos:]).group(0).lower()
    return any(word.startswith(o[:4]) and o[:4] == word[:4] and (len(o) < 5 or word[:5] == o[:5] or len(word) < 5) for o in own)


def direction(text: str, anchor: int = 0, outcome: str = "") -> tuple[str, int] | None:
    """('up' | 'down', position) by the direction word nearest the outcome's mention (`anchor`), not counting
    words of the outcome's own name ('weight gain', 'decline'); an 'improvement' is a decrease for an adverse
    outcome (pain, mortality, symptoms ...). None when no word says."""
    own = {w[:5] for w in _content(outcome) if len(w) >= 4}
    cues = [(m.start(), "up") for m in UP.finditer(text)] + [(m.start(), "down") for m in DOWN.finditer(text)]
    bad = bool(ADVERSE.search(outcome or text))
    cues += [(m.start(), "down" if bad else "up") for m in BETTER.finditer(text)]
    cues += [(m.start(), "up" if bad else "down") for m in WORSE.finditer(text)]
    cues = [c for c in cues if not _own_word(text, c[0], own) and not _MODIFIER.match(text, c[0])]
    if not cues:
        return None
    pos, way = min(cues, key=lambda c: (abs(c[0] - anchor), c[0]))
    return way, pos


_NUM = r"[-−–+]?\d+(?:\.\d+)?"
_VS_PAIR = re.compile(rf"(?P<a>{_NUM})\s*(?:%|[a-zA-Z/μµ²]+)?\s*(?:\([^()]*\)\s*)?(?:vs\.?|versus|compared with|and)\s+(?P<b>{_NUM})", re.I)


def paired_direction(text: str) -> str | None:
    """'(21% vs. 4%)', '12 vs. 16 hours': the first figure against the second (None when equal or absent)."""
    m = _VS_PAIR.search(text)
    if not m or not re.search(r"\bvs\.?|\bversus|compared with", m.group(0), re.I):
        return None
    a, b = (float(m.group(k).replace("−", "-").replace("–", "-")) for k in ("a", "b"))
    return None if a == b else ("up" if a > b else "down")


def anchor_of(text: str, outcome: str) -> int:
    """Offset of the outcome's first content word in the text (0 when none occurs)."""
    hits = [m.start() for w in _content(outcome) if (m := re.search(rf"\b{re.escape(w[:6])}", text, re.I))]
    return min(hits) if hits else 0


def outcome_overlap(text: str, outcome: str, extra: list[str] = ()) -> float:
    """Share of the outcome's content words (or its abbreviations) that the text mentions."""
    words = _content(outcome)
    if not words:
        return 0.0
    got = sum(bool(re.search(rf"\b{re.escape(w[:6])}", text, re.I)) for w in words)
    bonus = any(re.search(rf"\b{re.escape(a)}s?\b", text) for a in extra)
    return min(1.0, got / len(words) + (0.5 if bonus else 0.0))


@dataclass
class Reading:
    """What one sentence says about the comparison: label, the clause it was read from, and why."""

    label: str  # "significantly increased" | "significantly decreased" | "no significant difference"
    clause: str
    reason: str
    strength: float = 1.0


LABELS = ("significantly increased", "significantly decreased", "no significant difference")


_BETWEEN = re.compile(r"\bbetween (?:the )?(?:two |three |both |all )?(?:groups|arms|treatments|conditions)\b|\bdifference between\b"
                      r"|\b(?:between|inter)-group\b|\bgroups? differ", re.I)
_VERSUS = r"(?:\bcompared (?:with|to)|\bversus|\bvs\.?|\bthan|\bagainst|\brelative to)\s+(?:the\s+)?(?:\w+\s+){0,2}"


def versus_comparator(clause: str, comparator: str, arms: Sides) -> bool:
    """Does the clause compare against the question's comparator ('... compared with placebo')? A comparator that
    is a control of some kind is matched by generic control words too; a named one only by its own words."""
    names = [re.escape(w[:6]) for w in arms.comparator]
    if re.search(rf"\b(?:{_GENERIC_C})\b", comparator, re.I):
        names.append(_GENERIC_C)
    return bool(names) and bool(re.search(rf"{_VERSUS}(?:{'|'.join(names)})", clause, re.I))
_WITHIN = re.compile(r"\bfrom baseline\b|\b(?:compared (?:with|to)|versus|vs\.?|than) (?:the )?(?:baseline|pre-?test|pre-?treatment)\b"
                     r"|\bfrom pre-?test\b|\bwithin[- ]group", re.I)
_ARM_VALUE = re.compile(r"(?P<v>[-−+]?\d+(?:\.\d+)?)[^;]{0,60}?\b(?:in|for|with) the (?P<arm>[\w\s.-]{1,30}?) (?:group|arm)\b", re.I)


def arm_values(text: str, arms: Sides) -> str | None:
    """'-1.65 in the intervention group and +0.05 in the control group': 'up' / 'down' of the intervention's figure
    against the comparator's (None unless both arms' figures are named)."""
    got: dict[str, float] = {}
    found = [(m.group("arm"), float(m.group("v").replace("−", "-"))) for m in _ARM_VALUE.finditer(text)]
    for arm, v in found:
        side = ("c" if _mentions(arm, arms.comparator, _GENERIC_C) else "i" if _mentions(arm, arms.intervention, _GENERIC_I) else None)
        if side and side not in got:
            got[side] = v
    if len(found) == 2 and len(got) == 1:  # two arms' figures, one arm named: the other is the other side
        other = "i" if "c" in got else "c"
        got[other] = next(v for arm, v in found if got.get("c" if other == "i" else "i") != v)
    if len(got) < 2 or got["i"] == got["c"]:
        return None
    return "up" if got["i"] > got["c"] else "down"


def _clause_rank(clause: str, outcome: str, abbreviations: list[str], between: bool, arms: Sides, comparator: str,
                 best: float) -> float:
    """How well a clause answers the question: it names the outcome; for a comparison of two arms (not against
    baseline) a statement about the difference between the groups (or against the comparator) outranks one arm's
    change from baseline; a clause about the intervention's arm outranks one about the comparator's alone."""
    score = outcome_overlap(clause, outcome, abbreviations) if outcome else 0.0
    same_outcome = score == 0 or score >= best - 0.25  # 'the difference between groups' refers back to it
    if (between and same_outcome and (_BETWEEN.search(clause) or versus_comparator(clause, comparator, arms))
            and significance(clause) is not None):
        score += 1.5
    elif between and _WITHIN.search(clause):
        score -= 0.4
    if _mentions(clause, arms.intervention, _GENERIC_I):
        score += 0.2
    when = re.search(r"\b(\d+)\s*(min(?:utes?)?|hours?|days?|weeks?|months?|years?)\b", outcome or "")
    if when:  # the outcome's time point: '... at 6 months'
        said = re.findall(r"\b(\d+)\s*(min(?:utes?)?|hours?|days?|weeks?|months?|years?)\b", clause)
        score += 0.5 if (when.group(1), when.group(2)) in said else (-0.5 if said else 0.0)
    return score


def read_effect(sentence: str, intervention: str = "", comparator: str = "", outcome: str = "",
                abbreviations: list[str] = ()) -> Reading | None:
    """The effect label the sentence states for the outcome, from the intervention's side: the clause that best
    answers (names the outcome; between-group statements first when two arms are compared) is read for
    significance (words, p-values) and direction (the word nearest the outcome; else an 'a vs b' pair or the arms'
    figures), turned round when the comparator is the clause's subject. None when it does not say."""
    parts = clauses(sentence)
    between = not re.search(r"\bbaseline\b|\bpre-?(?:test|treatment|intervention)\b", comparator, re.I)
    arms = sides(intervention, comparator, outcome)
    best = max((outcome_overlap(p[1], outcome, list(abbreviations)) for p in parts), default=0.0) if outcome else 0.0
    ranked = sorted(parts, key=lambda p: -_clause_rank(p[1], outcome, list(abbreviations), between, arms, comparator, best))
    for _, clause in ranked[:3]:
        anchor = anchor_of(clause, outcome)
        sig = significance(clause, anchor)
        if sig is None and len(parts) > 1:
            sig = significance(sentence, anchor_of(sentence, outcome))  # a p-value stated once for the sentence
        if sig is None:
            continue
        if sig is False:
            return Reading(LABELS[2], clause.strip(), "states no significant difference")
        found = direction(clause, anchor, outcome)
        if found is None:
            way = paired_direction(clause) or arm_values(clause, arms)
            if way is None:
                continue
            flipped = False
        else:
            way, pos = found
            flipped = subject_is_comparator(clause, pos, arms)
        if flipped:
            way = "down" if way == "up" else "up"
        return Reading(LABELS[0] if way == "up" else LABELS[1], clause.strip(),
                       f"significant, {'higher' if way == 'up' else 'lower'}" + (" (read from the comparator's side)" if flipped else ""))
    return None


# ---- effect estimates: OR / RR / HR / mean difference / percent, with CI and p ------------------------

_MEASURES = [  # (kind, pattern naming it); ratios have no effect at 1, differences at 0
    ("OR", r"(?:adjusted |a)?odds ratios?|\b[Aa]?ORs?\b"), ("RR", r"relative risks?|risk ratios?|rate ratios?|\bI?RRs?\b"),
    ("HR", r"hazard ratios?|\b[Aa]?HRs?\b"),
    ("MD", r"(?:standardi[sz]ed |weighted |least[- ]squares |adjusted )?mean differences?|\b(?:S|W)?MDs?\b|between-group differences?"
           r"|differences? in means?"),
]
RATIO_KINDS = {"OR", "RR", "HR"}
_NUMBER = r"[-−–]?\d+(?:\.\d+)?"
_CI = (rf"(?:95\s*%\s*(?:CI|confidence intervals?|C\.I\.)|CI\s*95\s*%|confidence intervals?)\s*[:=,]?\s*[\[(]?\s*(?P<lo>{_NUMBER})"
       rf"\s*(?:%|\s*(?!to\b|and\b)[a-zA-Z/]+)?\s*(?:to|-|–|—|,|;|and)\s*(?P<hi>{_NUMBER})")
_ESTIMATE = re.compile(
    rf"(?P<name>{'|'.join(f'(?P<{k}>{v})' for k, v in _MEASURES)})\s*(?:\[[A-Za-z]+\]\s*)?(?:\([A-Za-z]+\)\s*)?(?:of|was|were|is|=|:|,)?\s*"
    rf"(?:\[?95\s*%\s*CI\]?\s*)?(?P<est>{_NUMBER})\s*(?:%|\s*(?!to\b|and\b|in\b|for\b|at\b)(?:kg|mg|mmol|points?|units?|days?|[a-zA-Z/²]+))?\s*[\[(;,]?\s*(?:{_CI})?", re.I)


@dataclass
class Estimate:
    """One effect estimate a sentence reports."""

    kind: str  # OR | RR | HR | MD | PCT (a percent change)
    value: float
    low: float | None
    high: float | None
    p: str | None  # the p-value as printed ('p = 0.02', 'P < 0.001')
    text: str  # the matched text
    start: int  # offset in the sentence
    end: int = 0

    @property
    def null(self) -> float:
        return 1.0 if self.kind in RATIO_KINDS else 0.0

    def significant(self) -> bool | None:
        """By the CI (excludes the null value) when given, else by the p-value; None when neither says."""
        sig = p_significance(self.p or "")
        if self.low is not None and self.high is not None and not (sig and self.null in (self.low, self.high)):
            lo, hi = sorted((self.low, self.high))  # a bound printed at the null (rounded): the p-value decides
            return not (lo <= self.null <= hi)
        return sig[0][1] if sig else None

    def label(self) -> str:
        sig = self.significant()
        if sig is False:
            return LABELS[2]
        if sig is None:
            return "direction only (significance not stated)"
        return LABELS[0] if self.value > self.null else LABELS[1]

    def shown(self) -> str:
        ci = f" (95% CI {_fmt(self.low)} to {_fmt(self.high)})" if self.low is not None else ""
        head = f"{'+' if self.value > 0 else ''}{_fmt(self.value)}% change" if self.kind == "PCT" else f"{self.kind} {_fmt(self.value)}"
        return head + ci + (f", {self.p}" if self.p else "")


def _fmt(v: float | None) -> str:
    return "" if v is None else (f"{v:g}" if v >= 0 else f"\u2212{-v:g}")


_PCT = re.compile(rf"(?P<v>\d+(?:\.\d+)?)\s*%\s*(?:relative\s+|absolute\s+)?(?P<w>{DOWN_WORDS}|{UP_WORDS}|improvement)\b"
                  rf"|\b(?P<w2>{DOWN_WORDS}|{UP_WORDS}|improved)\s+(?:[\w-]+\s+){{0,5}}?by\s+(?:an?\s+(?:average|mean)\s+of\s+)?(?P<v2>\d+(?:\.\d+)?)\s*%",
                  re.I)


def percent_changes(sentence: str) -> list[Estimate]:
    """'a 3.6% reduction in bicarbonate (P = 0.02)', 'decreased BUN by 7.1%': a percent change, signed by its
    direction word, significant by the p-value after it (kind 'PCT', no effect at 0)."""
    out = []
    sentence = decimals(sentence)
    for m in _PCT.finditer(sentence):
        value, word = float(m.group("v") or m.group("v2")), (m.group("w") or m.group("w2")).lower()
        sign = -1.0 if DOWN.fullmatch(word) else 1.0
        pm = P_VALUE.search(sentence, m.end(), min(len(sentence), m.end() + 80))
        out.append(Estimate("PCT", sign * value, None, None, re.sub(r"\s+", " ", pm.group(0)) if pm else None, m.group(0), m.start(), m.end()))
    return out


def estimates(sentence: str) -> list[Estimate]:
    """Effect estimates stated in the sentence: 'OR = 2.86; 95% CI: 1.03–7.96; p = 0.04', 'hazard ratio 0.71
    (0.55 to 0.92)', 'mean difference −2.6 kg (95% CI −3.3 to −1.8)'. A ratio must be positive; a CI must hold
    its estimate."""
    out = []
    sentence = decimals(sentence)
    for m in _ESTIMATE.finditer(sentence):
        kind = next(k for k, _ in _MEASURES if m.group(k))
        value = to_number(m.group("est"))
        lo = to_number(m.group("lo")) if m.group("lo") else None
        hi = to_number(m.group("hi")) if m.group("hi") else None
        if lo is None:  # '2.6 (1.0, 4.2)': a bare bracketed pair right after the estimate
            pair = re.match(rf"\s*[\[(]\s*(?P<lo>{_NUMBER})\s*(?:to|,|-|–|;)\s*(?P<hi>{_NUMBER})\s*[\])]", sentence[m.end("est"):])
            if pair:
                lo, hi = to_number(pair.group("lo")), to_number(pair.group("hi"))
        if kind in RATIO_KINDS and value <= 0:
            continue
        if lo is not None and not (min(lo, hi) <= value <= max(lo, hi)):
            lo = hi = None
        pm = P_VALUE.search(sentence, m.end(), min(len(sentence), m.end() + 60))
        out.append(Estimate(kind, value, lo, hi, re.sub(r"\s+", " ", pm.group(0)) if pm else None, m.group(0).strip(), m.start(),
                            m.end()))
    return out


__all__ = ["Estimate", "estimates", "percent_changes", "ADVERSE", "DOWN", "LABELS", "NO_DIFF", "Reading", "SIG_WORD", "Sides", "UP", "anchor_of", "arm_values", "clauses", "direction",
           "outcome_overlap", "p_significance", "paired_direction", "read_effect", "significance", "sides",
           "subject_is_comparator"]
