"""`ask`: answer one question about a document, with page citations.

Numeric questions are answered from the extracted facts when a fact (or a statement line item)
matches the question and its period, questions that name a clause fact (domain spec `ask` phrases) from
that clause, quoted with its page; trial effect questions ("did I significantly increase, decrease or make no
significant difference to O?") without a verified model answer from the reporting sentence, by rules
(memo/effect.py); otherwise the engine answers after the whole document (ONE
prompt, document first; several questions share one prefill of it) and its sentences pass the verifier; without
a model the best-matching passage is quoted.
"""

from __future__ import annotations

import re

from m3analyst.domains import detect_domain, extract_facts, fallback_domain, load_domain
from m3analyst.domains.finance.drivers import driver_sentences
from m3analyst.domains.facts import Fact, format_value
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.errors import UsageError
from m3analyst.ingest.model import Citation, Document
from m3analyst.injection import instruction_free
from m3analyst.memo.calculate import answer_metric, metric_names
from m3analyst.memo.effect import answer_effect
from m3analyst.memo.labels import answer_labels
from m3analyst.memo.judge import answer_judgement
from m3analyst.memo.metrics import Table, row_facts
from m3analyst.memo.types import Answer
from m3analyst.memo.passages import BM25, trim
from m3analyst.memo.trend import _stem, alias_at, answer_trend, change, derivation, in_asked_span, named_fact, years_in
from m3analyst.memo.verify import NUMBER, STOP, page_marks, verify_text
from m3analyst.prompting import DEFAULT_CONTEXT, TASK_SENTINEL, ask_text, build_prompt
from m3analyst.settings import Settings
from m3analyst.text import Span, paragraphs, period_key, sentences_of, squash, to_number

_CHANGE = re.compile(r"\b(change[ds]?|growth|grow|increase|decrease|decline|yoy|year-over-year|year over year)\b", re.I)
# Questions that define their own metric (ratios, multi-line formulas) are not simple fact look-ups.
_FORMULA = re.compile(r"defined as|ratio\b|turnover|days (payable|sales|inventory)|\bdpo\b|\bdso\b|return on|\broa\b|\broe\b|"
                      r"ebitda|working capital|coverage|quick|effective tax", re.I)
_ROUND = re.compile(r"round(?:ed)?\s+(?:\w+\s+){0,3}to\s+(one|two|three|four|\d)\s+decimal", re.I)
_DIGITS = {"one": 1, "two": 2, "three": 3, "four": 4}
_UNIT = [(re.compile(r"\bbillions?\b", re.I), 1e9), (re.compile(r"\bmillions?\b", re.I), 1e6), (re.compile(r"\bthousands?\b", re.I), 1e3)]


def answer_question(doc: Document, question: str, settings: Settings | None = None, engine=None,
                    domain: str | None = None) -> Answer:
    return answer_questions(doc, [question], settings, engine, domain)[0]


def answer_questions(doc: Document, questions: list[str], settings: Settings | None = None, engine=None,
                     domain: str | None = None) -> list[Answer]:
    """Answers to several questions about one document, in order. Facts are extracted once; a question the facts,
    a trend or a clause answer is answered from them; the others go to the model, which reads the document ONCE
    for all of them (one prefill, each question generated after it), or, model-free, to the reporting sentence
    (effect questions) or the closest passage."""
    settings = settings or Settings()
    if not questions or any(not q.strip() for q in questions):
        raise UsageError("the question is empty")
    doc = instruction_free(doc)  # text addressed to a reader or model is never an answer's source
    try:
        spec = load_domain(domain or detect_domain(doc))
    except UsageError:
        spec = fallback_domain()  # the spec marked `fallback: true` (finance)
    facts = extract_facts(doc, spec)
    model_free = settings.engine.model is None and engine is None
    # A domain whose spec declares metrics (finance.yaml's `metrics`) answers from its statements: parsed once here.
    table = Table(doc, spec, facts) if getattr(spec, "metrics", None) else None
    out = [_from_facts_and_clauses(doc, spec, facts, q, say_absent=model_free, table=table) for q in questions]
    todo = [i for i, a in enumerate(out) if a is None]
    if todo and not model_free and engine is None:
        from m3analyst.engine import load_engine

        engine = load_engine(settings.engine)
    answer_labels(doc, spec, facts, questions, out, settings, None if model_free else engine)  # memo/labels.py
    todo = [i for i, a in enumerate(out) if a is None]
    if todo and not model_free:
        asker = _EngineAsker(doc, spec, facts, settings, engine, shared=len(todo) > 1)
        for i in todo:
            out[i] = asker.answer(questions[i])
    return [structured(a or answer_effect(doc, q) or _passage_answer(doc, q), q) for a, q in zip(out, questions)]


