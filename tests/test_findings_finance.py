"""Findings in the memo (sections as lists of findings), the driver-sentence finder and the finance findings."""

from __future__ import annotations

import functools

import pytest

from m3analyst.domains.findings import Figure, Finding
from m3analyst.domains.plugins import register_findings
from m3analyst.ingest.model import Citation, Document
from m3analyst.memo.render_md import render_markdown
from m3analyst.settings import Settings


from tests.test_memo import _load, no_model  # noqa: F401 - shared: one load per corpus file, model-free settings
from tests.test_memo_engine import SPEC, engine  # noqa: F401 - the default model, loaded once (skips without it)


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
    md = render_markdown(memo)
    assert "- The outage lasted 95 minutes [p.1]." in md and "> \u201cThe outage lasted 95 minutes" in md
    assert md.count("No finding could be made") == 1


# ---- driver sentences --------------------------------------------------------------------------
def test_driver_sentences_on_a_small_document():
    from m3analyst.domains.finance.drivers import driver_sentences

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
    ("3M_2018_10K.pdf", "operating_income", "2018", 27, "Operating income margins decreased in 2018 versus 2017, driven"),
    # the consolidated results name the segment; the segment's own page then gives the product lines
    ("BESTBUY_2024Q2_10Q.pdf", "revenue", "three months to July 29, 2023", 16, "Revenue, gross profit rate, SG&A"),
])
def test_driver_sentences_in_filings(corpus, name, line, period, page, start):
    from m3analyst.domains import load_domain
    from m3analyst.domains.finance.drivers import driver_sentences

    doc = _load(corpus / "finance" / name)
    top = driver_sentences(doc, load_domain("finance").fact(line).ask, period, k=1)
    assert top and top[0].page == page and top[0].quote.startswith(start)


# ---- finance findings on a filing ------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _findings_of(path):
    from m3analyst.domains import extract_facts, load_domain
    from m3analyst.domains.plugins import make_findings

    spec = load_domain("finance")
    doc = _load(path)
    facts = extract_facts(doc, spec)
    return doc, facts, make_findings(doc, spec, facts)


@pytest.fixture
def mmm(corpus):
    return _findings_of(corpus / "finance" / "3M_2018_10K.pdf")


def test_finance_findings_state_changes_with_figures_tied_to_facts(mmm):
    from m3analyst.memo.verify import unsupported_figures

    doc, facts, found = mmm
    by_topic = {}
    for f in found:
        by_topic.setdefault(f.topic, []).append(f)
    assert len(found) >= 6 and {"growth", "margin", "cash conversion", "leverage", "capital returned"} <= set(by_topic)
    rev = by_topic["growth"][0]
    assert rev.claim == "Revenue rose 3.5% to $32,765M in 2018 from $31,657M in 2017 [p.56]."
    assert [g.fact for g in rev.figures] == ["revenue_change", "revenue", "revenue"]
    op_margin = next(f for f in by_topic["margin"] if f.claim.startswith("Operating margin"))
    assert "narrowed by 230 bps to 22.0%" in op_margin.claim  # 7,207 / 32,765 vs 7,692 / 31,657
    assert all(unsupported_figures(f, facts) == [] for f in found)
    oi = next(f for f in by_topic["growth"] if f.claim.startswith("Operating income"))
    assert oi.extra["evidence_label"] == "Stated driver" and oi.evidence[0].page == 27
    assert oi.evidence[0].has_span and doc.text[oi.evidence[0].start:oi.evidence[0].end].startswith("Operating income margins")
    assert "Stated driver" not in rev.extra.get("evidence_label", "")  # 3M states no cause for total sales


def test_finance_outlook_and_risks(mmm):
    _, _, found = mmm
    outlook = [f for f in found if f.topic == "outlook"]
    assert outlook and all("2019" in f.claim for f in outlook)  # forward-looking with a date ahead
    assert not any("forward-looking statements" in f.claim.lower() for f in outlook)
    risks = [f for f in found if f.topic == "risk"]
    labels = [f.label for f in risks]
    assert len(labels) == len(set(labels)) >= 4 and labels[:2] == ["Economic conditions", "Credit rating and funding"]
    assert risks[1].claim.startswith("Change in the Company’s credit ratings could increase cost of funding")


