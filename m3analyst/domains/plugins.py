"""The domain registry: specs found on the search path (domains/spec.py), each with its plugin's hooks.

A spec may name a `plugin`: a module (`m3analyst.domains.finance`) or a `.py` file beside the spec. It is imported
the first time the domain's hooks are needed; importing it registers its hooks under the names its spec uses:

    @register_extractor("incident")   # fn(doc, spec) -> list[Fact]; the spec says `extractor: incident`
    @register_findings("incident")    # fn(doc, spec, facts) -> list[Finding]; `findings:` (default: the extractor)

A spec with no plugin is read by the generic "patterns" extractor (domains/patterns.py) and has no findings. The
rest of the package asks this module, never a domain's name: `list_domains`, `load_domain`, `extract_facts`,
`make_findings`, `detect_domain`, `fallback_domain`, `render_hints`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Finding
from m3analyst.domains.spec import DomainSpec, RenderHints, list_domains, load_domain
from m3analyst.errors import UsageError
from m3analyst.ingest.model import Document

Extractor = Callable[[Document, DomainSpec], list[Fact]]
_EXTRACTORS: dict[str, Extractor] = {}
# Findings: `fn(doc, spec, facts) -> list[Finding]`. Each Finding's `section` names the outline heading it goes under.
FindingsFn = Callable[[Document, DomainSpec, list[Fact]], list[Finding]]
_FINDINGS: dict[str, FindingsFn] = {}
_LOADED: dict[str, ModuleType] = {}


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


def load_plugin(spec: DomainSpec) -> ModuleType | None:
    """Import the spec's plugin once (which registers its hooks); None for a spec without one."""
    if not spec.plugin:
        return None
    key = spec.plugin if not spec.plugin.endswith(".py") else str(_plugin_file(spec))
    if key not in _LOADED:
        _LOADED[key] = _import_file(spec, Path(key)) if spec.plugin.endswith(".py") else _import_module(spec)
    return _LOADED[key]


def _plugin_file(spec: DomainSpec) -> Path:
    path = Path(spec.plugin or "")
    return path if path.is_absolute() or spec.path is None else spec.path.parent / path


def _import_module(spec: DomainSpec) -> ModuleType:
    try:
        return importlib.import_module(spec.plugin or "")
    except ImportError as e:
        raise UsageError(f"{spec.path}: plugin {spec.plugin!r} cannot be imported ({e})") from None


def _import_file(spec: DomainSpec, path: Path) -> ModuleType:
    if not path.is_file():
        raise UsageError(f"{spec.path}: plugin file {path} not found")
    name = "m3analyst_domain_" + re.sub(r"\W", "_", spec.name)
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as e:  # a user's plugin: one line naming the file
        sys.modules.pop(name, None)
        raise UsageError(f"{path}: the domain plugin failed to load ({type(e).__name__}: {e})") from None
    return module


def get_extractor(name: str) -> Extractor:
    if name not in _EXTRACTORS:
        import m3analyst.domains.patterns  # noqa: F401 - registers the generic extractor
    if name not in _EXTRACTORS:
        raise UsageError(f"unknown extractor {name!r} (registered: {', '.join(sorted(_EXTRACTORS))})")
    return _EXTRACTORS[name]


def extract_facts(doc: Document, spec: DomainSpec | str) -> list[Fact]:
    """All facts of the domain for `doc`, each with its page."""
    spec = load_domain(spec) if isinstance(spec, str) else spec
    load_plugin(spec)
    return get_extractor(spec.extractor)(doc, spec)


def make_findings(doc: Document, spec: DomainSpec, facts: list[Fact]) -> list[Finding]:
    """The domain's findings for `doc` (none when the domain registers no findings function)."""
    load_plugin(spec)
    fn = _FINDINGS.get(spec.findings or spec.extractor)
    return fn(doc, spec, facts) if fn else []


def detect_domain(doc: Document) -> str:
    """The domain for this document: by metadata.kind first, else by keyword frequency in the first pages."""
    names = list_domains()
    specs = [load_domain(n) for n in names]
    for spec in specs:
        if doc.metadata.kind in spec.document_kinds:
            return spec.name
    head = doc.text[: doc.pages[min(len(doc.pages), 5) - 1].end].lower() if doc.pages else ""
    scores = {s.name: sum(len(re.findall(re.escape(k.lower()), head)) for k in s.detect.keywords) for s in specs}
    best = max(scores, key=lambda n: scores[n], default=None)
    if not best or scores[best] == 0:
        raise UsageError(f"cannot tell which domain this document belongs to; name it ({', '.join(names)})")
    return best


def fallback_domain() -> DomainSpec:
    """The domain a question about a document of no detectable domain is read with (the spec with `fallback: true`)."""
    specs = [load_domain(n) for n in list_domains()]
    spec = next((s for s in specs if s.fallback), None)
    if spec is None:
        raise UsageError(f"cannot tell which domain this document belongs to; name it ({', '.join(list_domains())})")
    return spec


def render_hints(name: str) -> RenderHints:
    """How to render a memo of domain `name` (defaults for a domain no longer on the search path)."""
    try:
        return load_domain(name).render
    except UsageError:
        return RenderHints()