def _from_facts_and_clauses(doc: Document, spec: DomainSpec, facts: list[Fact], question: str,
                            say_absent: bool, table: Table | None = None) -> Answer | None:
    if table is not None:
        if question_type(question) == "explanation":
            return answer_explanation(doc, spec, table, question)
        ans = (answer_trend(spec, facts + table.all_facts(), question, metric_names(spec, table))
               or answer_judgement(spec, table, question) or answer_metric(doc, spec, facts, question, table)
               or answer_from_facts(doc, spec, facts, question))
        if ans is not None:
            return ans
    return answer_from_clauses(doc, spec, facts, question, say_absent=say_absent)


# ---- explanation questions ------------------------------------------------------------------------------
def answer_explanation(doc: Document, spec: DomainSpec, table: Table, question: str) -> Answer | None:
    """"What drove the change in operating margin?": the filing's own driver sentences ("due to", "driven by") for
    the line the question names and the year it asks about (domains/finance/drivers.py), quoted with their pages. A ratio's
    drivers are those of its lines (operating margin: operating income and revenue sentences). None when the
    question names no line or the filing states no driver for it."""
    named = named_fact(spec, question, metric_names(spec, table))
    if named is None:
        return None
    years = years_in(question)
    own, parts = _driver_phrases(spec, table, named.name)
    cites = []
    for phrases in (own or [named.alias], parts):  # the line's own sentences first, then those of its components
        cites = cites or (driver_sentences(doc, phrases, max(years) if years else None, k=3) if phrases else [])
    if not cites:
        return None
    quoted = " ".join(f"\u201c{c.quote}\u201d {c.mark}" for c in cites)
    when = f" in FY{max(years)}" if years else ""
    return Answer(f"{named.label}{when}, in the filing's words: {quoted}", None, sorted({c.page for c in cites}), "rules",
                  None, named.name, [], kind="explanation", label=None,
                  reason=f"The filing's own causal sentences (due to / driven by) about {named.label.lower()}{when}.",
                  evidence=cites, confidence=0.6)


def _driver_phrases(spec: DomainSpec, table: Table, name: str) -> tuple[list[str], list[str]]:
    """The phrases that name a line in a driver sentence: its own, and for a metric those of the lines in it."""
    derived = next((d for d in spec.derived if d.name == name), None)
    own = [*getattr(spec.fact(name), "ask", []), *(derived.ask if derived else []),
           *(table.defs[name].ask if name in table.defs else [])]
    expr = table.defs[name].expr if name in table.defs else derived.expr if derived else ""
    parts = [a for n in re.findall(r"[a-z_]+", expr) if spec.fact(n) for a in spec.fact(n).ask]
    return list(dict.fromkeys(own)), list(dict.fromkeys(parts))


# ---- question types and the structured answer ----------------------------------------------------------
_EXPLAIN_Q = re.compile(r"^\s*(why|explain|describe (the )?(reasons?|drivers?|factors?)|what (drove|drives|caused|causes|explains|"
                        r"contributed|led)|what (are|were) the (main |major |key |primary )?(reasons?|drivers?|factors?|causes?))\b"
                        r"|\b(reasons? for|drivers? of|what drove|due to what)\b", re.I)
_CHOICE_Q = re.compile(r"\b(\w+(?:ed|er)) or (\w+(?:ed|er))\b", re.I)
_POLAR_Q = re.compile(r"^\s*(is|are|was|were|has|have|had|does|do|did|can|could|will|would|should|shall|may|must)\b", re.I)
_FIGURE_Q = re.compile(r"\b(how (much|many|long)|what (is|was|were|are) the (\w+ ){0,6}(amount|quantity|value|ratio|margin|rate|number|"
                       r"percentage|total|cagr|growth|turnover|days|cycle|coverage|return)|calculate|compute|round|in usd|"
                       r"\(in \w+|in (usd )?(millions|billions|thousands)|percent|%)", re.I)


def question_type(question: str) -> str:
    """figure | yesno | label | span | explanation: what kind of answer the question asks for."""
    if _EXPLAIN_Q.search(question):
        return "explanation"
    if _CHOICE_Q.search(question) and not re.search(r"\bor not\b", question, re.I):
        return "label"
    if _POLAR_Q.search(question):
        return "yesno"
    if _FIGURE_Q.search(question) or _NUMERIC_Q.search(question):
        return "figure"
    return "span"


