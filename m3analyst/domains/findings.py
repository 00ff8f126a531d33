"""The `Finding`: what a memo states — one claim sentence, the figures it states (each tied to an extracted
or derived fact), its evidence (citations with quotes) and where it came from (a rule or a model).

Domain analysis turns facts into findings; memo sections are lists of findings; the verifier checks a model's
rephrasing of a finding against the finding's own figures and names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m3analyst.ingest.model import Citation


@dataclass
class Figure:
    """A figure a finding states, tied to the fact (or derived value) it comes from."""

    text: str  # as shown in the claim, e.g. "$32.8B", "+3.5%", "120 bps"
    value: float | str | None
    unit: str | None = None
    fact: str | None = None  # the Fact.name it is or is computed from
    period: str | None = None
    derived: bool = False  # computed (change, margin, ratio), not printed as such
    inputs: list[str] = field(default_factory=list)  # for a derived figure: the facts/periods it is computed from

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "value": self.value, "unit": self.unit, "fact": self.fact, "period": self.period,
                "derived": self.derived, "inputs": list(self.inputs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Figure":
        return cls(d["text"], d.get("value"), d.get("unit"), d.get("fact"), d.get("period"), bool(d.get("derived")),
                   list(d.get("inputs") or []))


@dataclass
class Finding:
    """One claim of a memo.

    claim: the sentence shown (template-made, or a model's rephrasing that passed the verifier).
    topic: what it is about within its domain ("growth", "margin", "driver", "outlook", "risk", "term", "flag",
    "effect", "pico", "bias", ...); section: the memo heading it belongs under.
    label: a short answer where the finding is one (legal "Yes" / "No" / a value; a risk's short label).
    source: "rule" or "model"; template: the rule-made sentence (kept when a model rephrased it).
    """

    claim: str
    topic: str
    section: str = ""
    figures: list[Figure] = field(default_factory=list)
    evidence: list[Citation] = field(default_factory=list)
    source: str = "rule"
    label: str | None = None
    template: str | None = None
    confidence: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> list[int]:
        return sorted({c.page for c in self.evidence})

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "topic": self.topic, "section": self.section, "label": self.label,
                "figures": [f.to_dict() for f in self.figures], "evidence": [c.to_dict() for c in self.evidence],
                "pages": self.pages, "source": self.source, "template": self.template,
                "confidence": self.confidence, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        return cls(d["claim"], d["topic"], d.get("section", ""), [Figure.from_dict(f) for f in d.get("figures", [])],
                   [Citation.from_dict(c) for c in d.get("evidence", [])], d.get("source", "rule"), d.get("label"),
                   d.get("template"), d.get("confidence"), dict(d.get("extra") or {}))
