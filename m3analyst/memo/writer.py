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
from m3analyst.memo.verify import CITE, check_rephrasing, citations_in, split_sentences, unsupported_figures, verify_text
from m3analyst.prompting import DEFAULT_CONTEXT, TASK_SENTINEL, BuiltPrompt, build_prompt, render_template, task_text
from m3analyst.settings import Settings

Progress = Callable[[str, int, int], None]  # (description, done, total)


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
               progress: Progress | None = None) -> Memo:
    settings = settings or Settings()
    doc = instruction_free(doc)  # text addressed to a reader or model is never read as a fact, quoted or prompted
    spec = load_domain(domain or detect_domain(doc))
    report = progress or (lambda desc, done, total: None)
    clock = _Clock()
    with clock("extract"):
        facts = extract_facts(doc, spec)
    with clock("findings"):
        found = make_findings(doc, spec, facts)
    if engine is None and settings.engine.model is not None:
        from m3analyst.engine import load_engine

        report("loading model", 0, 1)
        with clock("model_load"):
            engine = load_engine(settings.engine)
    with clock("prompt"):
        built = build_prompt(doc, spec, facts, settings, engine.count_tokens if engine else None,
                             engine.context_length if engine else DEFAULT_CONTEXT)
    by_heading_f = _by_section(found)
    # findings headings (kind "findings") hold only the domain's findings; a heading no finding states gets passages
    items = [o for o in spec.outline if o.kind not in ("facts", "findings") and o.heading not in by_heading_f]
    with clock("candidates"):  # passages are proposed only for headings no finding states
        paras = paragraphs(doc) if items else []
        bm25 = BM25([p.text for p in paras])
    if engine is not None:
        sections, engine_info = _engine_sections(doc, spec, facts, built, settings, engine, paras, bm25, items, clock,
                                                 report, found)
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
                     bm25, items: list[OutlineItem], clock: _Clock, report: Progress, found: list[Finding] = ()):
    chat = engine.render_chat(built.messages())
    prefix, tail = chat.split(TASK_SENTINEL, 1)
    report("reading the document (prefill)", 0, len(items) + 1)
    n_new = settings.engine.max_new_tokens
    with clock("prefill"):
        sess = engine.prefill(prefix, reserve=max(n_new, 64) + 512)
    doc_off = prefix.find(built.document)
    tmap = TokenMap(doc_off, built.segments, [o[0] for o in sess.prefix_offsets])
    ranges = [(s.doc_start, s.doc_end) for s in built.segments]
    bs = settings.engine.attention.block_size
    bos = engine.count_tokens("")
    stats_all = []
    out, used = [], set()
    for i, item in enumerate(items):
        report(f"writing: {item.heading}", i + 1, len(items) + 1)
        question = item.question or item.contains or item.heading
        suffix = task_text(spec, item.heading, item.contains, question, item.max_words) + tail
        with clock("decode"):
            res = sess.generate(suffix, max_new_tokens=min(n_new, settings.memo.heading_tokens, int(item.max_words * 1.6)))
        stats_all.append(res.stats)
        hits = res.stats.block_hits
        with clock("rank"):
            k = settings.memo.candidates
            cands = _unused(candidates(doc, item, facts, ranges, paras, bm25, k=k + len(used)), used)[:k]
            outside = not cands  # nothing quotable in the prompt's text (e.g. only statement pages kept)
            if outside:
                cands = rank_lexically(_unused(candidates(doc, item, facts, None, paras, bm25, k=k + len(used)), used))
            probe = f"Question: {question}\nThe passage of the document that answers it:{tail}\""
            base = _total_logprob(sess, engine, probe, bos)
            for c in cands if not outside else []:
                c.block_reads = block_reads(hits, tmap.token_range(c.span.start, c.span.end), bs)
                c.engine_logprob = _passage_logprob(sess, engine, probe, base, quote_text(c.span), bos)
            ranked = cands if outside else rank_by_engine(cands)
        with clock("verify"):
            claims = verify_text(doc, res.text, facts, pages=built.report.pages_included)
        sec = _section(item, ranked, settings, "lexical (outside the prompt)" if outside else "engine")
        sec.claims = claims
        sec.raw_generation = res.text
        reads = page_reads(hits, tmap, sess.n_tokens, bs)
        sec.pages_read = sorted(reads.items(), key=lambda kv: -kv[1])[:5]
        out.append(sec)
        used |= {(q.start, q.end) for q in sec.quotes}
    _model_findings(doc, spec, facts, sess, engine, tail, list(found), settings, clock, stats_all)
    report("memo written", len(items) + 1, len(items) + 1)
    info = {
        "name": engine.name, "context_length": engine.context_length, "prompt_tokens": sess.n_tokens,
        "prefill_s": round(sess.prefill_s, 3), "attention": settings.engine.attention.model_dump(),
        "calls": [_stats_dict(s) for s in stats_all],
        "new_tokens": sum(s.new_tokens for s in stats_all), "decode_s": round(sum(s.decode_s for s in stats_all), 3),
    }
    return out, info