# ---- model phrasing under the verifier ----------------------------------------------------------
def test_a_rephrasing_stands_only_when_it_states_the_same_figures_names_and_direction():
    from m3analyst.memo.verify import check_rephrasing
    from m3analyst.memo.writer import _apply_rephrasing

    def finding():
        return Finding("Revenue rose 3.5% to $32,765M in 2018 from $31,657M in 2017 [p.56].", "growth", "Results",
                       [Figure("+3.5%", 3.5, "%", "revenue_change", "2018 vs 2017", True)])

    ok = "Revenue grew 3.5% to $32.8 billion in 2018, up from $31.7 billion in 2017 [p.56]."
    assert check_rephrasing(finding(), ok) == []
    assert check_rephrasing(finding(), ok.replace("grew", "fell").replace("up from", "from")) == ["direction of change reversed"]
    assert "figure 4 not in the finding" in check_rephrasing(finding(), ok.replace("3.5%", "4%"))
    assert any("dropped" in p for p in check_rephrasing(finding(), "Revenue grew 3.5% in 2018 [p.56]."))
    assert any("Apple" in p for p in check_rephrasing(finding(), "Like Apple, " + ok[0].lower() + ok[1:]))
    assert any("p.57" in p for p in check_rephrasing(finding(), ok.replace("[p.56]", "[p.57]")))
    assert check_rephrasing(finding(), "Revenue grew 3.5% from $31,657M in 2017 to $32,765M in 2018 [p.56].") == []
    swapped = check_rephrasing(finding(), "Revenue grew 3.5% from $32,765M in 2017 to $31,657M in 2018 [p.56].")
    assert any("moved" in p for p in swapped)  # the earlier and later values swapped (seen from the 135M model)
    assert "figure 2017 of the finding dropped" in check_rephrasing(finding(), ok.replace(" in 2017", ""))  # years exact
    good, bad = finding(), finding()
    _apply_rephrasing(good, ok.replace(" [p.56]", ""))  # a dropped citation is given back the finding's pages
    assert good.source == "model" and good.claim.endswith("[p.56].") and good.template.startswith("Revenue rose")
    same = finding()
    _apply_rephrasing(same, "Finding: " + same.claim)  # the finding echoed back is not a rephrasing
    assert same.source == "rule" and same.template is None and "rephrasing_rejected" in same.extra
    _apply_rephrasing(bad, "Revenue grew 4% in 2018.")
    assert bad.source == "rule" and bad.claim.startswith("Revenue rose 3.5%") and bad.extra["rephrasing_rejected"]["problems"]


@register_findings("test_note_findings")
def _note_findings(doc, spec, facts):
    def cite(text):
        at = doc.text.index(text)
        return Citation.of_span(doc, at, doc.text.index(".", at) + 1)

    f = Finding("Net sales rose 3.5% to $32,765M in 2018 [p.2].", "growth", "Results",
                [Figure("+3.5%", 3.5, "%", "revenue_change", "2018 vs 2017", True, ["revenue@2018", "revenue@2017"])],
                [cite("Net sales increased")])
    f.extra.update(evidence_label="Stated driver", driver_index=0, question="Why did net sales change in 2018?",
                   alternatives=[cite("Net sales increased").to_dict(), cite("The board met").to_dict()])
    return [f]


@pytest.mark.slow
def test_with_the_model_drivers_are_ranked_and_a_rephrasing_stands_only_if_checked(engine, tmp_path, monkeypatch):  # noqa: F811
    from m3analyst.memo import write_memo

    (tmp_path / "note.yaml").write_text(SPEC.replace("name: note", "name: note\nfindings: test_note_findings"))
    monkeypatch.setenv("M3ANALYST_DOMAINS", str(tmp_path))
    doc = Document.from_pages([
        "About us. We make industrial tapes and optical films, sold to manufacturers in more than sixty countries.",
        "2018 results. Net sales increased 3.5 percent to $32,765 million in 2018, driven by selling prices and volumes.",
        "Governance. The board met eleven times in 2018; it approved the budget, the dividend and two acquisitions.",
    ])
    s = Settings()
    s.memo.heading_tokens = 24
    memo = write_memo(doc, "note", s, engine=engine)
    f = memo.sections[1].findings[0]
    assert f.extra["driver_chosen_by"] == "engine" and all("engine_logprob" in a for a in f.extra["alternatives"])
    assert f.source == "model" or f.claim == f.template or f.template is None  # template stands unless checked
    if f.source == "model":
        from m3analyst.memo.verify import check_rephrasing

        assert check_rephrasing(f, f.claim) == []
