"""Domains: declarative specs (top-level domains/<name>/spec.yaml) + the plugins that read them.

    spec = load_domain("finance"); facts = extract_facts(doc, spec); detect_domain(doc) -> "finance"

Each built-in domain's code is a package here (finance/, legal/, bio/) that its spec names as `plugin`; the
registry (plugins.py) imports a plugin the first time its domain is used.
"""

from __future__ import annotations

from m3analyst.domains.facts import Fact, format_value
from m3analyst.domains.findings import Figure, Finding
from m3analyst.domains.plugins import (
    detect_domain,
    extract_facts,
    fallback_domain,
    get_extractor,
    load_plugin,
    make_findings,
    register_extractor,
    register_findings,
    render_hints,
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
    "fallback_domain",
    "format_value",
    "get_extractor",
    "list_domains",
    "load_plugin",
    "make_findings",
    "load_domain",
    "register_extractor",
    "register_findings",
    "render_hints",
    "search_path",
]
