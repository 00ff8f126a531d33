"""Extractor registry: a spec names its extractor; extractors register under a name.

An extractor is `fn(doc, spec) -> list[Fact]`. Built-ins: "patterns" (generic, driven only by the
spec's regexes: what a file-only domain uses), "finance", "legal", "bio".
"""

from __future__ import annotations

import re
from typing import Callable

from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Finding
from m3analyst.domains.spec import DomainSpec, list_domains, load_domain
from m3analyst.errors import UsageError
from m3analyst.ingest.model import Document

Extractor = Callable[[Document, DomainSpec], list[Fact]]
_EXTRACTORS: dict[str, Extractor] = {}
# Findings: `fn(doc, spec, facts) -> list[Finding]`, registered under the name a spec's `findings` field gives
# (default: the spec's extractor name). Each Finding's `section` names the outline heading it goes under.
FindingsFn = Callable[[Document, DomainSpec, list[Fact]], list[Finding]]
_FINDINGS: dict[str, FindingsFn] = {}


def register_extractor(name: str):
    def deco(fn: Extractor) -> Extractor:
        _EXTRACTORS[name] = fn
        return fn

    return deco


def register_findings(name: str):
    def deco(fn: FindingsFn) -> FindingsFn:
        _FINDINGS[name] = fn
        return fn

    return deco


def make_findings(doc: Document, spec: DomainSpec, facts: list[Fact]) -> list[Finding]:
    """The domain's findings for `doc` (none when the domain registers no findings function)."""
    _ensure_builtins()
    fn = _FINDINGS.get(spec.findings or spec.extractor)
    return fn(doc, spec, facts) if fn else []


def _ensure_builtins() -> None:
    from m3analyst.domains import bio, finance, legal, patterns  # noqa: F401 - importing registers them


def get_extractor(name: str) -> Extractor:
    _ensure_builtins()
    if name not in _EXTRACTORS:
        raise UsageError(f"unknown extractor {name!r} (registered: {', '.join(sorted(_EXTRACTORS))})")
    return _EXTRACTORS[name]


def extract_facts(doc: Document, spec: DomainSpec | str) -> list[Fact]:
    """All facts of the domain for `doc`, each with its page."""
    spec = load_domain(spec) if isinstance(spec, str) else spec
    return get_extractor(spec.extractor)(doc, spec)


def detect_domain(doc: Document) -> str:
    """The domain for this document: by metadata.kind first, else by keyword frequency in the first pages."""
    specs = [load_domain(n) for n in list_domains()]
    for spec in specs:
        if doc.metadata.kind in spec.document_kinds:
            return spec.name
    head = doc.text[: doc.pages[min(len(doc.pages), 5) - 1].end].lower() if doc.pages else ""
    scores = {s.name: sum(len(re.findall(re.escape(k.lower()), head)) for k in s.detect.keywords) for s in specs}
    best = max(scores, key=lambda n: scores[n], default=None)
    if not best or scores[best] == 0:
        raise UsageError("cannot tell which domain this document belongs to; name it (finance, legal, bio)")
    return best