def _model_findings(doc: Document, spec: DomainSpec, facts, sess, engine, tail: str, found: list[Finding],
                    settings: Settings, clock: _Clock, stats_all: list) -> None:
    """With the model: rank each finding's candidate driver sentences (mean log-prob after the document and the
    finding's question, as passages are ranked), then let it rephrase findings within the narrative's token budget
    (`heading_tokens` per findings heading); a rephrasing stands only when `check_rephrasing` finds nothing wrong."""
    bos = engine.count_tokens("")
    used: set[tuple[int, int]] = set()
    with clock("rank"):
        for f in found:
            if len(f.extra.get("alternatives") or []) > 1:
                _rank_driver(sess, engine, tail, f, bos, used)
    budget = settings.memo.heading_tokens * len(_by_section(found))
    with clock("decode"):
        for f in found:
            if budget < 16:
                break
            if f.topic in ("risk", "outlook") or not f.figures:
                continue  # quoted statements: nothing to rephrase
            res = sess.generate(render_template("rephrase.j2", spec, claim=f.claim).strip() + tail,
                                max_new_tokens=min(48, budget))
            stats_all.append(res.stats)
            budget -= max(1, res.stats.new_tokens)
            _apply_rephrasing(f, res.text)


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


def _apply_rephrasing(f: Finding, generated: str) -> None:
    sents = split_sentences(generated.strip().strip('"'))
    text = sents[0] if sents else ""
    if text and not CITE.search(text):
        text = f"{text.rstrip('.')} {' '.join(f'[p.{p}]' for p in citations_in(f.claim))}."
    if _plain(text) in (_plain(f.claim), ""):
        f.extra["rephrasing_rejected"] = {"text": text, "problems": ["no rephrasing (empty or the finding itself)"]}
        return
    problems = check_rephrasing(f, text)
    if problems:
        f.extra["rephrasing_rejected"] = {"text": text, "problems": problems}
        return
    f.template, f.claim, f.source = f.claim, text, "model"


def _plain(text: str) -> str:
    return " ".join(CITE.sub(" ", text).lower().replace("finding:", " ").split()).strip(" .")


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
    quoted = sum(len(q.text) for s in memo.sections for q in s.quotes)
    generated = sum(len(c.text) for c in claims)
    verified = sum(len(c.text) for c in claims if c.ok)
    unsupported = sum(1 for c in claims if not c.ok)
    bad = sum(len(c.bad_citations) for c in claims)
    invalid = [p for p in memo.citations if not doc.has_page(p)]
    found = memo.findings
    return {
        "findings": len(found), "findings_by_model": sum(1 for f in found if f.source == "model"),
        "finding_figures": sum(len(f.figures) for f in found),
        "unsupported_figures": sum(len(unsupported_figures(f, memo.facts)) for f in found),
        "quoted_chars": quoted, "generated_chars": generated, "verified_chars": verified,
        "generated_sentences": len(claims), "verified_sentences": len(claims) - unsupported,
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
