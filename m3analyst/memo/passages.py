"""Key passages: candidates proposed lexically, chosen by the engine (or lexically without a model).

Candidates for a memo heading are paragraphs of the text the prompt holds (BM25 against the heading's
queries, question and description; the heading's preferred sections and fact clauses get a boost).
With an engine the final choice is the model's: each candidate is scored by the mean log-prob the
model gives it after the whole document + the heading's question (`eng.score` on the prefilled
session), plus how often MSA read the candidate's KV blocks while the model answered that question
(`res.stats.block_hits`). Quotes are always verbatim slices of Document.text with their page.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from m3analyst.domains.facts import Fact
from m3analyst.domains.spec import OutlineItem
from m3analyst.text import Span, paragraphs, sentences_of, squash
from m3analyst.injection import instruction_spans
from m3analyst.ingest.model import Document

_TOKEN = re.compile(r"[a-z][a-z\-]+|\d+(?:\.\d+)?")


@dataclass
class Candidate:
    span: Span  # verbatim slice of Document.text
    lexical: float = 0.0
    engine_logprob: float | None = None  # mean log-prob per passage token given document + question
    block_reads: float | None = None  # MSA block reads per block over the passage's tokens
    score: float = 0.0  # final ranking score
    from_fact: str | None = None

    def to_dict(self) -> dict:
        r = lambda v, n: None if v is None else round(float(v), n)  # noqa: E731 - numpy scalars -> JSON floats
        return {"page": self.span.page, "start": self.span.start, "end": self.span.end, "lexical": r(self.lexical, 3),
                "engine_logprob": r(self.engine_logprob, 4), "block_reads": r(self.block_reads, 3),
                "score": r(self.score, 4), "from_fact": self.from_fact}


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if len(t) > 2]


class BM25:
    """Okapi BM25 over a fixed list of texts (k1=1.2, b=0.75)."""

    def __init__(self, texts: list[str]):
        self.docs = [Counter(tokens(t)) for t in texts]
        self.lens = [sum(d.values()) for d in self.docs]
        self.avg = (sum(self.lens) / len(self.lens)) if self.lens else 1.0
        df: Counter = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}

    def scores(self, query: str) -> list[float]:
        q = set(tokens(query))
        out = []
        for d, n in zip(self.docs, self.lens):
            s = 0.0
            for w in q:
                f = d.get(w, 0)
                if f:
                    s += self.idf[w] * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * n / self.avg))
            out.append(s)
        return out


def _prose(span: Span) -> bool:
    """Prose, not a table row block or a table-of-contents line."""
    words = span.text.split()
    if len(words) < 12:
        return False
    flags = [bool(re.fullmatch(r"[\$\(\)\d,.%—–-]+", w)) for w in words]
    run = longest = 0
    for f in flags:
        run = run + 1 if f else 0
        longest = max(longest, run)
    return sum(flags) / len(words) < 0.2 and longest <= 3 and len(re.findall(r"[a-z)][.;:!?](\s|$)", span.text)) >= 1


def trim(span: Span, max_words: int = 90) -> Span:
    """The first sentences of a paragraph up to ~max_words, still a verbatim slice."""
    if span.words <= max_words:
        return span
    sents = sentences_of(span)
    if sents and sents[0].words > 1.3 * max_words:  # one run-on sentence: cut at a word boundary
        cut = [m.start() for m in re.finditer(r"\s+", sents[0].text)][max_words - 1]
        return Span(span.start, span.start + cut, span.page, span.text[:cut])
    end, words = sents[0].end, 0
    for s in sents:
        if words and words + s.words > max_words:
            if words < 15:  # only a heading so far: take the next sentence up to the word budget
                cuts = [m.start() for m in re.finditer(r"\s+", s.text)]
                k = min(len(cuts), max_words - words) - 1
                if k >= 0:
                    end = s.start + cuts[k]
            break
        words += s.words
        end = s.end
    return Span(span.start, end, span.page, span.text[: end - span.start])


def in_ranges(span: Span, ranges: list[tuple[int, int]] | None) -> bool:
    return ranges is None or any(a <= span.start and span.end <= b for a, b in ranges)


def candidates(doc: Document, item: OutlineItem, facts: list[Fact], ranges: list[tuple[int, int]] | None,
               paras: list[Span], bm25: BM25, k: int = 6) -> list[Candidate]:
    """Top-k lexical candidates for a heading among paragraphs inside `ranges` (None = whole document)."""
    query = " ".join(item.queries + [item.question or "", item.contains, item.heading])
    lex = bm25.scores(query)
    avoid, prefer = _matcher(tuple(item.avoid)), _matcher(tuple(item.prefer))
    boost_ranges = [(s.start, s.end) for s in doc.sections if s.kind in item.sections]
    out: list[Candidate] = []
    for span, s in zip(paras, lex):
        if not in_ranges(span, ranges) or not _prose(span) or avoid(span.text) or instruction_spans(span.text):
            continue  # (a paragraph holding an instruction to a reader or model is never quoted)
        if boost_ranges and any(a <= span.start < b for a, b in boost_ranges):
            s *= 1.5
        if prefer(span.text):
            s *= 2.0
        out.append(Candidate(trim(span), s))
    for f in facts:  # clauses / sentences an extractor already tied to this heading
        span = _fact_span(doc, f) if f.name in item.facts else None
        if span is not None and in_ranges(span, ranges) and not avoid((quoted := trim(span)).text):
            out.append(Candidate(quoted, (max(lex) if lex else 1.0) + 1.0, from_fact=f.name))
    out = _dedupe(sorted(out, key=lambda c: -c.lexical))
    return [c for c in out if c.lexical > 0][:k]


def _fact_span(doc: Document, f: Fact) -> Span | None:
    """The clause / sentence a fact was read from: its [start, end), else its source text located on its page."""
    if "start" in f.extra:
        return Span(f.extra["start"], f.extra["end"], f.page, doc.text[f.extra["start"] : f.extra["end"]])
    if f.page and isinstance(f.value, str) and f.source_text:
        hit = doc.locate(f.source_text[:200], f.page)
        if hit:
            return Span(hit[0].start, hit[0].end, f.page, doc.text[hit[0].start : hit[0].end])
    return None


@functools.lru_cache(maxsize=64)
def _matcher(patterns: tuple[str, ...]):
    """A predicate: does a paragraph match one of a heading's `avoid` / `prefer` regexes (case-insensitive)?"""
    if not patterns:
        return lambda text: False
    rx = re.compile("|".join(f"(?:{p})" for p in patterns), re.I | re.S)
    return lambda text: rx.search(squash(text)) is not None  # PDF text: line breaks inside phrases


