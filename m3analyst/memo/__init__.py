"""Memo: writer, verifier, renderers (Markdown, JSON, HTML) and question answering.

    memo = write_memo(doc, domain="finance", settings=Settings(), engine=eng_or_None)
    render_markdown(memo) / memo.to_dict() / render_html(memo)   # memo.render_md, memo.render_html
    ans = answer_question(doc, "What was FY2018 capex?", settings, engine)
    answers = answer_questions(doc, ["...", "..."], settings, engine)   # the model reads the document once
"""

from __future__ import annotations

from m3analyst.domains.facts import Fact
from m3analyst.memo.ask import answer_question, answer_questions
from m3analyst.memo.types import Answer, Memo, MemoSection, Quote
from m3analyst.memo.verify import ClaimCheck, verify_sentence, verify_text
from m3analyst.memo.writer import write_memo

__all__ = ["Answer", "ClaimCheck", "Fact", "Memo", "MemoSection", "Quote", "answer_question", "answer_questions",
           "verify_sentence", "verify_text", "write_memo"]