_NUMERIC_Q = re.compile(r"^\s*what (is|was) (the )?[\w' -]{0,40}\b(fy|fiscal)?\s?(19|20)\d{2}\b", re.I)
_LEAD = re.compile(r"^\s*([A-Z][\w-]*(?: [\w-]+){0,2}):")
_CONFIDENCE = {"facts": 0.9, "rules": 0.6, "engine": 0.5, "passage": 0.2}


def structured(ans: Answer, question: str) -> Answer:
    """Fill the structured fields every answer carries: kind, label (the text's lead word for yes/no and choice
    answers), a one-sentence reason, evidence quotes with pages, and a confidence."""
    ans.kind = ans.kind or question_type(question)
    if ans.label is None and ans.kind in ("yesno", "label"):
        m = _LEAD.match(ans.text)
        ans.label = m.group(1) if m else None
    if not ans.evidence:
        quotes = [c.get("source_text", "") for c in ans.checks if isinstance(c, dict)]
        ans.evidence = [Citation.page_only(p, " ".join(q.split())[:200]) for p, q in
                        zip(ans.citations, quotes + [_quoted(ans.text)] * len(ans.citations))]
    if not ans.reason:
        ans.reason = {"facts": "Read from the extracted statement facts and clauses, with their pages.",
                      "rules": "Read by rules from the document's own reporting sentence.",
                      "engine": "The model's answer, each sentence checked against the cited page.",
                      }.get(ans.source, "The closest passage of the document (a lexical search, not a reading).")
    if ans.confidence is None:
        ans.confidence = _CONFIDENCE.get(ans.source, 0.3)
    return ans


def _quoted(text: str) -> str:
    m = re.search(r"\u201c(.+?)\u201d", text)
    return (m.group(1) if m else text)[:200]


_NEGATED = re.compile(r"\b(no|not|none|never|neither|nor|without|cannot)\b|n't\b", re.I)


def negated_in(text: str, question: str) -> bool:
    """Does a sentence of `text` negate one of the question's content words (a negation at most six words before a
    word sharing its first five letters: 'will not have a material adverse effect' for 'materially important')?"""
    keys = {w[:5] for w in _content_words(question) if len(w) >= 5}
    for sent in re.split(r"(?<=[.;])\s+", text):
        words = re.findall(r"[a-z']+", sent.lower())
        for i, w in enumerate(words):
            if w[:5] in keys and any(_NEGATED.fullmatch(x) or x.endswith("n't") for x in words[max(0, i - 6):i]):
                return True
    return False


def _passage_answer(doc: Document, question: str) -> Answer:
    """Model-free fallback. A figure, label or yes/no question is never answered by a passage alone: a yes/no
    question gets the closest passage's polarity (negated -> No), marked low-confidence; a figure or choice question
    says that no figure could be read, with the passage as the evidence looked at."""
    ans = answer_from_passage(doc, question)
    kind = question_type(question)
    if ans.source != "passage" or kind in ("span", "explanation") or not ans.citations:
        return ans
    if kind == "yesno":
        label = "No" if negated_in(_best_passage(doc, question).text, question) else "Yes"
        ans.text = f"{label} (low confidence: the closest passage {'negates' if label == 'No' else 'states'} it): {ans.text}"
        ans.label, ans.confidence, ans.kind, ans.source = label, 0.25, kind, "rules"
        ans.reason = ("A rule reading of the closest passage (a negation before the question's words), not a computed "
                      "or model answer.")
        return ans
    ans.text = f"Not determined: no figure or label for this question could be read or computed; the closest passage: {ans.text}"
    ans.kind, ans.confidence, ans.missing = kind, 0.0, ["a figure or statement line matching the question"]
    ans.reason = "No fact, metric or rule answers the question; the passage is shown as what was looked at."
    return ans


# ---- from facts ----------------------------------------------------------------------------------
def _target_scale(question: str, default: float) -> float:
    for rx, s in _UNIT:
        if rx.search(question):
            return s
    return default


def _pick(cands: list[Fact], year: str | None, question: str = "") -> Fact | None:
    """The latest fact of `year` (when given); a question naming a span ("six months ended ...", "the second
    quarter") keeps the periods of that span first."""
    if year:
        cands = [f for f in cands if f.period and year in f.period]
    return max(in_asked_span(cands, question), key=lambda f: period_key(f.period), default=None)


