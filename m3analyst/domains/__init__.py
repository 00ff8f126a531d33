"""Domains: declarative specs (top-level domains/<name>/spec.yaml) + the plugins that read them.

    spec = load_domain("finance"); facts = extract_facts(doc, spec); detect_domain(doc) -> "finance"

Each built-in domain's code is a package here (finance/, legal/, bio/) that its spec names as `plugin`; the
registry (plugins.py) imports a plugin the first time its domain is used. The names below are imported when first
used, so listing the domains (every command does when it starts) costs no import of the document model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Fact": "facts", "format_value": "facts", "Figure": "findings", "Finding": "findings",
    "DomainSpec": "spec", "FactSpec": "spec", "OutlineItem": "spec", "load_domain": "spec",
    "list_domains": "search", "search_path": "search",
    **dict.fromkeys(("detect_domain", "extract_facts", "fallback_domain", "get_extractor", "load_plugin",
                     "make_findings", "register_extractor", "register_findings", "render_hints"), "plugins"),
}
__all__ = sorted(_WHERE)

if TYPE_CHECKING:
    from m3analyst.domains.facts import Fact, format_value  # noqa: F401
    from m3analyst.domains.findings import Figure, Finding  # noqa: F401
    from m3analyst.domains.plugins import (detect_domain, extract_facts, fallback_domain, get_extractor,  # noqa: F401
                                           load_plugin, make_findings, register_extractor, register_findings,
                                           render_hints)
    from m3analyst.domains.search import list_domains, search_path  # noqa: F401
    from m3analyst.domains.spec import DomainSpec, FactSpec, OutlineItem, load_domain  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'm3analyst.domains' has no attribute {name!r}")
    return getattr(importlib.import_module(f"m3analyst.domains.{_WHERE[name]}"), name)
