"""Memo writer (model-free mode), verifier, renderers, ask, and the CLI commands."""

from __future__ import annotations

import functools
import json

import pytest

from m3analyst.domains import load_domain
from m3analyst.domains.facts import Fact
from m3analyst.ingest.model import Document
from m3analyst.memo import answer_question, verify_sentence, verify_text, write_memo
from m3analyst.memo.render_html import render_html
from m3analyst.memo.render_md import render_markdown
from m3analyst.settings import Settings


@functools.lru_cache(maxsize=4)
def _load(path):
    """Documents are read-only for the memo writer: load each corpus file once per test session."""
    from m3analyst.ingest import load_document

    return load_document(path)


@pytest.fixture
def no_model() -> Settings:
    s = Settings()
    s.engine.model = "none"
    return s


def _doc() -> Document:
    return Document.from_pages([
        "Results. Net sales were $32,765 million in 2018, up 3.5 percent. Operating income was $7,207 million.",
        "Risks. The Company faces \"intense competition in all of its markets\" and currency risk.",
    ])


# ---- verifier ----------------------------------------------------------------------------------
def test_verifier_checks_numbers_quotes_and_pages():
    doc = _doc()
    ok = verify_sentence(doc, "Net sales were $32,765 million in 2018 [p.1].")
    assert ok.ok and ok.citations == [1] and ok.numbers >= 2
    assert verify_sentence(doc, "Net sales were $32.8 billion in 2018 [p.1].").ok  # rounded, other scale
    wrong = verify_sentence(doc, "Net sales were $31,000 million in 2018 [p.1].")
    assert not wrong.ok and "31,000" in wrong.problems[0]
    other_page = verify_sentence(doc, "Operating income was $7,207 million [p.2].")
    assert not other_page.ok and "elsewhere in the document" in other_page.problems[0]
    assert verify_sentence(doc, 'It faces "intense competition in all of its markets" [p.2].').ok
    assert not verify_sentence(doc, 'It faces "no competition in any of its markets" [p.2].').ok
    assert not verify_sentence(doc, "Net sales were $32,765 million in 2018.").ok  # no citation


def test_citations_to_missing_pages_are_removed_and_counted():
    doc = _doc()
    c = verify_sentence(doc, "Net sales were $32,765 million [p.1] [p.40].")
    assert c.bad_citations == [40] and "[p.40]" not in c.text and c.citations == [1]
    only_bad = verify_sentence(doc, "Net sales were $32,765 million [p.9].")
    assert only_bad.bad_citations == [9] and not only_bad.ok and "[p.9]" not in only_bad.text
    checks = verify_text(doc, "Net sales were $32,765 million [p.1]. Profit tripled in the third quarter [p.1].")
    assert [c.ok for c in checks] == [True, False]


# ---- memo (model-free) -------------------------------------------------------------------------
def test_extractive_memo_on_a_file_defined_domain(tmp_path, monkeypatch, no_model):
    (tmp_path / "incident.yaml").write_text(
        "name: incident\ntitle: Incident memo\nfacts:\n"
        "  - {name: root_cause, label: Root cause, patterns: ['root cause (was|is)']}\n"
        "outline:\n  - {heading: Facts, kind: facts}\n"
        "  - {heading: What happened, kind: passages, queries: ['outage customers affected minutes'], max_words: 60}\n")
    monkeypatch.setenv("M3ANALYST_DOMAINS", str(tmp_path))
    doc = Document.from_pages(["Incident 42. The outage lasted 95 minutes and 3,000 customers were affected by it in the region.",
                               "Review. The root cause was an expired TLS certificate on the edge proxy of the cluster."])
    memo = write_memo(doc, "incident", no_model)
    md = render_markdown(memo)
    assert memo.mode == "extractive" and "# Incident memo" in md and "| Root cause |" in md and "[p.2]" in md
    assert memo.sections[1].quotes and memo.sections[1].quotes[0].page == 1
    assert "chosen lexically, no model" in md


