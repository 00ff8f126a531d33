"""The memo as data: sections of findings (or, where no finding could be made, quoted passages) and verified
sentences, the facts table, reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Finding
from m3analyst.ingest.model import Citation
from m3analyst.memo.verify import ClaimCheck


@dataclass
class Quote:
    """A verbatim passage of the document, with its page and how it was chosen."""

    text: str  # whitespace-squashed slice of Document.text
    page: int
    start: int
    end: int
    chosen_by: str  # "engine" (log-prob + MSA block reads) | "lexical (no model)" | "fact"
    score: float = 0.0

    def to_dict(self) -> dict:
        return {"text": self.text, "page": self.page, "start": self.start, "end": self.end, "chosen_by": self.chosen_by,
                "score": round(float(self.score), 4)}


FALLBACK_NOTE = "No finding could be made for this heading; key passages are quoted instead."


@dataclass
class MemoSection:
    """One memo heading. `findings` are what it states; `quotes` are their evidence passages, or, for a heading
    with no finding (`fallback`), the passages chosen for it (the quote-only fallback, which the memo says)."""

    heading: str
    kind: str  # "facts" | "passages" | "findings"
    contains: str = ""
    quotes: list[Quote] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    claims: list[ClaimCheck] = field(default_factory=list)  # generated sentences after verification
    candidates: list[dict] = field(default_factory=list)  # ranking evidence (for --json)
    pages_read: list[tuple[int, float]] = field(default_factory=list)  # top pages by MSA block reads
    raw_generation: str | None = None

    @property
    def fallback(self) -> bool:
        """A narrative heading with no finding: only quoted passages stand under it."""
        return self.kind != "facts" and not self.findings

    def shown_claims(self, drop_unsupported: bool) -> list[ClaimCheck]:
        return [c for c in self.claims if c.ok or not drop_unsupported]

    def to_dict(self, drop_unsupported: bool = True) -> dict:
        return {
            "heading": self.heading, "kind": self.kind, "contains": self.contains,
            "quotes": [q.to_dict() for q in self.quotes],
            "findings": [f.to_dict() for f in self.findings],
            "note": FALLBACK_NOTE if self.fallback else None,
            "sentences": [c.to_dict() for c in self.shown_claims(drop_unsupported)],
            "dropped": [c.to_dict() for c in self.claims if not c.ok and drop_unsupported],
            "candidates": self.candidates, "pages_read": [{"page": int(p), "reads": round(float(r), 3)} for p, r in self.pages_read],
            "raw_generation": self.raw_generation,
        }


@dataclass
class Memo:
    domain: str
    title: str
    document: dict[str, Any]  # source, kind, pages, company/parties, sha256
    mode: str  # "engine" | "extractive"
    facts: list[Fact]
    sections: list[MemoSection]
    budget: dict[str, Any]
    engine: dict[str, Any] | None
    grounding: dict[str, Any]
    timings: dict[str, float]
    settings: dict[str, Any]
    chart_series: list[str] = field(default_factory=list)
    drop_unsupported: bool = True

    @property
    def citations(self) -> list[int]:
        pages = {q.page for s in self.sections for q in s.quotes}
        pages |= {p for s in self.sections for f in s.findings for p in f.pages}
        pages |= {p for s in self.sections for c in s.shown_claims(self.drop_unsupported) for p in c.citations}
        pages |= {f.page for f in self.facts if f.page}
        return sorted(pages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "m3analyst.memo/1",
            "domain": self.domain, "title": self.title, "document": self.document, "mode": self.mode,
            "sections": [s.to_dict(self.drop_unsupported) for s in self.sections],
            "facts": [f.to_dict() for f in self.facts],
            "citations": self.citations,
            "budget": self.budget, "engine": self.engine, "grounding": self.grounding,
            "timings": {k: round(v, 3) for k, v in self.timings.items()}, "settings": self.settings,
        }

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.sections for f in s.findings]


@dataclass
class Answer:
    """An answer to one question. text is what is printed; the structured part (issue 17): `kind` the question's
    type (figure | yesno | label | span | explanation), `label` (Yes / No / Increased / healthy ...) or `value`,
    `reason` one sentence on how it was reached, `evidence` the quoted inputs with their pages, `source` (facts,
    rules, engine = the model, passage), `confidence` in [0, 1], `missing` the inputs that could not be read
    (a figure asked for and not computed says which)."""

    text: str
    value: float | None
    citations: list[int]
    source: str  # "facts" | "engine" | "rules" (memo/effect.py) | "passage" (model-free: the best-matching passage, quoted)
    unit: str | None = None
    fact: str | None = None
    checks: list[dict] = field(default_factory=list)
    kind: str | None = None
    label: str | None = None
    reason: str = ""
    evidence: list[Citation] = field(default_factory=list)
    confidence: float | None = None
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "value": self.value, "unit": self.unit, "citations": self.citations,
                "source": self.source, "fact": self.fact, "checks": self.checks, "kind": self.kind, "label": self.label,
                "reason": self.reason, "evidence": [c.to_dict() for c in self.evidence], "confidence": self.confidence,
                "missing": self.missing}
