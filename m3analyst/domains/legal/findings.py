"""Legal findings: the term sheet (topic "term", one per category the spec lists) and risk flags (topic "flag")
raised by the playbook in domains/legal/spec.yaml, each with its clause and page.

A playbook rule (`playbook:` in the spec) names a flag and when it is raised, over the contract's clause facts:
`present: FACT` (the clause was found), `absent: FACT`, `matching` / `not_matching` (regexes on the present
clause's sentence), `law_not_in` (governing law outside a list). The flag cites the present fact's clause, else
the rule's `cite` fact; a rule that would cite nothing is not raised.
"""

from __future__ import annotations

import re
from typing import Any

from m3analyst.domains.facts import Fact
from m3analyst.domains.findings import Finding
from m3analyst.domains.legal.terms import NOT_FOUND, TermAnswer, citation_of, term_sheet
from m3analyst.domains.plugins import register_findings
from m3analyst.domains.spec import DomainSpec
from m3analyst.ingest.model import Document

TERM_SECTION, FLAG_SECTION = "Term sheet", "Risk flags"


def term_finding(t: TermAnswer) -> Finding:
    if t.answer == "Yes":
        claim = f"{t.title}: yes — the contract has such a clause."
    elif t.answer in ("No", NOT_FOUND):
        claim = f"{t.title}: {t.answer.lower()} — no clause states it."
    else:
        claim = f"{t.title}: {t.answer}" + (f" ({t.note})" if t.note and t.note not in t.answer else "") + "."
    return Finding(claim, "term", TERM_SECTION, evidence=[t.evidence] if t.evidence else [], label=t.answer,
                   extra={"category": t.category, "fact": t.fact})


def _holds(rule: dict[str, Any], by: dict[str, Fact], terms: dict[str, TermAnswer], doc: Document) -> Fact | None:
    """The fact a rule cites when the rule holds for this contract, else None."""
    present = by.get(rule["present"]) if rule.get("present") else None
    if rule.get("present") and present is None:
        return None
    if rule.get("absent") and rule["absent"] in by:
        return None
    sentence = citation_of(doc, present).quote if present is not None else ""
    if rule.get("matching") and not re.search(rule["matching"], sentence, re.I):
        return None
    if rule.get("not_matching") and re.search(rule["not_matching"], sentence, re.I):
        return None
    if "law_not_in" in rule:
        law = terms.get(rule["present"]).answer if rule["present"] in terms else str(present.value if present else "")
        if law == NOT_FOUND or any(u.lower() == law.lower() for u in rule["law_not_in"]):
            return None
    return present if present is not None else by.get(rule.get("cite", ""))


def flag_findings(doc: Document, spec: DomainSpec, facts: list[Fact], terms: list[TermAnswer]) -> list[Finding]:
    by = {f.name: f for f in facts}
    by_term = {t.fact: t for t in terms}
    out = []
    for rule in (spec.model_extra or {}).get("playbook") or []:
        cited = _holds(rule, by, by_term, doc)
        if cited is None:
            continue
        c = citation_of(doc, cited)
        law = by_term.get("governing_law")
        why = rule.get("why", "").replace("{law}", law.answer if law else "")
        out.append(Finding(f"{rule['flag']}: {why}", "flag", FLAG_SECTION, evidence=[c], label=rule["flag"],
                           extra={"rule": rule.get("id", rule["flag"]), "fact": cited.name}))
    return out


@register_findings("legal")
def legal_findings(doc: Document, spec: DomainSpec, facts: list[Fact]) -> list[Finding]:
    """The term sheet, then the risk flags."""
    terms = term_sheet(doc, spec, facts)
    return [term_finding(t) for t in terms] + flag_findings(doc, spec, facts, terms)


__all__ = ["FLAG_SECTION", "TERM_SECTION", "flag_findings", "legal_findings", "term_finding"]
