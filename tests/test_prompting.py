"""Prompt builder: one prompt, document before the task, [p.N] markers, budget by whole sections."""

from __future__ import annotations

from m3analyst.domains import load_domain
from m3analyst.domains.facts import Fact
from m3analyst.ingest.model import Document, Section
from m3analyst.prompting import TASK_SENTINEL, build_prompt, estimate_tokens, task_text
from m3analyst.settings import Settings


def _filing() -> Document:
    """Four pages, three 10-K items: Item 1 (p.1), Item 1A (p.2), Item 7 (pp.3-4)."""
    pages = ["Item 1. Business. " + "We make adhesives. " * 40,
             "Item 1A. Risk Factors. " + "Competition could hurt margins. " * 40,
             "Item 7. MD&A. " + "Net sales increased 3.5 percent. " * 40,
             "Operating income was $7,207 million. " * 40]
    doc = Document.from_pages(pages)
    doc.metadata.kind = "10-K"
    spans = [("Item 1. Business.", "item_1", 1, 1), ("Item 1A. Risk Factors.", "item_1a", 2, 2), ("Item 7. MD&A.", "item_7", 3, 4)]
    for title, kind, a, b in spans:
        doc.sections.append(Section(title, kind, 1, doc.pages[a - 1].start, doc.pages[b - 1].end, a, b))
    return doc


FACTS = [Fact("revenue", 32765e6, "USD", 1e6, "2018", 3, "Net sales $ 32,765", "Revenue")]


def test_whole_document_fits_document_first_with_page_markers():
    doc, spec = _filing(), load_domain("finance")
    built = build_prompt(doc, spec, FACTS, Settings())
    r = built.report
    assert r.complete and r.pages_included == [1, 2, 3, 4] and r.estimated
    user = built.messages("Task: write the memo.")[1]["content"]
    assert user.index("<document>") < user.index("[p.1]") < user.index("</document>") < user.index("Task: write the memo.")
    assert "Revenue (2018): $32,765M [p.3]" in user  # the facts table sits between document and task
    assert built.messages()[0]["content"] == spec.role.strip()
    for s in built.segments:  # every segment maps back to Document.text exactly
        assert built.document[s.prompt_start : s.prompt_start + (s.doc_end - s.doc_start)] == doc.text[s.doc_start : s.doc_end]
        assert built.page_of(s.prompt_start) == s.page == doc.page_at(s.doc_start)


def _overhead(doc, spec, facts) -> int:
    return build_prompt(doc, spec, facts, Settings()).report.overhead_tokens


def test_too_long_keeps_whole_sections_in_priority_order_and_reports_the_rest():
    doc, spec = _filing(), load_domain("finance")
    s = Settings()
    # room for Item 7 (pp.3-4) + overhead + the omitted list, not for the other two items
    s.memo.budget = _overhead(doc, spec, FACTS) + estimate_tokens(doc.text[doc.pages[2].start :]) + 60
    built = build_prompt(doc, spec, FACTS, s)
    r = built.report
    assert [u["kind"] for u in r.included] == ["item_7"] and r.pages_included == [3, 4]
    assert {o["kind"] for o in r.omitted} == {"item_1", "item_1a"}
    assert r.prompt_tokens <= r.budget
    assert "Left out for length: Item 1. Business. (p. 1); Item 1A. Risk Factors. (p. 2)" in built.user_template
    assert "[p.1]" not in built.document and "[p.3]" in built.document and "[p.4]" in built.document


def test_oversized_top_section_contributes_pages():
    doc, spec = _filing(), load_domain("finance")
    s = Settings()
    s.memo.budget = _overhead(doc, spec, FACTS) + estimate_tokens(doc.page_text(3)) + 60  # one page of Item 7 fits
    r = build_prompt(doc, spec, FACTS, s).report
    item7 = next(o for o in r.omitted if o["kind"] == "item_7")
    assert len(item7["pages_kept"]) == 1 and r.prompt_tokens <= r.budget


def test_pages_are_units_when_there_are_no_sections():
    doc = Document.from_pages(["Cover page. " * 50, "Consolidated Statements of Income " + "Net sales 1 2 3. " * 50])
    s = Settings()
    s.memo.budget = _overhead(doc, load_domain("finance"), []) + estimate_tokens(doc.page_text(2)) + 30
    r = build_prompt(doc, load_domain("finance"), [], s).report
    assert r.pages_included == [2]  # the statement page (page_priority_patterns) wins over the cover


def test_task_template():
    t = task_text(load_domain("bio"), "Harms", "Adverse events.", "What harms were reported?", 80)
    assert "Harms" in t and "What harms were reported?" in t and "[p.12]" in t and "80 words" in t
    assert TASK_SENTINEL not in t


def test_text_that_cannot_fit_is_never_tokenized(monkeypatch):
    """A section longer than room * MAX_CHARS_PER_TOKEN characters is estimated, not counted; the prompt is
    the one exact counting of everything gives."""
    import m3analyst.prompting as prompting

    small = _filing()
    big = Document.from_pages(["Item 1. Business. " + "We make adhesives for cars and phones. " * 600]
                              + [small.page_text(n) for n in (2, 3, 4)])
    big.metadata.kind = "10-K"
    for title, kind, a, b in [("Item 1. Business.", "item_1", 1, 1), ("Item 1A. Risk Factors.", "item_1a", 2, 2),
                              ("Item 7. MD&A.", "item_7", 3, 4)]:
        big.sections.append(Section(title, kind, 1, big.pages[a - 1].start, big.pages[b - 1].end, a, b))
    spec, seen = load_domain("finance"), []

    def counting(text: str) -> int:
        seen.append(len(text))
        return estimate_tokens(text)

    s = Settings()
    s.memo.budget = _overhead(big, spec, FACTS) + estimate_tokens(big.text[big.pages[1].start :]) + 80
    built = build_prompt(big, spec, FACTS, s, counter=counting)
    room = s.memo.budget - built.report.overhead_tokens
    assert len(big.page_text(1)) > room * prompting.MAX_CHARS_PER_TOKEN
    assert len(big.page_text(1)) not in seen and len(big.text) not in seen  # Item 1 (its page too) never counted
    assert built.report.total_estimated and built.report.pages_included == [2, 3, 4]
    monkeypatch.setattr(prompting, "MAX_CHARS_PER_TOKEN", 1e9)  # count everything: the same prompt
    exact = build_prompt(big, spec, FACTS, s, counter=counting)
    assert exact.user_template == built.user_template and not exact.report.total_estimated
    assert len(big.page_text(1)) in seen


def test_a_budget_beyond_the_models_context_is_cut_to_fit():
    """--budget larger than the loaded model's context (e.g. a time-capped CPU context) never yields a prompt
    the engine must refuse: the builder keeps within context - reserve."""
    doc, spec = _filing(), load_domain("finance")
    s = Settings()
    s.memo.budget = 100_000
    ctx = _overhead(doc, spec, FACTS) + s.memo.reserve + 200
    built = build_prompt(doc, spec, FACTS, s, context_length=ctx)
    assert built.report.budget == ctx - s.memo.reserve
    assert built.report.prompt_tokens <= ctx - s.memo.reserve and not built.report.complete