def test_finance_memo_model_free(corpus, no_model):
    doc = _load(corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf")
    memo = write_memo(doc, "finance", no_model)
    d = memo.to_dict()
    assert d["mode"] == "extractive" and d["engine"] is None
    assert {"sections", "facts", "citations", "budget", "grounding", "timings"} <= set(d)
    assert d["grounding"]["invalid_citations_emitted"] == [] and d["grounding"]["quoted_chars"] > 0
    assert all(doc.has_page(p) for p in d["citations"])
    rev = next(f for f in d["facts"] if f["name"] == "revenue" and f["period"].startswith("three months to July 29"))
    assert rev["value"] == 9583e6 and rev["page"] == 4
    for s in memo.sections:
        for q in s.quotes:  # quotes are verbatim slices of the page they cite
            assert doc.locate(q.text[:120], q.page)
    md = render_markdown(memo)
    assert "| Revenue | $9,583M (three months to July 29, 2023) | $10,329M (three months to July 30, 2022) | [p.4] |" in md
    html = render_html(memo)
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    json.dumps(d, default=str)


def test_legal_memo_model_free(corpus, no_model):
    from m3analyst.ingest import load_document

    path = corpus / "legal" / "contracts_txt" / "MEDALISTDIVERSIFIEDREIT,INC_05_18_2020-EX-10.1-CONSULTING AGREEMENT.txt"
    memo = write_memo(load_document(path), "legal", no_model)
    facts = {f.name: f for f in memo.facts}
    assert facts["governing_law"].value == "Virginia"  # CUAD: Virginia
    assert facts["renewal_term"].value == "twelve (12) months"  # CUAD: 12 months
    assert "Gunston Consulting, LLC" in facts["parties"].value and "Medalist Diversified REIT" in facts["parties"].value
    headings = [s.heading for s in memo.sections]
    assert headings[:4] == ["Term sheet", "Risk flags", "Key terms", "Term and termination"]
    term_sheet = next(s for s in memo.sections if s.heading == "Term sheet")
    law = next(f for f in term_sheet.findings if "governing law" in f.claim.lower())
    assert law.label == "Virginia" and law.evidence and law.evidence[0].page >= 1


# (file, design, sample size, words of the primary outcome) — read by eye in each paper
TRIALS = [
    ("papers_pdf/rct_lancetrespmed2014_stopadvisor_smoking_cessation.pdf", "randomised controlled trial", 4613, "abstinence"),
    ("papers_pdf/rct_bmcpublichealth2014_UatUni_online_health_behaviour.pdf", "randomised controlled trial", 1445, "four health behaviours"),
    ("trials_txt/PMC1065065.txt", "randomised controlled trial", 40, None),
]


@pytest.mark.parametrize("path,design,n,outcome", TRIALS, ids=["stopadvisor", "uatuni", "lornoxicam"])
def test_bio_memo_states_design_n_and_primary_outcome(corpus, no_model, path, design, n, outcome):
    memo = write_memo(_load(corpus / "bio" / path), "bio", no_model)
    facts = {f.name: f for f in memo.facts}
    assert design in facts["design"].value  # the label, or the paper's own phrase holding it
    assert facts["sample_size"].value == n
    if outcome:
        assert outcome in facts["primary_outcome"].value
    md = render_markdown(memo)
    assert f"| Sample size (N) | {n:,} |" in md or f"| Sample size (N) | {n} |" in md


# ---- ask -----------------------------------------------------------------------------------------
def test_ask_from_facts(corpus, no_model):
    doc = _load(corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf")
    a = answer_question(doc, "What was Best Buy's revenue in the quarter ended July 29, 2023, in USD millions?", no_model)
    assert a.source == "facts" and a.value == 9583 and a.citations == [4]
    b = answer_question(doc, "What were total current liabilities at July 29, 2023 (USD millions)?", no_model)
    assert b.source == "facts" and b.value == 8433 and b.citations == [3]
    c = answer_question(doc, "Why did comparable sales decline?", no_model)
    # an explanation question: the filing's driver sentences (issue 17), else the closest passage
    assert c.kind == "explanation" and c.source in ("rules", "passage") and c.citations and doc.has_page(c.citations[0])


def test_ask_from_clauses(no_model):
    from m3analyst.domains import extract_facts, load_domain
    from m3analyst.memo.ask import answer_from_clauses

    pages = ["MASTER SUPPLY AGREEMENT\nThis Agreement is made between Acme Corp. and Beta LLC on March 3, 2020.",
             "14.4 Assignment. Neither Party may assign this Agreement without the prior written consent of the other "
             "Party. 14.5 Governing Law. This Agreement will be construed and interpreted in accordance with the laws of "
             "the State of Delaware, without regard to any choice of law provision."]
    doc = Document.from_pages(pages)
    law = answer_question(doc, "Which jurisdiction's law governs this agreement?", no_model, domain="legal")
    assert law.source == "facts" and law.fact == "governing_law" and law.citations == [2]
    assert law.text.startswith("Governing law: Delaware") and "laws of the State of Delaware" in law.text
    named = answer_question(doc, "What is the name of this agreement?", no_model, domain="legal")
    assert named.fact == "document_name" and named.text == "Document: \u201cMASTER SUPPLY AGREEMENT\u201d [p.1]"
    assign = answer_question(doc, "Does this agreement restrict assignment? Answer yes or no.", no_model, domain="legal")
    assert assign.fact == "anti_assignment" and assign.text.startswith("Yes:") and assign.citations == [2]
    can = answer_question(doc, "Can a party assign this agreement without consent? Answer yes or no.", no_model, domain="legal")
    # a restriction's presence is not a yes to "can a party ...": not answered from the clause fact; model-free, the
    # closest passage's polarity answers it (issue 17: "Neither Party may assign ... without ... consent" -> No)
    assert can.fact is None and can.source in ("passage", "rules") and can.label == "No"
    absent = "Can a party terminate this agreement for convenience? Answer yes or no."
    no = answer_question(doc, absent, no_model, domain="legal")
    assert no.source == "facts" and no.text.startswith("No: no termination for convenience clause") and no.citations == []
    spec = load_domain("legal")  # with a model, an absent clause is left to the engine's reading
    assert answer_from_clauses(doc, spec, extract_facts(doc, spec), absent, say_absent=False) is None
    fin = load_domain("finance")  # amounts are not clauses: a finance question never takes this path
    assert answer_from_clauses(doc, fin, extract_facts(doc, fin), "Did revenue grow? Answer yes or no.", True) is None


def test_ask_with_an_unverified_model_answer_falls_back_to_the_clause_search(no_model):
    from types import SimpleNamespace

    from m3analyst.domains import extract_facts, load_domain
    from m3analyst.memo.ask import answer_with_engine

    class StubEngine:  # a model whose answer no page supports
        context_length = 8192

        def count_tokens(self, text):
            return len(text.split())

        def generate(self, messages, max_new_tokens=64):
            return SimpleNamespace(text="Yes, the parties agreed on a 45-day cure period [p.1].")

    doc = Document.from_pages(["SERVICES AGREEMENT between Acme Corp. and Beta LLC dated May 1, 2021.",
                               "The Supplier shall deliver the Services described in Schedule A at the agreed fees."])
    spec = load_domain("legal")
    q = "Can a party terminate this agreement for convenience? Answer yes or no."
    a = answer_with_engine(doc, spec, extract_facts(doc, spec), q, no_model, StubEngine())
    assert a.source == "facts" and a.citations == []
    assert a.text.startswith("The model's answer could not be verified against the document; No: no termination")


def test_effect_labels_read_from_the_reporting_sentence():
    from m3analyst.memo.effect import answer_effect, label_of

    assert label_of("Pain scores were significantly lower in the ketamine group than in the control group (P = 0.01).",
                    "ketamine", "control") == "significantly decreased"
    assert label_of("The control group had significantly higher pain scores than the ketamine group (P < 0.01).",
                    "ketamine", "control") == "significantly decreased"  # the comparator's side, turned round
    assert label_of("Length of stay did not differ between the groups (P = 0.41).") == "no significant difference"
    assert label_of("Mortality was 12% in both arms.") is None  # neither significance nor its absence: no label
    doc = Document.from_pages(["Methods. Sixty patients were randomised to ketamine or placebo.",
                               "Results. Nausea was significantly reduced with ketamine compared with placebo (p < 0.05). "
                               "Sedation scores were similar between the groups."])
    q = "Compared with placebo, did ketamine significantly increase, significantly decrease, or make no significant difference to nausea?"
    a = answer_effect(doc, q)
    assert a.source == "rules" and a.text.startswith("significantly decreased") and a.citations == [2]
    b = answer_effect(doc, "Compared with placebo, what was the effect of ketamine on sedation scores?")
    assert b.text.startswith("no significant difference") and "Sedation scores were similar" in b.text
    assert answer_effect(doc, "How many patients were randomised?") is None


def test_effect_questions_use_the_papers_abbreviations_and_skip_baseline_comparisons():
    from m3analyst.memo.effect import abbreviations_for, answer_effect

    doc = Document.from_pages([
        "Methods. Patients were randomised to slow or fast drainage; we measured plasma renin activity (PRA) and "
        "the Model for End-Stage Liver Disease score.",
        "Results. At inclusion there was a significant difference in weight between groups (P = 0.03), higher in "
        "the fast group. PRA did not differ between groups after drainage (P = 0.4). MELD rose in neither group.",
    ])
    assert abbreviations_for(doc, "Plasma renin activity") == ["PRA"]  # defined after its long form
    assert "MELD" in abbreviations_for(doc, "Model End Stage Liver Disease score")  # its initials, in order
    assert abbreviations_for(doc, "body weight") == []
    a = answer_effect(doc, "Compared with fast drainage, what was the effect of slow drainage on plasma renin activity?")
    assert a.text.startswith("no significant difference") and "PRA did not differ" in a.text


# ---- CLI -----------------------------------------------------------------------------------------
def test_cli_finance_json_and_errors(cli, corpus, tmp_path):
    out = tmp_path / "memo.json"
    r = cli("finance", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "--model", "none", "--json", "--out", out)
    assert r.exit_code == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["domain"] == "finance" and "ingest" in d["timings"] and d["grounding"]["invalid_citations_emitted"] == []
    r = cli("legal", tmp_path / "missing.pdf", "--model", "none")
    assert r.exit_code == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = cli("finance", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "--model", "none", "--attention", "fast")
    assert r.exit_code == 2 and "--attention" in r.stderr


def test_cli_ask(cli, corpus):
    r = cli("ask", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "What was diluted EPS for the three months ended July 29, 2023?",
            "--model", "none", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["value"] == 1.25 and d["source"] == "facts" and d["citations"] == [4]


def test_heading_avoid_and_prefer_patterns_steer_the_quoted_passages():
    from m3analyst.domains.spec import OutlineItem
    from m3analyst.text import paragraphs
    from m3analyst.memo.passages import BM25, candidates

    doc = Document.from_pages([
        "This report contains forward-looking statements. We expect that future results may differ and we "
        "undertake no obligation to update any forward-looking statement for future events or results.",
        "Demand for our products remained firm in every region during the year. We expect net sales to grow "
        "in the coming year as new capacity comes online in the second half.",
        "The outlook for next year depends on conditions that management cannot control; results are uncertain "
        "for this reason and for the other reasons given in this report.",
    ])
    paras = list(paragraphs(doc))
    bm25 = BM25([p.text for p in paras])
    base = dict(heading="Outlook", queries=["we expect anticipate future outlook next year"])

    def ranked(item):
        return {c.span.page: c.lexical for c in candidates(doc, item, [], None, paras, bm25)}

    plain = ranked(OutlineItem(**base))
    steered = ranked(OutlineItem(**base, avoid=["forward-looking statements"], prefer=[r"\bwe expect net sales\b"]))
    assert 1 in plain and 1 not in steered  # the safe-harbour notice is never quoted
    assert steered[2] == pytest.approx(2 * plain[2]) and steered[3] == pytest.approx(plain[3])


def test_verifier_finds_the_page_a_citationless_sentence_verifies_against():
    from m3analyst.memo.verify import verify_text

    doc = _doc()
    facts = [Fact("revenue", 32765e6, "USD", 1e6, "2018", 1, "Net sales $32,765 million", "Revenue")]
    claims = verify_text(doc, "Net sales were $32,765 million in 2018. The moon is made of cheese and rock.", facts, pages=[1, 2])
    assert claims[0].ok and claims[0].cited_by_verifier and claims[0].citations == [1] and claims[0].text.endswith("[p.1]")
    assert not claims[1].ok and claims[1].citations == []  # no page supports it: still dropped
    # without the pages the model read, nothing is added
    assert not verify_text(doc, "Net sales were $32,765 million in 2018.", facts)[0].ok
    # a sentence that cites a page is checked against that page only
    wrong = verify_text(doc, "Net sales were $32,765 million in 2018 [p.2].", facts, pages=[1, 2])[0]
    assert not wrong.ok and not wrong.cited_by_verifier
    vague = verify_text(doc, "The Company faces competition in all of its markets and some currency risk.", facts, pages=[1, 2])[0]
    assert not vague.ok and not vague.citations  # words alone are not tied to a page by the verifier


def test_several_questions_share_one_prefill_of_the_document(no_model):
    from types import SimpleNamespace

    from m3analyst.memo import answer_questions
    from m3analyst.prompting import TASK_SENTINEL

    calls = {"prefill": 0, "suffixes": []}

    class Session:
        def generate(self, suffix, max_new_tokens=64):
            calls["suffixes"].append(suffix)
            return SimpleNamespace(text="Net sales were $32,765 million in 2018 [p.1].")

    class StubEngine:  # renders a chat, prefills its document part once, answers each question after it
        context_length = 8192

        def count_tokens(self, text):
            return len(text.split())

        def render_chat(self, messages):
            return "\n".join(m["content"] for m in messages)

        def prefill(self, prefix, reserve=0):
            assert TASK_SENTINEL not in prefix and "Net sales were $32,765 million" in prefix
            calls["prefill"] += 1
            return Session()

        def generate(self, messages, max_new_tokens=64):
            raise AssertionError("several questions must not each read the document")

    doc = _doc()
    qs = ["How did net sales develop in 2018?", "What were net sales in 2018 according to the results?"]
    answers = answer_questions(doc, qs, no_model, engine=StubEngine(), domain="finance")
    assert calls["prefill"] == 1 and len(calls["suffixes"]) == 2
    assert all(q.split()[-1].rstrip("?") in s for q, s in zip(qs, calls["suffixes"]))  # each question after the document
    assert [a.source for a in answers] == ["engine", "engine"] and answers[0].citations == [1]


def test_cli_ask_several_questions(cli, corpus):
    r = cli("ask", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "What was diluted EPS for the three months ended July 29, 2023?",
            "Was there any drop in cash and cash equivalents between FY 2023 and Q2 of FY2024?", "--model", "none", "--json")
    assert r.exit_code == 0, r.stderr
    first, second = json.loads(r.stdout)
    assert first["value"] == 1.25 and second["text"].startswith("Yes: Cash and equivalents fell")


def test_cli_ask_questions_file_and_no_question(cli, corpus, tmp_path):
    qs = tmp_path / "qs.txt"
    qs.write_text("# from the analyst\nWhat was diluted EPS for the three months ended July 29, 2023?\n\n")
    r = cli("ask", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "--questions", qs, "--model", "none", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["value"] == 1.25  # one question (from the file): one answer object
    none = cli("ask", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "--model", "none")
    assert none.exit_code == 2 and "no question given" in none.stderr and "Traceback" not in none.stderr
    missing = cli("ask", corpus / "finance" / "BESTBUY_2024Q2_10Q.pdf", "--questions", tmp_path / "nope.txt")
    assert missing.exit_code == 2 and "nope.txt" in missing.stderr and "questions file" in missing.stderr