_NUMERIC = re.compile(r"\b(what (is|was|were|are)|how much|how many|amount|value|usd|percent|%|year-over-year)\b", re.I)
_NARRATIVE = re.compile(r"^\s*(why|how (did|does|do|has|have)|describe|explain|what (drove|caused|are the (main|major|key)))\b", re.I)
_DEFINES = re.compile(r"\b(is|are) defined as\b|\bdefine\b", re.I)
_PERCENT_Q = re.compile(r"percent|%", re.I)
_CURRENCY_Q = re.compile(r"\busd\b|\$|dollars?\b|\b(millions|billions|thousands)\b", re.I)


def answer_from_facts(doc: Document, spec: DomainSpec, facts: list[Fact], question: str) -> Answer | None:
    """A fact look-up for numeric questions ("What was FY2018 capex?"); None when it is not one."""
    if _NARRATIVE.search(question) or not _NUMERIC.search(question):
        return None
    q = question.lower()
    years = years_in(question)
    named = named_fact(spec, question)
    derived = {d.name for d in spec.derived}
    if _FORMULA.search(question) and (named is None or named.name not in derived):
        return None  # a metric we do not compute: not a fact look-up
    series = [f for f in facts if named and f.name == named.name and isinstance(f.value, float)]
    label = named.label if named else ""
    rows = row_facts(doc, spec, question) if not series or named is None else _finer_row(doc, spec, question, named)
    if rows:  # a statement line the question names more precisely than the fact's phrase ("net service sales")
        series, label = rows, rows[0].title
    if not series:
        return None
    if _CHANGE.search(q) and not _DEFINES.search(question) and (len(years) >= 2 or len(series) >= 2):
        return _change_answer(series, years, label, question)
    f = _pick(series, years[0] if years else None, question)  # the period the question asks about comes first
    if f is None:
        return None
    if f.unit in ("%", "USD/share", "ratio", "days"):
        value, shown = f.value, f.display()
    else:
        scale = _target_scale(question, f.scale or 1.0)
        value = f.value / scale
        shown = format_value(f.value, f.unit, scale)
    m = _ROUND.search(question)
    if m:
        value = round(value, _DIGITS.get(m.group(1).lower(), 2) if not m.group(1).isdigit() else int(m.group(1)))
        shown = f"{shown} (rounded: {value})"
    pages = f.pages
    text = f"{label} for {f.period} was {shown}{derivation(f)} {page_marks(pages)}."
    return Answer(text, round(value, 6), pages, "facts", f.unit, f.name, [{"source_text": f.source_text}])


def _finer_row(doc: Document, spec: DomainSpec, question: str, named) -> list[Fact]:
    """Statement-line facts whose label holds every word of the phrase that named the fact and more, all of
    them in the question ("net service sales" over the revenue fact's "sales"); [] otherwise."""
    rows = row_facts(doc, spec, question)
    if not rows:
        return []
    alias_words = set(re.findall(r"[a-z]+", named.alias))
    label_words = set(re.findall(r"[a-z]+", rows[0].title.lower()))
    return rows if alias_words < label_words else []


def _change_answer(series: list[Fact], years: list[str], label: str, question: str) -> Answer | None:
    """Change between two periods: in % (percentage points for rates), or in currency when the question asks
    for an amount ("By how much did total debt change ... (USD millions)?")."""
    if len(years) >= 2:
        a, b = _pick(series, min(years), question), _pick(series, max(years), question)
    else:
        ordered = sorted(series, key=lambda f: period_key(f.period))
        a, b = ordered[-2], ordered[-1]
    if a is None or b is None or a is b:
        return None
    pages = sorted({p for f in (a, b) for p in f.pages})
    cites = page_marks(pages)
    between = f"from {a.display()} ({a.period}) to {b.display()} ({b.period})"
    if a.unit == "%":
        pts = change(a, b)
        return Answer(f"{label} changed by {pts:+.1f} percentage points {between} {cites}.", round(pts, 4), pages,
                      "facts", "%", a.name + "_change", [])
    if not a.value:
        return None
    pct = change(a, b)
    if a.unit == "USD" and _CURRENCY_Q.search(question) and not _PERCENT_Q.search(question):
        scale = _target_scale(question, a.scale or 1.0)
        diff = (b.value - a.value) / scale
        return Answer(f"{label} changed by {format_value(b.value - a.value, a.unit, scale)} ({pct:+.1f}%) {between} "
                      f"{cites}.", round(diff, 6), pages, "facts", a.unit, a.name + "_change", [])
    return Answer(f"{label} changed by {pct:.1f}% {between} {cites}.", round(pct, 4), pages, "facts", "%",
                  a.name + "_change", [])


