"""Eval-set loaders (a registry by set name): our JSONL sets and public formats, all -> `EvalItem`s.

    load_set("financebench", domain="finance", data_root=Path("../shared/corpus/finance"))

| name | file looked up (under the data root, or its <domain>/ folder) | items |
| --- | --- | --- |
| `evals` (default) | `evals/<domain>.jsonl` in the package | as written |
| `financebench` | `financebench_dev.jsonl` (+ `<doc_name>.pdf` beside it or in `pdfs/`) | one per PDF, its questions |
| `cuad` | `cuad_annotations.jsonl` (+ `contracts_txt/`) | one per contract, 41 clause facts |
| `pubmedqa` | `pubmedqa/pqal_dev.json` or `pqal_dev.json` | one per question, context inline |
| `evidence-inference` | `evidence_inference_gold.jsonl` (+ `trials_txt/`) | one per trial, a label question per prompt |

`NAME=FILE` (e.g. `financebench=/data/fb/financebench_open_source.jsonl`) reads that file instead;
documents are then looked up relative to the data root. A path ending in .jsonl is read as our schema.
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

from m3analyst.errors import InputError, UsageError
from m3analyst.evaluation.normalize import (
    EFFECT_LABELS,
    YESNO,
    canonical_effect_label,
    normalize_name,
    parse_date,
    parse_number,
)
from m3analyst.evaluation.schema import EvalItem, parse_item, read_eval_file
from m3analyst.resources import corpus_dir, resource_dir


@dataclass(frozen=True)
class SetLoader:
    name: str
    domain: str | None  # the domain the set belongs to (None: any)
    filenames: tuple[str, ...]  # candidates looked up under the data root / <domain>/
    read: Callable[[Path, Path], list[EvalItem]]  # (annotation file, data root) -> items
    description: str


SET_LOADERS: dict[str, SetLoader] = {}


def register_set(name: str, domain: str | None, filenames: tuple[str, ...], description: str):
    def deco(fn: Callable[[Path, Path], list[EvalItem]]):
        SET_LOADERS[name] = SetLoader(name, domain, filenames, fn, description)
        return fn

    return deco


def default_data_root() -> Path:
    return corpus_dir()


def _find(root: Path, domain: str | None, filenames: tuple[str, ...], set_name: str) -> Path:
    tried = []
    for fn in filenames:
        for base in (root, root / domain) if domain else (root,):
            p = base / fn
            tried.append(str(p))
            if p.is_file():
                return p
    raise InputError(root, f"no {set_name} file found", f"looked for {', '.join(tried)}; pass --dataset {set_name}=FILE")


def _rel(path: Path, root: Path) -> str:
    """`path` relative to `root` as a posix string (documents must live under the data root)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise InputError(path, f"document is not under the data root {root}", "pass --data-root a folder above it") from None


def load_set(name: str, domain: str, data_root: Path | None = None) -> list[EvalItem]:
    """Items of set `name` ('evals', a registered public set, 'NAME=FILE', or a .jsonl path)."""
    root = Path(data_root) if data_root else default_data_root()
    if name in ("evals", "default", ""):
        return read_eval_file(resource_dir("evals") / f"{domain}.jsonl", domain=domain)
    set_name, _, file = name.partition("=")
    if set_name in SET_LOADERS:
        loader = SET_LOADERS[set_name]
        if loader.domain and loader.domain != domain:
            raise UsageError(f"set {set_name!r} is a {loader.domain} set; run `m3analyst eval {loader.domain} --dataset {set_name}`")
        path = Path(file) if file else _find(root, loader.domain, loader.filenames, set_name)
        if not path.is_file():
            raise InputError(path, f"{set_name} file not found")
        return loader.read(path, root)
    path = Path(name)
    if path.suffix in (".jsonl", ".json") or path.exists():
        return read_eval_file(path, domain=domain)
    known = ", ".join(["evals", *SET_LOADERS])
    raise UsageError(f"unknown eval set {name!r}; use a JSONL path or one of: {known}")


def select_items(items: list[EvalItem], patterns: list[str] | tuple[str, ...] = (), limit: int | None = None) -> list[EvalItem]:
    """Items whose id matches any glob in `patterns` (case-insensitive; all when none), then the first `limit`."""
    if patterns:
        items = [it for it in items if any(fnmatch.fnmatchcase(it.id.lower(), p.lower()) for p in patterns)]
        if not items:
            raise UsageError(f"no item id matches {', '.join(patterns)}")
    return items[:limit] if limit else items


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}", f"not valid JSON ({e.msg})") from None
    return out


def _page_of(text: str, offset: int) -> int:
    """1-based page of a character offset in a text file (form feeds separate pages)."""
    return text.count("\f", 0, max(offset, 0)) + 1


