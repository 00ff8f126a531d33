"""The memo writer: facts (extractors) + findings (the domain's rules) + key passages (chosen by the engine) +
verified narrative.

Each memo heading states the findings whose `section` names it (claim sentence, figures tied to facts, evidence
quoted with pages); a heading no finding names falls back to quoted passages, and the memo says so.

Each memo heading states the findings whose `section` names it (claim sentence, figures tied to facts, evidence
quoted with pages); a heading no finding names falls back to quoted passages, and the memo says so.

    memo = write_memo(doc, "finance", settings, engine)       # engine=None + model None: extractive

With an engine: the ONE prompt (document first, then facts, then the task) is prefilled once; for each
memo heading the model answers the heading's question after the cached document (the narrative draft;
its MSA block reads show which pages it read) and scores each candidate passage (mean log-prob after
the document + question). Passages are ranked by those engine signals and quoted verbatim with their
pages; generated sentences pass the verifier or are dropped. Without a model (settings.engine.model ==
"none") passages are ranked lexically and the memo says so.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from m3analyst.domains import detect_domain, extract_facts, load_domain
from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Finding
from m3analyst.domains.plugins import make_findings
from m3analyst.domains.spec import DomainSpec, OutlineItem
from m3analyst.text import paragraphs
from m3analyst.ingest.model import Citation, Document
from m3analyst.injection import instruction_free
from m3analyst.memo.types import Memo, MemoSection, Quote
from m3analyst.memo.passages import (BM25, Candidate, TokenMap, block_reads, candidates, page_reads, quote_text,
                                     rank_by_engine, rank_lexically)
from m3analyst.memo.rephrase import apply_rephrasing as _apply_rephrasing  # noqa: F401 (tests import it here)
from m3analyst.memo.rephrase import MAX_TOKENS as REPHRASE_TOKENS, rephrasable, rephrase_findings
from m3analyst.memo.timebudget import TimeBudget, for_engine
from m3analyst.memo.verify import unsupported_figures, verify_text
from m3analyst.prompting import DEFAULT_CONTEXT, TASK_SENTINEL, BuiltPrompt, build_prompt, task_text
from m3analyst.settings import Settings

Progress = Callable[[str, int, int], None]  # (description, done, total)
PREFILL_MIN_SHARE, PREFILL_MAX_SHARE = 0.25, 0.6  # of the time left after the model's load (time budget, CPU)


class _Clock:
    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0


def write_memo(doc: Document, domain: str | None = None, settings: Settings | None = None, engine=None,
               progress: Progress | None = None, started: float | None = None) -> Memo:
    """The memo of `doc`. With a model on CPU, `settings.engine.time_budget` seconds from `started` (time.monotonic()
    of the command's start; default now) bind every model phase (memo/timebudget.py)."""
    started = time.monotonic() if started is None else started
    settings = settings or Settings()
    doc = instruction_free(doc)  # text addressed to a reader or model is never read as a fact, quoted or prompted
    clock = _Clock()
    with clock("domain"):
        spec = load_domain(domain or detect_domain(doc))
    report = progress or (lambda desc, done, total: None)
    with clock("extract"):
        facts = extract_facts(doc, spec)
    with clock("findings"):
        found = make_findings(doc, spec, facts)
    if engine is None and settings.engine.model is not None:
        report("loading model", 0, 1)
        with clock("model_load"):  # the engine's imports (torch, transformers: 33 s at load 13) included
            from m3analyst.engine import load_engine

            engine = load_engine(settings.engine)
    by_heading_f = _by_section(found)
    # findings headings (kind "findings") hold only the domain's findings; a heading no finding states gets passages
    items = [o for o in spec.outline if o.kind not in ("facts", "findings") and o.heading not in by_heading_f]
    with clock("budget"):
        budget = for_engine(engine, settings.engine.time_budget, started) if engine is not None else None
    with clock("prompt"):
        ctx = engine.context_length if engine else DEFAULT_CONTEXT
        prefill_s = _prefill_allowance(budget, engine, items, found, settings) if budget is not None else None
        if prefill_s is not None:
            budget.prompt_cap = budget.prefill_tokens(prefill_s)
            ctx = min(ctx, budget.prompt_cap + settings.memo.reserve)
        built = build_prompt(doc, spec, facts, settings, engine.count_tokens if engine else None, ctx)
    with clock("candidates"):  # passages are proposed only for headings no finding states
        paras = paragraphs(doc) if items else []
        bm25 = BM25([p.text for p in paras])
    if engine is not None and prefill_s is not None and budget.cost(built.report.prompt_tokens) > 1.15 * prefill_s:
        budget.cut(f"reading the document: the smallest prompt ({built.report.prompt_tokens:,} tokens) needs "
                   f"~{budget.cost(built.report.prompt_tokens):.0f} s of prefill, {prefill_s:.0f} s could be spent; "
                   "passages chosen lexically, no block provenance")
        sections = _extractive_sections(doc, facts, settings, paras, bm25, items, clock, report)
        engine_info = _unread_info(engine, settings, doc, spec, found, budget, clock)
    elif engine is not None:
        sections, engine_info = _engine_sections(doc, spec, facts, built, settings, engine, paras, bm25, items, clock,
                                                 report, found, budget)
    else:
        sections, engine_info = _extractive_sections(doc, facts, settings, paras, bm25, items, clock, report), None
    by_heading = {s.heading: s for s in sections}
    by_heading.update({h: _findings_section(h, fs, spec) for h, fs in by_heading_f.items()})
    ordered = [by_heading.pop(o.heading, None) or MemoSection(o.heading, "facts", o.contains) for o in spec.outline
               if o.kind != "findings" or o.heading in by_heading]
    ordered += list(by_heading.values())  # findings under a heading the outline does not list
    memo = Memo(
        domain=spec.name, title=_title(doc, spec, facts), document=_doc_info(doc),
        mode="engine" if engine is not None else "extractive", facts=facts, sections=ordered,
        budget=built.report.to_dict(), engine=engine_info, grounding={}, timings=clock.t,
        settings=settings.model_dump(), chart_series=list(spec.chart), drop_unsupported=settings.memo.drop_unsupported,
    )
    with clock("grounding"):
        memo.grounding = grounding(memo, doc)
    return memo


# ---- model-free ----------------------------------------------------------------------------------
def _extractive_sections(doc, facts, settings, paras, bm25, items, clock, report) -> list[MemoSection]:
    out, used = [], set()
    for i, item in enumerate(items):
        report(f"choosing passages: {item.heading}", i, len(items))
        with clock("rank"):
            cands = rank_lexically(_unused(candidates(doc, item, facts, None, paras, bm25, k=6 + len(used)), used))
        out.append(_section(item, cands, settings, "lexical (no model)"))
        used |= {(q.start, q.end) for q in out[-1].quotes}
    report("passages chosen", len(items), len(items))
    return out


# ---- with the engine -----------------------------------------------------------------------------
def _engine_sections(doc: Document, spec: DomainSpec, facts, built: BuiltPrompt, settings: Settings, engine, paras,
                     bm25, items: list[OutlineItem], clock: _Clock, report: Progress, found: list[Finding] = (),
                     budget: TimeBudget | None = None):
    chat = engine.render_chat(built.messages())
    prefix, tail = chat.split(TASK_SENTINEL, 1)
    report("reading the document (prefill)", 0, len(items) + 1)
    n_new = settings.engine.max_new_tokens
    with clock("prefill"):
        sess = engine.prefill(prefix, reserve=max(n_new, 64) + 512)
    if budget is not None:
        budget.observe_prefill(sess.n_tokens, sess.prefill_s)
    doc_off = prefix.find(built.document)
    tmap = TokenMap(doc_off, built.segments, [o[0] for o in sess.prefix_offsets])
    ranges = [(s.doc_start, s.doc_end) for s in built.segments]
    bos = engine.count_tokens("")
    stats_all = []
    out, used = [], set()
    keep = _rephrase_cost(budget, engine, found) if budget is not None else 0.0
    for i, item in enumerate(items):
        report(f"writing: {item.heading}", i + 1, len(items) + 1)
        question = item.question or item.contains or item.heading
        suffix = task_text(spec, item.heading, item.contains, question, item.max_words) + tail
        n_out = min(n_new, settings.memo.heading_tokens, int(item.max_words * 1.6))
        with clock("decode"):
            res = _heading_draft(sess, engine, suffix, n_out, budget, keep, item.heading)
        if res is not None:
            stats_all.append(res.stats)
        with clock("rank"):
            ranked, outside = _rank_passages(doc, item, facts, ranges, paras, bm25, used, settings, sess, engine, tail,
                                             question, bos, tmap, res, budget, keep)
        with clock("verify"):
            claims = verify_text(doc, res.text, facts, pages=built.report.pages_included) if res is not None else []
        sec = _section(item, ranked, settings, "lexical (outside the prompt)" if outside else
                       "engine" if ranked and ranked[0].engine_logprob is not None else "lexical (time budget)")
        sec.claims = claims
        sec.raw_generation = res.text if res is not None else None
        reads = page_reads(res.stats.block_hits, tmap, sess.n_tokens, settings.engine.attention.block_size) \
            if res is not None else {}
        sec.pages_read = sorted(reads.items(), key=lambda kv: -kv[1])[:5]
        out.append(sec)
        used |= {(q.start, q.end) for q in sec.quotes}
    counts = _model_findings(spec, sess, engine, tail, list(found), clock, stats_all, budget)
    report("memo written", len(items) + 1, len(items) + 1)
    info = {
        "name": engine.name, "context_length": engine.context_length, "prompt_tokens": sess.n_tokens,
        "prefill_s": round(sess.prefill_s, 3), "attention": settings.engine.attention.model_dump(),
        "calls": [_stats_dict(s) for s in stats_all], "document_read": True, "rephrasings": counts,
        "new_tokens": sum(s.new_tokens for s in stats_all), "decode_s": round(sum(s.decode_s for s in stats_all), 3),
    }
    return out, _with_budget(info, budget, engine)


def _heading_draft(sess, engine, suffix: str, n_out: int, budget: TimeBudget | None, keep: float, heading: str):
    """The model's draft for one heading after the cached document (None when the time budget leaves no tokens)."""
    if budget is not None:
        allowed = budget.tokens_out(engine.count_tokens(suffix), keep)
        if allowed < min(n_out, 8):
            budget.cut(f"the model's draft for '{heading}' (no time left)")
            return None
        if allowed < n_out:
            budget.cut(f"the model's draft for '{heading}' capped at {allowed} of {n_out} tokens")
            n_out = allowed
    res = sess.generate(suffix, max_new_tokens=n_out, deadline=budget.deadline if budget is not None else None)
    if budget is not None:
        budget.observe(res.stats)
    return res


def _rank_passages(doc, item, facts, ranges, paras, bm25, used, settings, sess, engine, tail, question, bos, tmap, res,
                   budget: TimeBudget | None, keep: float):
    """A heading's candidate passages, ranked by the engine (block reads and log-prob after the document) while
    the time budget affords it, else lexically; (ranked, outside the prompt)."""
    k = settings.memo.candidates
    cands = _unused(candidates(doc, item, facts, ranges, paras, bm25, k=k + len(used)), used)[:k]
    outside = not cands  # nothing quotable in the prompt's text (e.g. only statement pages kept)
    if outside:
        return rank_lexically(_unused(candidates(doc, item, facts, None, paras, bm25, k=k + len(used)), used)), True
    probe = f"Question: {question}\nThe passage of the document that answers it:{tail}\""
    cost = (len(cands) + 1) * (engine.count_tokens(probe) + 60)
    if budget is not None and not budget.affords_tokens(cost, 0, keep):
        budget.cut(f"engine ranking of the passages for '{item.heading}' (lexical order kept)")
        return rank_lexically(cands), False
    base = _total_logprob(sess, engine, probe, bos)
    hits = res.stats.block_hits if res is not None else None
    for c in cands:
        if hits is not None:
            c.block_reads = block_reads(hits, tmap.token_range(c.span.start, c.span.end),
                                        settings.engine.attention.block_size)
        c.engine_logprob = _passage_logprob(sess, engine, probe, base, quote_text(c.span), bos)
    return rank_by_engine(cands), False


def _model_findings(spec: DomainSpec, sess, engine, tail: str, found: list[Finding], clock: _Clock,
                    stats_all: list, budget: TimeBudget | None = None) -> dict:
    """With the model: rank each finding's candidate driver sentences (mean log-prob after the document and the
    finding's question, as passages are ranked) while the time budget leaves room for the rephrasings, then let the
    model rephrase findings one short prompt each (memo/rephrase.py); returns the rephrasing counts."""
    bos = engine.count_tokens("")
    used: set[tuple[int, int]] = set()
    keep = _rephrase_cost(budget, engine, found) if budget is not None else 0.0
    with clock("rank"):
        for f in found:
            alts = f.extra.get("alternatives") or []
            if len(alts) <= 1:
                continue
            if budget is not None and not budget.affords_tokens((len(alts) + 1) * 80, 0, keep):
                budget.cut(f"engine ranking of the stated driver for '{f.claim[:40]}…' (the rule's choice stands)")
                continue
            _rank_driver(sess, engine, tail, f, bos, used)
    with clock("decode"):
        return rephrase_findings(engine, spec, found, budget, stats_all)


def _rephrase_cost(budget: TimeBudget, engine, found: list[Finding]) -> float:
    """Seconds the model's rephrasings are expected to take (their shared prompt and one short turn each)."""
    n = sum(1 for f in found if rephrasable(f))
    return budget.cost(400) + n * budget.cost(90, REPHRASE_TOKENS // 2) if n else 0.0


def _prefill_allowance(budget: TimeBudget, engine, items, found, settings: Settings) -> float:
    """Seconds the document prompt's prefill may take: what is left after the model's later work (heading drafts,
    scoring, rephrasings), at least PREFILL_MIN_SHARE and at most PREFILL_MAX_SHARE of the time left."""
    left = budget.left()
    later = _rephrase_cost(budget, engine, found) + len(items) * (
        budget.cost(100 + (settings.memo.candidates + 1) * 100, settings.memo.heading_tokens))
    return max(PREFILL_MIN_SHARE * left, min(PREFILL_MAX_SHARE * left, left - later))


def _unread_info(engine, settings: Settings, doc, spec, found, budget: TimeBudget, clock: _Clock) -> dict:
    """Engine info for a memo whose document the model did not read (time budget): only the rephrasings ran."""
    stats_all: list = []
    with clock("decode"):
        counts = rephrase_findings(engine, spec, list(found), budget, stats_all)
    info = {"name": engine.name, "context_length": engine.context_length, "prompt_tokens": 0, "prefill_s": 0.0,
            "attention": settings.engine.attention.model_dump(), "calls": [_stats_dict(s) for s in stats_all],
            "document_read": False, "rephrasings": counts, "new_tokens": sum(s.new_tokens for s in stats_all),
            "decode_s": round(sum(s.decode_s for s in stats_all), 3)}
    return _with_budget(info, budget, engine)


def _with_budget(info: dict, budget: TimeBudget | None, engine) -> dict:
    """The time budget's account in the engine info; this run's decode rate kept for the next one."""
    if budget is None:
        return info
    from m3analyst.engine.auto import engine_model_name, record_decode

    info["time_budget"] = budget.to_dict()
    steps = sum(max(c["new_tokens"] - 1, 0) for c in info["calls"])
    record_decode(engine_model_name(engine), steps, sum(c["decode_s"] for c in info["calls"]))
    return info


def _rank_driver(sess, engine, tail: str, f: Finding, bos: int, used: set[tuple[int, int]]) -> None:
    """Re-rank a finding's driver candidates by the engine; the best one no earlier finding cites becomes its driver."""
    probe = f"Question: {f.extra.get('question') or f.claim}\nThe sentence of the document that answers it:{tail}\""
    base = _total_logprob(sess, engine, probe, bos)
    alts = f.extra["alternatives"]
    for a in alts:
        a["engine_logprob"] = round(_passage_logprob(sess, engine, probe, base, a["quote"], bos), 4)
    free = [a for a in alts if (a["start"], a["end"]) not in used]
    if not free:
        return
    best = max(free, key=lambda a: a["engine_logprob"])
    used.add((best["start"], best["end"]))
    i = f.extra.get("driver_index", len(f.evidence) - 1)
    if 0 <= i < len(f.evidence):
        f.evidence[i] = Citation.from_dict(best)
        f.extra["driver_chosen_by"] = "engine"


def _stats_dict(s) -> dict:
    d = s.to_dict() if hasattr(s, "to_dict") else dict(s.__dict__)
    d.pop("block_hits", None)
    return d


def _total_logprob(sess, engine, text: str, bos: int) -> float:
    n = max(1, engine.count_tokens(text) - bos)
    return sess.score(text) * n


def _passage_logprob(sess, engine, probe: str, base: float, passage: str, bos: int, max_words: int = 40) -> float:
    """Mean log-prob per token of `passage` after document + probe (probe's own log-prob subtracted)."""
    passage = " ".join(passage.split()[:max_words])
    full = probe + passage
    n_full = max(1, engine.count_tokens(full) - bos)
    n_probe = max(1, engine.count_tokens(probe) - bos)
    total = sess.score(full) * n_full
    return (total - base) / max(1, n_full - n_probe)


def _unused(cands: list[Candidate], used: set[tuple[int, int]]) -> list[Candidate]:
    """Candidates not overlapping a passage an earlier heading already quoted."""
    return [c for c in cands if not any(c.span.start < b and a < c.span.end for a, b in used)]


# ---- findings ------------------------------------------------------------------------------------
def _by_section(found: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in found:
        out.setdefault(f.section or "Findings", []).append(f)
    return out


def _findings_section(heading: str, found: list[Finding], spec: DomainSpec) -> MemoSection:
    """A heading stated by findings; its quotes are the findings' evidence passages (JSON readers of quotes)."""
    item = next((o for o in spec.outline if o.heading == heading), None)
    quotes, seen = [], set()
    for f in found:
        for c in f.evidence:
            if c.has_span and (c.start, c.end) not in seen:
                seen.add((c.start, c.end))
                quotes.append(Quote(c.quote, c.page, c.start, c.end, "finding evidence"))
    kind = "facts" if item is not None and item.kind == "facts" else "findings"  # a facts heading keeps its table
    return MemoSection(heading, kind, item.contains if item else "", quotes=quotes, findings=found)


# ---- shared --------------------------------------------------------------------------------------
def _section(item: OutlineItem, ranked: list[Candidate], settings: Settings, chosen_by: str) -> MemoSection:
    k = item.max_quotes if item.max_quotes is not None else settings.memo.max_quotes
    quotes = [Quote(quote_text(c.span), c.span.page, c.span.start, c.span.end,
                    "fact clause" if c.from_fact and chosen_by.startswith("lexical") else chosen_by, c.score)
              for c in ranked[:k]]
    return MemoSection(item.heading, "passages", item.contains, quotes=quotes, candidates=[c.to_dict() for c in ranked])


def grounding(memo: Memo, doc: Document) -> dict:
    """How much of the memo is quoted, generated-and-verified and dropped; citations checked."""
    claims = [c for s in memo.sections for c in s.claims]
    tries = [f.extra["rephrasing"] for f in memo.findings if f.extra.get("rephrasing")]  # every model rephrasing
    quoted = sum(len(q.text) for s in memo.sections for q in s.quotes)
    generated = sum(len(c.text) for c in claims) + sum(len(t["text"]) for t in tries)
    verified = sum(len(c.text) for c in claims if c.ok) + sum(len(t["text"]) for t in tries if t["accepted"])
    unsupported = sum(1 for c in claims if not c.ok)
    accepted = sum(1 for t in tries if t["accepted"])
    bad = sum(len(c.bad_citations) for c in claims)
    invalid = [p for p in memo.citations if not doc.has_page(p)]
    found = memo.findings
    return {
        "findings": len(found), "findings_by_model": sum(1 for f in found if f.source == "model"),
        "finding_figures": sum(len(f.figures) for f in found),
        "unsupported_figures": sum(len(unsupported_figures(f, memo.facts)) for f in found),
        "quoted_chars": quoted, "generated_chars": generated, "verified_chars": verified,
        # generated / verified sentences: the heading drafts' sentences and the findings' rephrasings together
        "generated_sentences": len(claims) + len(tries), "verified_sentences": len(claims) - unsupported + accepted,
        "rephrasings_tried": len(tries), "rephrasings_accepted": accepted,
        "dropped_sentences": unsupported if memo.drop_unsupported else 0, "unsupported_claims": unsupported,
        "bad_citations_removed": bad, "invalid_citations_emitted": invalid,
        "citations_added": sum(1 for c in claims if c.cited_by_verifier),
        "facts": len(memo.facts), "facts_with_page": sum(1 for f in memo.facts if f.page),
        "grounding_score": round((quoted + verified) / (quoted + generated), 4) if quoted + generated else 1.0,
    }


def _title(doc: Document, spec: DomainSpec, facts: list[Fact] | None = None) -> str:
    """'<spec title>: <company, or the parties the extractor read (else the loader's), or the title>'."""
    m = doc.metadata
    parties = next((f.value for f in facts or [] if f.name == "parties" and isinstance(f.value, str) and f.value), None)
    name = m.company or parties or (", ".join(m.parties[:2]) if m.parties else None) or m.title
    src = (m.source or "document").split("/")[-1]
    return f"{spec.title}: {name or src}"


def _doc_info(doc: Document) -> dict:
    m = doc.metadata
    return {"source": m.source, "kind": m.kind, "pages": doc.n_pages, "title": m.title, "company": m.company,
            "parties": m.parties, "sha256": m.sha256, "warnings": doc.warnings[:20]}