# ---- from clause facts ---------------------------------------------------------------------------
_YESNO_Q = re.compile(r"\b(?:answer|reply)\s+(?:with\s+)?yes\s+or\s+no\b|^\s*(?:does|do|is|are|can|could|may|will|shall|has|have|must)\b",
                      re.I)
_PRESENCE_Q = re.compile(r"^\s*(?:does|do|is there|are there|has|have)\b.{0,40}\b(?:agreement|contract|document|clause|provision)", re.I)
_VALUE_KINDS = ("text", "law", "date", "duration", "parties", "document_name")


def _clause_named(spec: DomainSpec, q: str) -> FactSpec | None:
    """The clause-like fact (a text/law/date/duration/parties/name value, no unit) the question names: its longest
    `ask` phrase found in the question (earliest on ties). Amounts (facts with a unit) are answer_from_facts'."""
    hits = []
    for fs in spec.facts:
        if fs.value not in _VALUE_KINDS or fs.unit:
            continue
        for alias in fs.ask:
            m = alias_at(alias, q)
            if m:
                hits.append((-len(alias), m.start(), fs.name, fs))
    return min(hits, key=lambda h: h[:3])[3] if hits else None


def _clause_quote(doc: Document, f: Fact) -> Span:
    """What to quote for a clause fact, trimmed: the sentence the extractor found stating it (extra["quote"]),
    else the sentence of its span that holds its value (a date, the parties), else the span's first sentence."""
    start, end = f.extra.get("quote") or (f.extra.get("start"), f.extra.get("end"))
    if start is None or end is None:
        hit = doc.locate(f.source_text or str(f.value))
        if not hit:
            return Span(0, 0, f.page or 1, "")
        start, end = hit[0].start, hit[0].end
    clause = Span(start, end, doc.page_at(start), doc.text[start:end])
    sents = sentences_of(clause) or [clause]
    value = str(f.value).lower() if f.value is not None else ""
    return trim(next((s for s in sents if value and value in squash(s.text).lower()), sents[0]), 80)


def answer_from_clauses(doc: Document, spec: DomainSpec, facts: list[Fact], question: str,
                        say_absent: bool = False) -> Answer | None:
    """A look-up in the extracted clause facts for a question that names one ("Which law governs this
    agreement?", "Can a party terminate for convenience? Answer yes or no."): the clause is quoted with its page.
    Yes/no: "Does the agreement ...?" / "Is there ...?" questions by the clause's presence, "Can a party ...?" ones
    only for clauses that grant a right (spec `grants`). A clause not found is answered "No" only when `say_absent`
    (model-free runs, or after the engine's answer failed verification); otherwise None, and the engine reads the
    document first."""
    fs = _clause_named(spec, question.lower())
    if fs is None:
        return None
    f = next((x for x in facts if x.name == fs.name and x.page is not None), None)
    yesno = bool(_YESNO_Q.search(question))
    if yesno and not (_PRESENCE_Q.search(question) or fs.grants):
        return None  # "Can a party assign without consent?": a restriction's presence is not the answer's polarity
    if f is None:
        if not (yesno and say_absent):
            return None
        return Answer(f"No: no {fs.title.lower()} clause was found in the document (a clause search, not a reading by "
                      "a model).", None, [], "facts", None, fs.name)
    quote = _clause_quote(doc, f)
    if not quote.text.strip():
        return None
    cited = f"\u201c{squash(quote.text)}\u201d [p.{quote.page}]"
    value = squash(str(f.value)) if fs.value != "text" and f.value is not None else ""
    if value.lower() == squash(quote.text).lower() or (len(value) > 80 and not f.derived):
        value = ""  # the quote is the value, or the value is a sentence (no short value was read out)
    if yesno:
        text = f"Yes: {fs.title}: {cited}"
    else:
        text = f"{fs.title}: {value} \u2014 {cited}" if value else f"{fs.title}: {cited}"
    return Answer(text, None, [quote.page], "facts", None, fs.name)


# ---- with the engine / model-free ----------------------------------------------------------------
def answer_with_engine(doc: Document, spec: DomainSpec, facts: list[Fact], question: str, settings: Settings,
                       engine) -> Answer:
    return _EngineAsker(doc, spec, facts, settings, engine).answer(question)