# ---------------------------------------------------------------------------------------------
# FinanceBench


_SCALE_IN_QUESTION = (("billion", 1e9), ("million", 1e6), ("thousand", 1e3))


def _question_scale(question: str) -> float:
    """'(in USD millions)' -> 1e6: FinanceBench states the unit of a numeric answer in the question."""
    q = question.lower()
    for word, scale in _SCALE_IN_QUESTION:
        if f"usd {word}" in q or f"in {word}" in q or f"{word}s of usd" in q:
            return scale
    return 1.0


def financebench_question(row: dict[str, Any], n: int) -> dict[str, Any]:
    """One FinanceBench row -> our question dict (kind from the answer's shape)."""
    answer = str(row["answer"]).strip()
    ev = (row.get("evidence") or [{}])[0]
    page = ev.get("evidence_page_num")
    q: dict[str, Any] = {
        "id": str(row.get("financebench_id") or f"q{n}"),
        "question": row["question"],
        "answer": answer,
        "page": None if page is None else int(page) + 1,  # FinanceBench pages are zero-based
        "evidence": ev.get("evidence_text") or "",
    }
    first = answer.split()[0].strip(".,;:").lower() if answer else ""
    num = parse_number(answer)
    if first in ("yes", "no"):
        q.update(kind="yesno", labels=["yes", "no"])
    elif num is not None and len(answer) <= 24 and answer.replace(num.text, "").strip(" .") == "":
        q.update(kind="numeric", value=num.value, scale=num.scale or _question_scale(row["question"]),
                 unit="%" if num.percent else ("USD" if num.currency else None))
    else:
        q["kind"] = "text"
    return q


def _find_document(stem: str, ann_dir: Path, root: Path) -> Path:
    for base in (ann_dir, ann_dir / "pdfs", root, root / "pdfs", root / "finance"):
        for ext in (".pdf", ".PDF"):
            if (base / f"{stem}{ext}").is_file():
                return base / f"{stem}{ext}"
    return ann_dir / f"{stem}.pdf"


@register_set("financebench", "finance", ("financebench_dev.jsonl", "financebench_open_source.jsonl"),
              "FinanceBench questions (JSONL; doc_name -> PDF)")
def read_financebench(path: Path, root: Path) -> list[EvalItem]:
    groups: dict[str, list[tuple[int, dict]]] = {}
    for n, row in _read_jsonl(path):
        if "doc_name" not in row or "question" not in row or "answer" not in row:
            raise InputError(f"{path}:{n}", "not a FinanceBench row (needs doc_name, question, answer)")
        groups.setdefault(row["doc_name"], []).append((n, row))
    items = []
    for doc_name, rows in groups.items():
        doc = _find_document(doc_name, path.parent, root)
        obj = {
            "id": f"financebench/{doc_name}",
            "domain": "finance",
            "document": _rel(doc, root),
            "title": f"{rows[0][1].get('company', doc_name)} ({doc_name})",
            "source": "financebench",
            "questions": [financebench_question(r, n) for n, r in rows],
        }
        items.append(parse_item(obj, f"{path}:{rows[0][0]}"))
    return items


# ---------------------------------------------------------------------------------------------
# CUAD

CUAD_CATEGORIES = (
    "Document Name", "Parties", "Agreement Date", "Effective Date", "Expiration Date", "Renewal Term",
    "Notice Period To Terminate Renewal", "Governing Law", "Most Favored Nation", "Competitive Restriction Exception",
    "Non-Compete", "Exclusivity", "No-Solicit Of Customers", "No-Solicit Of Employees", "Non-Disparagement",
    "Termination For Convenience", "Rofr/Rofo/Rofn", "Change Of Control", "Anti-Assignment", "Revenue/Profit Sharing",
    "Price Restrictions", "Minimum Commitment", "Volume Restriction", "Ip Ownership Assignment", "Joint Ip Ownership",
    "License Grant", "Non-Transferable License", "Affiliate License-Licensor", "Affiliate License-Licensee",
    "Unlimited/All-You-Can-Eat-License", "Irrevocable Or Perpetual License", "Source Code Escrow",
    "Post-Termination Services", "Audit Rights", "Uncapped Liability", "Cap On Liability", "Liquidated Damages",
    "Warranty Duration", "Insurance", "Covenant Not To Sue", "Third Party Beneficiary",
)


@cache
def cuad_categories() -> frozenset[str]:
    """Normalised names of CUAD's 41 clause categories ('governing_law', ...)."""
    return frozenset(normalize_name(c) for c in CUAD_CATEGORIES)


