"""Domains: declarative specs (top-level domains/*.yaml) + registered deterministic extractors.

    spec = load_domain("finance"); facts = extract_facts(doc, spec); detect_domain(doc) -> "finance"
"""

from __future__ import annotations

from m3analyst.domains.facts import Fact, format_value
from m3analyst.domains.findings import Figure, Finding
from m3analyst.domains.plugins import (
    detect_domain,
    extract_facts,
    get_extractor,
    make_findings,
    register_extractor,
    register_findings,
)
from m3analyst.domains.spec import DomainSpec, FactSpec, OutlineItem, list_domains, load_domain, search_path

__all__ = [
    "DomainSpec",
    "Fact",
    "FactSpec",
    "Figure",
    "Finding",
    "OutlineItem",
    "detect_domain",
    "extract_facts",
    "format_value",
    "get_extractor",
    "list_domains",
    "make_findings",
    "load_domain",
    "register_extractor",
    "register_findings",
    "search_path",
]
