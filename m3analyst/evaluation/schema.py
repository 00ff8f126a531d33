"""Eval-set schema (evals/README.md): pydantic models and a JSONL reader whose errors name file:line.

One `EvalItem` = one document (a path relative to a data root, or inline `context` pages) + gold
facts + gold questions + expected memo headings. Public sets (FinanceBench, CUAD, PubMedQA,
Evidence Inference) are converted into the same items by `m3analyst.evaluation.loaders`.

Check a file: ``python -m m3analyst.evaluation.schema evals/finance.jsonl``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from m3analyst.errors import InputError



def _registered(name: str) -> str:
    from m3analyst.domains import list_domains

    if name not in (known := list_domains()):
        raise ValueError(f"unknown domain {name!r} (registered: {', '.join(known)})")
    return name


Domain = Annotated[str, AfterValidator(_registered)]  # a registered domain (domains/plugins.py)
FactKind = Literal["number", "text", "date", "yesno"]
QuestionKind = Literal["numeric", "yesno", "label", "text"]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_TOLERANCE = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GoldFact(_Strict):
    """A gold fact. Numbers: `value` as printed, in units of `scale` (absolute = value * scale)."""

    field: str = Field(min_length=1, description="fact name (domain spec name or CUAD category)")
    value: float | int | str | bool
    kind: FactKind | None = Field(None, description="inferred from value when absent")
    unit: str | None = None
    scale: float = Field(1.0, gt=0)
    period: str | None = None
    page: int | None = Field(..., ge=1, description="1-based physical page; null only for page-less documents")
    evidence: str = Field(min_length=1, description="verbatim text from that page")
    tolerance: float = Field(DEFAULT_TOLERANCE, ge=0)
    aliases: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _infer_kind(self) -> "GoldFact":
        if self.kind is None:
            self.kind = infer_fact_kind(self.value)
        if self.kind == "number" and self.absolute is None:
            raise ValueError(f"fact {self.field!r}: kind 'number' needs a numeric value, got {self.value!r}")
        return self

    @property
    def absolute(self) -> float | None:
        """value * scale for numbers, else None."""
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            return None
        return float(self.value) * self.scale


class GoldQuestion(_Strict):
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str
    kind: QuestionKind
    value: float | None = None
    unit: str | None = None
    scale: float = Field(1.0, gt=0)
    labels: list[str] = Field(default_factory=list, description="closed label set for kind 'label'")
    tolerance: float = Field(DEFAULT_TOLERANCE, ge=0)
    page: int | None = Field(..., ge=1)
    evidence: str = ""

    @model_validator(mode="after")
    def _check_kind(self) -> "GoldQuestion":
        if self.kind == "numeric" and self.value is None:
            raise ValueError(f"question {self.id!r}: kind 'numeric' needs a numeric 'value'")
        if self.kind == "label" and not self.labels:
            raise ValueError(f"question {self.id!r}: kind 'label' needs 'labels' (the closed label set)")
        return self


class EvalItem(_Strict):
    id: str = Field(min_length=1)
    domain: Domain
    document: str | None = Field(None, description="path relative to the data root")
    context: list[str] | None = Field(None, description="inline page texts instead of a document file")
    title: str | None = None
    source: str | None = None
    facts: list[GoldFact] = Field(default_factory=list)
    questions: list[GoldQuestion] = Field(default_factory=list)
    sections: list[str] = Field(default_factory=list)
    notes: str | None = None

    @field_validator("document")
    @classmethod
    def _relative(cls, v: str | None) -> str | None:
        if v is None:
            return v
        p = PurePosixPath(v.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"document {v!r} must be relative to the data root (no leading '/', no '..')")
        return v

    @model_validator(mode="after")
    def _check(self) -> "EvalItem":
        if (self.document is None) == (self.context is None):
            raise ValueError("give exactly one of 'document' (path under the data root) or 'context' (page texts)")
        if not (self.facts or self.questions or self.sections):
            raise ValueError("an item needs at least one fact, question or expected section")
        ids = [q.id for q in self.questions]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate question ids {sorted(dup)}")
        return self

    @property
    def needs_memo(self) -> bool:
        """Whether scoring needs a memo (facts or sections), not only answers."""
        return bool(self.facts or self.sections)


def infer_fact_kind(value: object) -> FactKind:
    if isinstance(value, bool):
        return "yesno"
    if isinstance(value, (int, float)):
        return "number"
    s = str(value).strip()
    if s.lower() in ("yes", "no"):
        return "yesno"
    if _ISO_DATE.match(s):
        return "date"
    return "text"


def _first_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = len(e.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_item(obj: dict, where: str) -> EvalItem:
    """Validate one decoded JSON object; `where` ("file:line") prefixes any error."""
    try:
        return EvalItem.model_validate(obj)
    except ValidationError as e:
        raise InputError(where, _first_error(e)) from None


def read_eval_file(path: str | Path, domain: str | None = None) -> list[EvalItem]:
    """Read a JSONL eval set. Errors: InputError('file:line', problem). Blank lines and '//' lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "eval set not found", "give a JSONL file in the evals/README.md schema")
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(where, f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise InputError(where, "each line must be one JSON object")
        item = parse_item(obj, where)
        if domain is not None and item.domain != domain:
            raise InputError(where, f"item {item.id!r} has domain {item.domain!r} but this set is {domain!r}")
        if item.id in seen:
            raise InputError(where, f"duplicate item id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = n
        items.append(item)
    if not items:
        raise InputError(path, "eval set has no items")
    return items


def check_documents(items: list[EvalItem], data_root: Path) -> list[str]:
    """Problems with document paths under `data_root` (missing files), as 'item: problem' strings."""
    return [
        f"{it.id}: document {it.document} not found under {data_root}"
        for it in items
        if it.document is not None and not (data_root / it.document).is_file()
    ]


def main(argv: list[str]) -> int:
    """Validate files given on the command line; print one line per file."""
    rc = 0
    for arg in argv:
        try:
            items = read_eval_file(arg)
        except InputError as e:
            print(f"error: {e}")
            rc = 2
            continue
        n_f = sum(len(i.facts) for i in items)
        n_q = sum(len(i.questions) for i in items)
        print(f"{arg}: {len(items)} items, {n_f} facts, {n_q} questions")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