# New tokens per answer: an answer is a sentence or two with its page marks (about 45 words); each question after
# the shared prefill costs its task tokens plus these, so they bound what a further question adds.
ANSWER_TOKENS = 64


class _EngineAsker:
    """The model answering questions after the whole document (ONE prompt, document first, the question last).
    shared=True prefills the document part once and generates each question after it (several questions); a
    single question is one plain generation. Every answer's sentences pass the verifier or fall back."""

    def __init__(self, doc: Document, spec: DomainSpec, facts: list[Fact], settings: Settings, engine,
                 shared: bool = False):
        self.doc, self.spec, self.facts, self.engine = doc, spec, facts, engine
        s = settings.model_copy(deep=True)
        s.memo.reserve = max(s.memo.reserve, 128)
        self.built = build_prompt(doc, spec, facts, s, engine.count_tokens, engine.context_length or DEFAULT_CONTEXT)
        self.max_new = min(settings.engine.max_new_tokens, ANSWER_TOKENS)
        self.session = self.tail = None
        if shared:
            prefix, self.tail = engine.render_chat(self.built.messages()).split(TASK_SENTINEL, 1)
            self.session = engine.prefill(prefix, reserve=self.max_new + 512)

    def generate(self, question: str) -> str:
        task = ask_text(self.spec, question)
        if self.session is not None:
            return self.session.generate(task + self.tail, max_new_tokens=self.max_new).text
        return self.engine.generate(self.built.messages(task), max_new_tokens=self.max_new).text

    def answer(self, question: str) -> Answer:
        doc, facts = self.doc, self.facts
        checks = verify_text(doc, self.generate(question), facts, pages=self.built.report.pages_included)
        asked = _content_words(question)
        good = [c for c in checks if c.ok and (_content_words(c.text) & asked)]  # supported AND on the question
        if good:
            text = " ".join(c.text for c in good)
            nums = [m.group(0) for c in good for m in NUMBER.finditer(re.sub(r"\[p\.\d+\]", " ", c.text))]
            value = to_number(nums[0]) if nums else None
            return Answer(text, value, sorted({p for c in good for p in c.citations}), "engine", None, None,
                          [c.to_dict() for c in checks])
        fallback = (answer_effect(doc, question) or answer_from_clauses(doc, self.spec, facts, question, say_absent=True)
                    or answer_from_passage(doc, question))
        lead = {"rules": "by the reporting sentence: ", "facts": ""}.get(fallback.source, "the closest passage: ")
        fallback.text = "The model's answer could not be verified against the document; " + lead + fallback.text
        fallback.checks = [c.to_dict() for c in checks]
        return fallback


def answer_from_passage(doc: Document, question: str) -> Answer:
    best = _best_passage(doc, question)
    if best is None:
        return Answer("No passage of the document matches the question.", None, [], "passage")
    best = trim(best, 80)
    return Answer(f"\u201c{squash(best.text)}\u201d [p.{best.page}]", None, [best.page], "passage")


def _best_passage(doc: Document, question: str) -> Span | None:
    """The paragraph closest to the question (BM25), searched first in the sections whose titles name its topic."""
    paras = [p for p in paragraphs(doc) if len(p.text.split()) >= 12]
    inside = _titled_sections(doc, question)
    clipped = [_clip(doc, p, s) for p in paras for s in inside if p.start < s.end and p.end > s.start]
    paras = [p for p in clipped if len(p.text.split()) >= 12] or paras
    if not paras:
        return None
    scores = BM25([p.text for p in paras]).scores(question)
    return paras[max(range(len(paras)), key=lambda i: scores[i])]


def _clip(doc: Document, p: Span, s) -> Span:
    start, end = max(p.start, s.start), min(p.end, s.end)
    return Span(start, end, doc.page_at(start), doc.text[start:end])


def _titled_sections(doc: Document, question: str) -> list:
    """Top-level sections whose title's content words (stemmed) the question uses ("legal battles" -> "Item 3.
    Legal Proceedings"): where the filing itself files the topic. [] when no title matches."""
    asked = {_stem(w) for w in _content_words(question)}
    out = []
    for s in doc.sections:
        words = {_stem(w) for w in _content_words(re.sub(r"^(item|part|article|section)\s+[\w.]+\s*", "", s.title, flags=re.I))}
        if s.level == 1 and words and words & asked:
            out.append(s)
    return out


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z\-]{3,}", text.lower()) if w not in STOP}