def cuad_fact(category: str, ann: dict[str, Any], text: str) -> dict[str, Any]:
    """One CUAD category annotation -> a gold fact. Absent clause -> value 'No' (a clause negative)."""
    clauses = ann.get("clauses") or []
    answer = str(ann.get("answer") or "").strip()
    present = bool(clauses) or answer.lower() == "yes"
    fact: dict[str, Any] = {"field": category, "page": 1, "evidence": category}
    if clauses:
        first = clauses[0]
        fact["evidence"] = first["text"]
        if first.get("start") is not None and first["start"] >= 0:
            fact["page"] = _page_of(text, first["start"])
    if not present:
        fact.update(value="No", kind="yesno")
    elif answer.lower() in ("yes", "no"):
        fact.update(value=answer.capitalize(), kind="yesno")
    elif (d := parse_date(answer)) is not None and len(answer) <= 12:
        fact.update(value=d.isoformat(), kind="date")
    else:
        fact.update(value=answer or clauses[0]["text"], kind="text", aliases=[c["text"] for c in clauses[:5]])
    return fact


@register_set("cuad", "legal", ("cuad_annotations.jsonl",), "CUAD v1 clause annotations (41 categories per contract)")
def read_cuad(path: Path, root: Path) -> list[EvalItem]:
    items = []
    for n, row in _read_jsonl(path):
        if "txt_file" not in row or "categories" not in row:
            raise InputError(f"{path}:{n}", "not a CUAD annotation row (needs txt_file, categories)")
        doc = path.parent / row["txt_file"]
        text = doc.read_text(encoding="utf-8", errors="replace") if doc.is_file() else ""
        facts = [cuad_fact(cat, ann, text) for cat, ann in row["categories"].items()]
        obj = {"id": f"cuad/{Path(row['txt_file']).stem}", "domain": "legal", "document": _rel(doc, root),
               "title": row.get("contract") or Path(row["txt_file"]).stem, "source": "cuad", "facts": facts}
        items.append(parse_item(obj, f"{path}:{n}"))
    return items


# ---------------------------------------------------------------------------------------------
# PubMedQA


@register_set("pubmedqa", "bio", ("pubmedqa/pqal_dev.json", "pqal_dev.json", "ori_pqal.json"),
              "PubMedQA expert-labelled (QUESTION, CONTEXTS, final_decision)")
def read_pubmedqa(path: Path, root: Path) -> list[EvalItem]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(path, "PubMedQA file must be a JSON object {pmid: {QUESTION, CONTEXTS, final_decision}}")
    items = []
    for pmid, row in data.items():
        obj = {
            "id": f"pubmedqa/{pmid}", "domain": "bio", "source": "pubmedqa",
            "context": ["\n\n".join(row["CONTEXTS"])],
            "title": row["QUESTION"],
            "questions": [{"id": str(pmid), "question": row["QUESTION"], "answer": row["final_decision"],
                           "kind": "yesno", "labels": list(YESNO), "page": 1, "evidence": ""}],
        }
        items.append(parse_item(obj, f"{path}: item {pmid}"))
    return items


# ---------------------------------------------------------------------------------------------
# Evidence Inference


def effect_question(prompt: dict[str, Any]) -> str:
    return (f"Compared with {prompt['comparator']}, did {prompt['intervention']} significantly increase, "
            f"significantly decrease, or make no significant difference to {prompt['outcome']}?")


def majority_label(annotations: list[dict[str, Any]]) -> str | None:
    """Most common canonical label among the annotators (ties: first seen)."""
    labels = [canonical_effect_label(a.get("label", "")) for a in annotations]
    labels = [x for x in labels if x]
    return Counter(labels).most_common(1)[0][0] if labels else None


@register_set("evidence-inference", "bio", ("evidence_inference_gold.jsonl",),
              "Evidence Inference 2.0 prompts (outcome/intervention/comparator -> effect label)")
def read_evidence_inference(path: Path, root: Path) -> list[EvalItem]:
    items = []
    for n, row in _read_jsonl(path):
        doc = path.parent / row["txt_file"]
        text = doc.read_text(encoding="utf-8", errors="replace") if doc.is_file() else ""
        questions = []
        for p in row.get("prompts", []):
            label = majority_label(p.get("annotations", []))
            if label is None:
                continue
            ann = next((a for a in p["annotations"] if canonical_effect_label(a.get("label", "")) == label), {})
            questions.append({
                "id": str(p.get("prompt_id") or len(questions)), "question": effect_question(p), "answer": label,
                "kind": "label", "labels": list(EFFECT_LABELS),
                "page": _page_of(text, int(ann.get("evidence_start") or 0)), "evidence": ann.get("evidence_text") or "",
            })
        if not questions:
            continue
        obj = {"id": f"evidence-inference/{row.get('pmcid') or Path(row['txt_file']).stem}", "domain": "bio",
               "document": _rel(doc, root), "title": row.get("title"), "source": "evidence-inference",
               "questions": questions}
        items.append(parse_item(obj, f"{path}:{n}"))
    return items
