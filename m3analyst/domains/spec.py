"""Domain specs: declarative YAML files (top-level `domains/*.yaml`) parsed into typed models.

Search path: the folders in $M3ANALYST_DOMAINS (os.pathsep-separated) first, then the packaged
`domains/` folder. A domain is ONE file `<name>.yaml`; its prompt template is looked up beside it
first, then in the packaged `prompts/` folder. Adding a domain therefore needs no code change: the
spec names a registered extractor (default "patterns", a generic regex extractor driven by the spec).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from m3analyst.errors import UsageError
from m3analyst.resources import resource_dir

DOMAINS_ENV = "M3ANALYST_DOMAINS"


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


class DomainSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    title: str
    role: str = "You are a junior analyst. Cite every claim as [p.N]."
    document_kinds: list[str] = Field(default_factory=list)
    detect: DetectSpec = Field(default_factory=DetectSpec)
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


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(DOMAINS_ENV, "").split(os.pathsep) if p]
    return [*extra, resource_dir("domains")]


def _spec_files() -> dict[str, Path]:
    """name -> spec file; earlier folders on the search path win."""
    found: dict[str, Path] = {}
    for folder in search_path():
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            found.setdefault(f.stem, f)
    return found


def list_domains() -> list[str]:
    return sorted(_spec_files())


def load_domain(name: str) -> DomainSpec:
    files = _spec_files()
    if name not in files:
        raise UsageError(f"unknown domain {name!r} (known: {', '.join(sorted(files)) or 'none'})")
    return _parse(files[name], files[name].stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _parse(path: Path, _mtime: int) -> DomainSpec:
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: invalid YAML ({e})") from None
    raw.setdefault("name", path.stem)
    try:
        return DomainSpec(**raw, path=path)
    except Exception as e:  # pydantic.ValidationError: one line for the user
        raise UsageError(f"{path}: invalid domain spec ({e})") from None