def _dedupe(cands: list[Candidate]) -> list[Candidate]:
    seen: list[tuple[int, int]] = []
    out = []
    for c in cands:
        if any(not (c.span.end <= a or c.span.start >= b) for a, b in seen):
            continue
        seen.append((c.span.start, c.span.end))
        out.append(c)
    return out


def rank_lexically(cands: list[Candidate]) -> list[Candidate]:
    for c in cands:
        c.score = c.lexical
    return sorted(cands, key=lambda c: -c.score)


def _z(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [0.0] * len(values)
    a = np.asarray(values, dtype=float)
    sd = a.std()
    return list((a - a.mean()) / sd) if sd > 1e-9 else [0.0] * len(values)


def rank_by_engine(cands: list[Candidate], w_logprob: float = 0.6, w_reads: float = 0.4) -> list[Candidate]:
    """Final order from the engine signals (z-scored log-prob and block reads; lexical only breaks ties)."""
    lp = [c.engine_logprob if c.engine_logprob is not None else -99.0 for c in cands]
    rd = [c.block_reads if c.block_reads is not None else 0.0 for c in cands]
    for c, a, b, lx in zip(cands, _z(lp), _z(rd), _z([c.lexical for c in cands])):
        c.score = w_logprob * a + w_reads * b + 0.05 * lx
    return sorted(cands, key=lambda c: -c.score)


@dataclass
class TokenMap:
    """Maps Document.text offsets to token indices of the prefilled prompt."""

    doc_offset_in_prompt: int  # where BuiltPrompt.document starts inside the prompt text
    segments: list  # BuiltPrompt.segments
    token_starts: list[int] = field(default_factory=list)  # start char of each prompt token

    def token_range(self, doc_start: int, doc_end: int) -> tuple[int, int] | None:
        for s in self.segments:
            if s.doc_start <= doc_start < s.doc_end:
                a = self.doc_offset_in_prompt + s.prompt_start + (doc_start - s.doc_start)
                b = self.doc_offset_in_prompt + s.prompt_start + (min(doc_end, s.doc_end) - s.doc_start)
                i = bisect.bisect_right(self.token_starts, a) - 1
                j = bisect.bisect_left(self.token_starts, b)
                return max(i, 0), max(j, i + 1)
        return None


def block_reads(hits: np.ndarray, tr: tuple[int, int] | None, block_size: int) -> float | None:
    """Mean reads per KV block over the blocks covering token range `tr`."""
    if tr is None or hits is None or not len(hits):
        return None
    a, b = tr[0] // block_size, min(len(hits), (tr[1] - 1) // block_size + 1)
    return float(np.mean(hits[a:b])) if b > a else None


def page_reads(hits: np.ndarray, tmap: TokenMap, n_tokens: int, block_size: int) -> dict[int, float]:
    """Mean block reads per page of the prompt's document (which pages the model read most)."""
    out: dict[int, list[float]] = {}
    for s in tmap.segments:
        tr = tmap.token_range(s.doc_start, s.doc_end)
        r = block_reads(hits, tr, block_size)
        if r is not None:
            out.setdefault(s.page, []).append(r)
    return {p: float(np.mean(v)) for p, v in out.items()}


def quote_text(span: Span) -> str:
    return squash(span.text)
