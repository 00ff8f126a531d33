"""Bio findings (domains/bio/findings.py): PICO, effect estimates with direction, risk-of-bias flags."""

from __future__ import annotations

from m3analyst.domains import extract_facts, load_domain, make_findings
from m3analyst.domains.bio.findings import BIAS, GLANCE, RESULTS, bias_findings, estimate_findings, population_of
from m3analyst.ingest.model import Document
from m3analyst.text import sentences

TRIAL = ("We enrolled 240 adults with type 2 diabetes aged 40-70 years who were recruited from primary care. "
         "Participants were randomly assigned using a computer-generated sequence in sealed opaque envelopes to metformin or placebo. "
         "The trial was double-blind. Analysis was by intention to treat. Twelve participants (5%) were lost to follow-up. "
         "HbA1c fell more with metformin (mean difference -0.42%, 95% CI -0.62 to -0.23, p<0.001). "
         "Severe hypoglycaemia did not differ (OR 1.10; 95% CI 0.70-1.60; p = 0.61).")


def _sents(doc):
    return [s for s in sentences(doc) if s.words >= 4]


def test_population_is_a_short_phrase():
    doc = Document.from_pages([TRIAL])
    value, span = population_of(doc, _sents(doc))
    assert value == "240 adults with type 2 diabetes aged 40-70 years" and span.page == 1


def test_estimates_become_findings_with_direction():
    doc = Document.from_pages([TRIAL])
    found = estimate_findings(doc, _sents(doc))
    assert [f.label for f in found] == ["significantly decreased", "no significant difference"]
    assert found[0].section == RESULTS and found[0].evidence[0].page == 1 and "95% CI" in found[0].claim
    assert [fig.value for fig in found[0].figures] == [-0.42, -0.62, -0.23]


def test_risk_of_bias_flags_carry_evidence():
    doc = Document.from_pages([TRIAL])
    flags = {f.extra["domain"]: f for f in bias_findings(doc, _sents(doc))}
    assert {d: f.label for d, f in flags.items()} == {
        "Random sequence generation": "low risk", "Allocation concealment": "low risk", "Blinding": "low risk",
        "Intention-to-treat analysis": "low risk", "Attrition": "reported"}
    assert all(f.section == BIAS and f.evidence for f in flags.values())
    open_label = Document.from_pages(["Patients were randomised to A or B in an open-label trial."])
    got = {f.extra["domain"]: f.label for f in bias_findings(open_label, _sents(open_label))}
    assert got["Blinding"] == "high risk" and got["Allocation concealment"] == "unclear"


def test_registered_findings_on_a_real_trial(corpus):
    from m3analyst.ingest import load_document

    doc = load_document(corpus / "bio" / "papers_pdf" / "rct_lancetrespmed2014_stopadvisor_smoking_cessation.pdf")
    spec = load_domain("bio")
    found = make_findings(doc, spec, extract_facts(doc, spec))
    headings = {o.heading for o in spec.outline}
    assert {f.section for f in found} <= headings and {GLANCE, RESULTS, BIAS} <= {f.section for f in found}
    pico = {f.extra.get("element"): f.label for f in found if f.topic == "pico"}
    assert pico["intervention"] == "StopAdvisor" and pico["comparator"] == "information-only website"
    effects = [f for f in found if f.topic == "effect" and f.extra.get("estimate")]
    assert effects and all(f.evidence and f.label for f in effects)
