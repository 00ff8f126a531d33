"""The prompt builder: ONE long-context prompt per document, the document before the task.

    built = build_prompt(doc, spec, facts, settings, counter)      # counter: text -> tokens
    built.messages(task)  -> [{"role": "system", ...}, {"role": "user", ...}]
    built.document        -> the document text with [p.N] page markers (what the model reads)
    built.report          -> BudgetReport (budget, tokens used, what was kept / left out)

No retrieval and no chunking: when the whole document fits the budget (model context - generation
reserve) it goes in whole. When it does not, whole sections are kept in the domain's priority order
(spec.section_priority); a section too large for what is left contributes its pages in page-priority
order (spec.page_priority_patterns first, then reading order) until the budget is full. What was left
out is reported (memo appendix and --json). Kept text is always shown in document order.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from m3analyst.domains.facts import Fact
from m3analyst.domains.spec import DomainSpec
from m3analyst.ingest.model import Document
from m3analyst.resources import resource_dir
from m3analyst.settings import Settings

TASK_SENTINEL = "\u2063TASK\u2063"  # invisible separator marking where the per-heading task goes
CHARS_PER_TOKEN = 4.0  # estimate used when no tokenizer is at hand (model-free mode)
MAX_CHARS_PER_TOKEN = 12.0  # no real text packs more characters into one token (BPE: ~4 for English prose)
DEFAULT_CONTEXT = 8192

Counter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


@dataclass
class Unit:
    """A piece of the document the budget keeps or leaves out whole: a section or a page."""

    title: str
    kind: str
    start: int
    end: int
    page_start: int
    page_end: int
    tokens: int = 0
    estimated: bool = False  # too long to ever fit: tokens = chars / CHARS_PER_TOKEN, never tokenized


@dataclass
class Segment:
    """Maps document-string offsets back to Document.text: [doc_start, doc_end) of `page`."""

    prompt_start: int  # offset in BuiltPrompt.document
    prompt_end: int
    doc_start: int
    doc_end: int
    page: int


@dataclass
class BudgetReport:
    context_length: int
    reserve: int
    budget: int  # tokens allowed for the whole prompt
    prompt_tokens: int  # tokens of the prompt without a task
    overhead_tokens: int  # system + template + facts table + task reserve (what the document cannot use)
    document_tokens_total: int  # tokens of the whole document (parts that could never fit: estimated, see below)
    document_tokens_kept: int
    estimated: bool  # token counts are estimates (no tokenizer)
    included: list[dict] = field(default_factory=list)  # {title, kind, pages, tokens, partial}
    omitted: list[dict] = field(default_factory=list)
    pages_included: list[int] = field(default_factory=list)
    total_estimated: bool = False  # document_tokens_total holds chars / CHARS_PER_TOKEN for parts never tokenized

    @property
    def complete(self) -> bool:
        return not self.omitted

    def to_dict(self) -> dict:
        d = asdict(self)
        d["complete"] = self.complete
        return d


@dataclass
class BuiltPrompt:
    system: str
    user_template: str  # the user turn with TASK_SENTINEL where the task goes
    document: str  # document text with [p.N] markers
    segments: list[Segment]
    report: BudgetReport

    def messages(self, task: str = TASK_SENTINEL) -> list[dict]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user_template.replace(TASK_SENTINEL, task)}]

    def page_of(self, offset_in_document: int) -> int | None:
        """Page of a character offset inside `document` (None for markers and gaps)."""
        for s in self.segments:
            if s.prompt_start <= offset_in_document < s.prompt_end:
                return s.page
        return None

    def plain_text(self, task: str = "") -> str:
        """The prompt as plain text (no chat template), for reports and model-free mode."""
        return f"{self.system}\n\n{self.user_template.replace(TASK_SENTINEL, task)}"


# ---- templates ---------------------------------------------------------------------------------
def _env(spec: DomainSpec | None) -> Environment:
    folders = []
    if spec is not None and spec.path is not None:
        folders += [str(spec.path.parent), str(spec.path.parent / "prompts")]
    folders.append(str(resource_dir("prompts")))
    return Environment(loader=FileSystemLoader(folders), undefined=StrictUndefined, keep_trailing_newline=True,
                       trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render_template(name: str, spec: DomainSpec | None = None, **values) -> str:
    return _env(spec).get_template(name).render(**values)


def task_text(spec: DomainSpec, heading: str, contains: str, question: str, max_words: int) -> str:
    return render_template("task.j2", spec, heading=heading, contains=contains, question=question, max_words=max_words).strip()


def ask_text(spec: DomainSpec | None, question: str) -> str:
    return render_template("ask.j2", spec, question=question).strip()


# ---- units and priorities ----------------------------------------------------------------------
def units_of(doc: Document) -> list[Unit]:
    """Top-level sections (plus the text before/between them), or pages when there are no sections."""
    tops = sorted((s for s in doc.sections if s.level == 1), key=lambda s: s.start)
    if not tops:
        return [Unit(f"page {p.number}", "page", p.start, p.end, p.number, p.number) for p in doc.pages]
    out, pos = [], 0
    for s in tops:
        if s.start > pos and doc.text[pos : s.start].strip():
            out.append(_span_unit(doc, "front matter" if pos == 0 else "other", "other", pos, s.start))
        start = max(s.start, pos)
        if s.end > start:
            out.append(Unit(s.title.strip(), s.kind, start, s.end, doc.page_at(start), doc.page_at(max(start, s.end - 1))))
        pos = max(pos, s.end)
    if pos < len(doc.text) and doc.text[pos:].strip():
        out.append(_span_unit(doc, "other", "other", pos, len(doc.text)))
    return out


def _span_unit(doc: Document, title: str, kind: str, start: int, end: int) -> Unit:
    return Unit(title, kind, start, end, doc.page_at(start), doc.page_at(max(start, end - 1)))


def _page_rank(doc: Document, spec: DomainSpec, number: int) -> int:
    """Pages the loader found statement tables on first (0), then the index+1 of the first
    page_priority_pattern matching the page's head; pages matching page_low_patterns (auditor's report,
    exhibit index) come last."""
    head = doc.page_text(number)[:1500]
    n = len(spec.page_priority_patterns)
    if any(re.search(p, head) for p in spec.page_low_patterns):
        return n + 2
    if any(t.page == number and t.kind for t in doc.tables):
        return 0
    for i, pat in enumerate(spec.page_priority_patterns):
        if re.search(pat, head):
            return i + 1
    return n + 1


def _unit_rank(doc: Document, spec: DomainSpec, u: Unit) -> tuple[int, int]:
    if u.kind == "page":
        return (_page_rank(doc, spec, u.page_start), u.start)
    order = spec.priority_for(doc.metadata.kind)
    if u.kind in order:
        return (order.index(u.kind), u.start)
    return (len(order) + 1, u.start)


def _pages_of(doc: Document, u: Unit) -> list[Unit]:
    out = []
    for n in range(u.page_start, u.page_end + 1):
        p = doc.pages[n - 1]
        a, b = max(p.start, u.start), min(p.end, u.end)
        if b > a:
            out.append(Unit(f"{u.title} p.{n}", u.kind, a, b, n, n))
    return out


# ---- rendering ---------------------------------------------------------------------------------
_BLANKS = re.compile(r"\n{3,}")


def render_document(doc: Document, ranges: list[tuple[int, int]]) -> tuple[str, list[Segment]]:
    """Kept ranges in document order, each page's text preceded by its [p.N] marker."""
    parts: list[str] = []
    segs: list[Segment] = []
    pos = 0
    last_end = None
    for a, b in sorted(ranges):
        if last_end is not None and a > last_end:
            parts.append("[...]\n")
            pos += 6
        for p in doc.pages:
            lo, hi = max(a, p.start), min(b, p.end)
            if hi <= lo:
                continue
            marker = f"[p.{p.number}]\n"
            parts.append(marker)
            pos += len(marker)
            body = doc.text[lo:hi]
            # keep 1:1 offsets into Document.text: only strip trailing whitespace
            body = body.rstrip() + "\n"
            segs.append(Segment(pos, pos + len(body), lo, lo + len(body.rstrip()), p.number))
            parts.append(body)
            pos += len(body)
        last_end = b
    return "".join(parts), segs


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 2:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def fact_rows(facts: list[Fact], limit: int = 40, periods: int = 2) -> list[dict]:
    """Facts as template rows (label, period, value, page): the `periods` latest periods of each fact,
    reported facts before derived ones, at most `limit` rows (the prompt's facts table stays short)."""
    from m3analyst.text import period_key

    by_name: dict[str, list[Fact]] = {}
    for f in facts:
        if f.page is not None:
            by_name.setdefault(f.name, []).append(f)
    rows: list[Fact] = []
    for group in by_name.values():
        rows += sorted(group, key=lambda f: period_key(f.period), reverse=True)[:periods]
    rows.sort(key=lambda f: f.derived)
    return [{"label": f.title, "period": f.period, "value": _short(f.display()), "page": f.page} for f in rows[:limit]]


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- the builder -------------------------------------------------------------------------------
def build_prompt(doc: Document, spec: DomainSpec, facts: list[Fact], settings: Settings,
                 counter: Counter | None = None, context_length: int | None = None,
                 partial_share: float = 0.5) -> BuiltPrompt:
    """Assemble the one prompt, keeping whole sections in priority order when the document is too long."""
    count = counter or estimate_tokens
    ctx = context_length or DEFAULT_CONTEXT
    reserve = settings.memo.reserve
    fits = max(256, ctx - reserve)  # a --budget beyond the model's (possibly time-capped) context is cut to fit
    budget = min(settings.memo.budget, fits) if settings.memo.budget else fits
    meta = doc.metadata
    title = meta.title or meta.company or (meta.source or "the document").split("/")[-1]
    rows = fact_rows(facts)

    def user(document: str, omitted: list[str]) -> str:
        return render_template(spec.prompt, spec, title=title, kind=meta.kind, n_pages=doc.n_pages, document=document,
                               omitted=omitted, facts=rows, task=TASK_SENTINEL)

    system = spec.role.strip()
    task_reserve = 120  # tokens of the longest per-heading task appended later
    overhead = count(system) + count(user("", [])) + task_reserve + 16  # chat-template tokens

    units = units_of(doc)
    room = budget - overhead
    # Exact counts only where the answer matters: a text longer than room * MAX_CHARS_PER_TOKEN characters cannot
    # fit whatever the tokenizer says, so it is never tokenized (a 500-page 10-K: ~1 s of tokenizing saved).
    limit = None if len(doc.text) <= room * MAX_CHARS_PER_TOKEN else room
    for u in units:
        _measure(u, doc.text[u.start : u.end], count, limit, 4 * (u.page_end - u.page_start + 1))
    total = sum(u.tokens for u in units)
    kept: list[Unit] = []
    partial: dict[str, list[Unit]] = {}
    omitted: list[Unit] = []
    if total <= room and limit is None:
        kept = list(units)
    else:
        for u in sorted(units, key=lambda u: _unit_rank(doc, spec, u)):
            if not u.estimated and u.tokens <= room:  # room only shrinks: an estimated unit never fits
                kept.append(u)
                room -= u.tokens
                continue
            # An oversized section gives at most `partial_share` of what is left (at least one page), so the
            # next sections in priority order still get pages (10-K: MD&A, then statements, then risk factors).
            got, cap = [], partial_share * room
            for pg in sorted(_pages_of(doc, u), key=lambda x: (_page_rank(doc, spec, x.page_start), x.start)):
                _measure(pg, doc.text[pg.start : pg.end], count, room, 4)
                if pg.estimated:
                    continue
                used = sum(g.tokens for g in got)
                if pg.tokens <= room and (used + pg.tokens <= cap or not got):
                    got.append(pg)
                    room -= pg.tokens
            if got:
                partial[u.title] = got
                kept.extend(got)
            omitted.append(u)
    parent = {id(pg): u for u, pgs in ((u, partial.get(u.title, [])) for u in units) for pg in pgs}
    while True:  # render; if the estimate fell short (template, omitted list), drop the last-kept piece
        document, segs = render_document(doc, _merge([(u.start, u.end) for u in kept]))
        omitted_desc = [_describe(u, partial.get(u.title)) for u in sorted(omitted, key=lambda u: u.start)]
        if len(omitted_desc) > 8:
            omitted_desc = omitted_desc[:8] + [f"{len(omitted_desc) - 8} more"]
        user_text = user(document, omitted_desc)
        if count(system) + count(user_text.replace(TASK_SENTINEL, "")) + 16 + task_reserve <= budget or not kept:
            break
        dropped = kept.pop()
        owner = parent.get(id(dropped))
        if owner is not None:
            partial[owner.title].remove(dropped)
        else:
            omitted.append(dropped)
    included = [_unit_dict(u) for u in sorted(kept, key=lambda u: u.start)]
    report = BudgetReport(
        context_length=ctx, reserve=reserve, budget=budget, overhead_tokens=overhead,
        prompt_tokens=count(system) + count(user_text.replace(TASK_SENTINEL, "")) + 16,
        document_tokens_total=total, document_tokens_kept=sum(u.tokens for u in kept),
        estimated=counter is None, total_estimated=counter is not None and any(u.estimated for u in units),
        included=included, omitted=[_unit_dict(u, partial.get(u.title)) for u in sorted(omitted, key=lambda u: u.start)],
        pages_included=sorted({s.page for s in segs}),
    )
    return BuiltPrompt(system, user_text, document, segs, report)


def _measure(u: Unit, text: str, count: Counter, room: int | None, markers: int) -> None:
    """Set u.tokens: exact, unless `room` is given and the text is longer than room * MAX_CHARS_PER_TOKEN
    characters (it cannot fit, whatever the tokenizer says), then estimated without tokenizing."""
    if room is not None and len(text) > room * MAX_CHARS_PER_TOKEN:
        u.tokens, u.estimated = estimate_tokens(text) + markers, True
    else:
        u.tokens, u.estimated = count(text) + markers, False


def _describe(u: Unit, got: list[Unit] | None) -> str:
    title = _short(u.title, 48)
    pages = f"pp. {u.page_start}-{u.page_end}" if u.page_end > u.page_start else f"p. {u.page_start}"
    if got:
        return f"{title} ({pages}; only pages {', '.join(str(g.page_start) for g in sorted(got, key=lambda g: g.start))} kept)"
    return f"{title} ({pages})"


def _unit_dict(u: Unit, got: list[Unit] | None = None) -> dict:
    d = {"title": u.title, "kind": u.kind, "pages": [u.page_start, u.page_end], "tokens": u.tokens}
    if got is not None:
        d["pages_kept"] = [g.page_start for g in got]
    return d
