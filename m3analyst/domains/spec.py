"""Domain specs: declarative YAML files parsed into typed models.

A domain is a folder `<name>/` holding `spec.yaml` (and, when it has one, its prompt template and its plugin
file), or a single file `<name>.yaml`. Search path (`search_path`): the folders of the `domain.dirs` setting
(and the legacy $M3ANALYST_DOMAINS), then $M3ANALYST_HOME/domains, then the built-in `domains/` folder; the first
folder holding a name wins. A spec with no `plugin` is read by the generic spec-driven extractor ("patterns"),
so adding a domain needs no code change; a spec naming a plugin gets that plugin's hooks (domains/plugins.py).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from m3analyst.domains.search import SPEC_FILE, list_domains, search_path, spec_files  # noqa: F401 - re-exported
from m3analyst.errors import UsageError
from m3analyst.resources import resource_dir

# libyaml's safe loader where PyYAML was built with it: the same data, about 8x faster (every command lists the
# domains when it starts)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FactSpec(BaseModel):
    """One fact to extract. Fields beyond the common ones are read by the domain's extractor."""

    model_config = ConfigDict(extra="allow")

    name: str
    label: str | None = None
    unit: str | None = None
    patterns: list[str] = Field(default_factory=list, description="case-insensitive regexes")
    prefer: list[str] = Field(default_factory=list, description="regexes that win over `patterns`")
    value: str = Field("text", description="what is read out: text, number, date, law, duration, parties, ...")
    ask: list[str] = Field(default_factory=list, description="phrases that name this fact in a question")
    grants: bool = Field(False, description="a clause that gives a right (a 'Can a party ...?' question is answered "
                         "yes when it is found); clauses that restrict answer only 'Does the agreement ...?' questions")
    avoid: list[str] = Field(default_factory=list, description="regexes: a sentence / clause matching one is never "
                             "this fact's source (a key result is not a baseline comparison)")
    better: Literal["higher", "lower"] = Field("higher", description="which direction of change is an improvement "
                                               "(trend questions: 'has X improved?'); debt and costs: lower")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


class DerivedSpec(BaseModel):
    name: str
    label: str | None = None
    unit: str | None = None
    expr: str = Field(..., description="arithmetic over other fact names, e.g. 'operating_cash_flow - capex'")
    ask: list[str] = Field(default_factory=list, description="phrases that name this fact in a question")
    better: Literal["higher", "lower"] = Field("higher", description="which direction of change is an improvement")


class OutlineItem(BaseModel):
    """One memo heading: what it must contain and how its quoted passages are picked."""

    heading: str
    kind: str = Field("passages", description="facts: the facts table; passages: quoted key passages (+ narrative)")
    contains: str = ""
    question: str | None = Field(None, description="asked of the engine to find what the model reads for this heading")
    queries: list[str] = Field(default_factory=list, description="lexical queries that propose candidate passages")
    sections: list[str] = Field(default_factory=list, description="section kinds searched first")
    facts: list[str] = Field(default_factory=list, description="facts whose source clauses are candidate passages")
    max_words: int = Field(120, description="length target of the generated narrative")
    prefer: list[str] = Field(default_factory=list, description="case-insensitive regexes: paragraphs matching one "
                              "rank as if twice as relevant (Outlook: 'we expect', 'guidance')")
    avoid: list[str] = Field(default_factory=list, description="case-insensitive regexes: paragraphs matching one are "
                             "never quoted under this heading (boilerplate: safe-harbour notices, 'read in conjunction')")
    max_quotes: int | None = None


class DetectSpec(BaseModel):
    keywords: list[str] = Field(default_factory=list)


class RenderHints(BaseModel):
    """How the renderers show this domain's memo (read by memo/render_md.py, render_html.py, export_docx.py)."""

    facts_table: Literal["values", "periods"] = Field("values", description="values: one Value column; periods: "
                                                      "the latest and the prior period's values side by side")
    charts: list[str] = Field(default_factory=list, description="charts under the facts table (memo/charts.py "
                              "CHARTS: key_series, margins)")
    batch_view: str | None = Field(None, description="the batch dashboard's cross-document view of this domain "
                                   "(batch/compare.py VIEWS: statements, clauses, effects)")


class DomainSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    title: str
    reads: str = Field("", description="the documents it reads, for --help ('10-K / 10-Q / 8-K / earnings')")
    role: str = "You are a junior analyst. Cite every claim as [p.N]."
    document_kinds: list[str] = Field(default_factory=list)
    detect: DetectSpec = Field(default_factory=DetectSpec)
    plugin: str | None = Field(None, description="the domain's code: a module (m3analyst.domains.finance) or a .py "
                               "file beside the spec; imported when first needed, it registers the domain's hooks")
    fallback: bool = Field(False, description="the domain `ask` reads a document with when no domain can be told")
    render: RenderHints = Field(default_factory=RenderHints)
    extractor: str = "patterns"
    findings: str | None = Field(None, description="registered findings function (default: the extractor's name)")
    prompt: str = "memo.j2"
    section_priority: list[str] = Field(default_factory=list)
    section_priority_by_kind: dict[str, list[str]] = Field(default_factory=dict, description="overrides per document kind")
    page_priority_patterns: list[str] = Field(default_factory=list)
    page_low_patterns: list[str] = Field(default_factory=list, description="pages kept last (auditor's report, exhibits)")
    facts: list[FactSpec] = Field(default_factory=list)
    derived: list[DerivedSpec] = Field(default_factory=list)
    yoy: list[str] = Field(default_factory=list)
    chart: list[str] = Field(default_factory=list)
    outline: list[OutlineItem] = Field(default_factory=list)
    path: Path | None = Field(None, description="where the spec was read from")

    def priority_for(self, doc_kind: str | None) -> list[str]:
        """Section kinds in budgeting order for this document kind."""
        return self.section_priority_by_kind.get(doc_kind or "", self.section_priority)

    def fact(self, name: str) -> FactSpec | None:
        return next((f for f in self.facts if f.name == name), None)

    def prompt_path(self) -> Path:
        """The Jinja2 template: beside the spec first, then the packaged prompts/ folder."""
        candidates = []
        if self.path is not None:
            candidates += [self.path.parent / self.prompt, self.path.parent / "prompts" / self.prompt]
        candidates.append(resource_dir("prompts") / self.prompt)
        for c in candidates:
            if c.is_file():
                return c
        raise UsageError(f"domain {self.name!r}: prompt template {self.prompt!r} not found (looked in {', '.join(map(str, candidates))})")


def load_domain(name: str) -> DomainSpec:
    files = spec_files()
    if name not in files:
        raise UsageError(f"unknown domain {name!r} (known: {', '.join(sorted(files)) or 'none'})")
    return _parse(files[name], files[name].stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _parse(path: Path, _mtime: int) -> DomainSpec:
    try:
        raw: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: invalid YAML ({e})") from None
    raw.setdefault("name", path.parent.name if path.name == SPEC_FILE else path.stem)
    try:
        return DomainSpec(**raw, path=path)
    except Exception as e:  # pydantic.ValidationError: one line for the user
        raise UsageError(f"{path}: invalid domain spec ({e})") from None
