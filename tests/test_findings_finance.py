"""Findings in the memo (sections as lists of findings), the driver-sentence finder and the finance findings."""

from __future__ import annotations

import functools

import pytest

from m3analyst.domains.findings import Figure, Finding
from m3analyst.domains.registry import register_findings
from m3analyst.ingest.model import Citation, Document
from m3analyst.settings import Settings


@functools.lru_cache(maxsize=4)
def _load(path):
    from m3analyst.ingest import load_document

    return load_document(path)


@pytest.fixture
def no_model() -> Settings:
    s = Settings()
    s.engine.model = "none"
    return s


@register_findings("test_incident_findings")
def _incident_findings(doc, spec, facts):
    at = doc.text.index("The outage lasted")
    cite = Citation.of_span(doc, at, doc.text.index(".", at) + 1)
    return [Finding("The outage lasted 95 minutes [p.1].", "duration", "What happened",
                    [Figure("95 minutes", 95.0, "minutes", fact="duration")], [cite])]


def test_memo_sections_are_lists_of_findings_and_the_fallback_says_so(tmp_path, monkeypatch, no_model):
    from m3analyst.memo import write_memo

    (tmp_path / "incident.yaml").write_text(
        "name: incident\ntitle: Incident memo\nfindings: test_incident_findings\nfacts:\n"
        "  - {name: root_cause, label: Root cause, patterns: ['root cause (was|is)']}\n"
        "outline:\n  - {heading: Facts, kind: facts}\n"
        "  - {heading: What happened, kind: passages, queries: ['outage customers affected minutes']}\n"
        "  - {heading: Why, kind: passages, queries: ['root cause certificate proxy']}\n")
    monkeypatch.setenv("M3ANALYST_DOMAINS", str(tmp_path))
    doc = Document.from_pages(["Incident 42. The outage lasted 95 minutes and 3,000 customers were affected by it in the region.",
                               "Review. The root cause was an expired TLS certificate on the edge proxy of the cluster."])
    memo = write_memo(doc, "incident", no_model)
    happened, why = memo.sections[1], memo.sections[2]
    assert [f.claim for f in happened.findings] == ["The outage lasted 95 minutes [p.1]."] and not happened.fallback
    assert happened.quotes and happened.quotes[0].chosen_by == "finding evidence"  # JSON readers of quotes still see it
    assert why.fallback and not why.findings and why.quotes  # no finding: quotes only, and the memo says so
    d = memo.to_dict()
    assert d["sections"][1]["findings"][0]["figures"][0]["fact"] == "duration" and d["sections"][1]["note"] is None
    assert "No finding could be made" in d["sections"][2]["note"] and d["grounding"]["findings"] == 1
    md = memo.to_markdown()
    assert "- The outage lasted 95 minutes [p.1]." in md and "> \u201cThe outage lasted 95 minutes" in md
    assert md.count("No finding could be made") == 1


# ---- driver sentences --------------------------------------------------------------------------
def test_driver_sentences_on_a_small_document():
    from m3analyst.domains.drivers import driver_sentences

    doc = Document.from_pages([
        "Results. Net sales increased 4% in 2018, primarily due to higher selling prices and volume growth. "
        "In Brazil, total sales decreased 8% in 2018, driven by currency translation.",
        "Prior year. Net sales increased 2% in 2017 compared with 2016, driven by acquisitions. "
        "Cost of sales increased in 2018 primarily due to raw material costs. "
        "Sales could decline in 2019 due to tariffs.",
    ])
    cites = driver_sentences(doc, ["net sales", "sales", "revenue"], "2018")
    assert cites[0].page == 1 and cites[0].quote.startswith("Net sales increased 4% in 2018, primarily due to")
    assert doc.text[cites[0].start:cites[0].end].startswith("Net sales increased 4%")
    quotes = [c.quote for c in cites]
    assert all(not q.startswith(("Cost of sales", "Sales could")) for q in quotes[:2])  # another line; a risk
    assert quotes.index(next(q for q in quotes if q.startswith("In Brazil"))) > 0  # one region ranks below the total
    assert driver_sentences(doc, ["operating income"], "2018") == []  # not stated: nothing


@pytest.mark.parametrize("name,line,period,page,start", [
    ("MICROSOFT_2023_10K.pdf", "revenue", "2023", 44, "Fiscal Year 2023 Compared with Fiscal Year 2022 Revenue increased"),
    ("3M_2018_10K.pdf", "operating_income", "2018", 21, "Operating income margins were"),
    ("BESTBUY_2024Q2_10Q.pdf", "revenue", "three months to July 29, 2023", 17, "The decrease in revenue in the second quarter"),
])
def test_driver_sentences_in_filings(corpus, name, line, period, page, start):
    from m3analyst.domains import load_domain
    from m3analyst.domains.drivers import driver_sentences

    doc = _load(corpus / "finance" / name)
    top = driver_sentences(doc, load_domain("finance").fact(line).ask, period, k=1)
    assert top and top[0].page == page and top[0].quote.startswith(start)
