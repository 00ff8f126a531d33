"""The memo's time budget (memo/timebudget.py) and the model's one-finding rephrasing under it (memo/rephrase.py),
with a scripted engine: no model is loaded."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from m3analyst.domains.findings import Figure, Finding
from m3analyst.memo import rephrase
from m3analyst.memo.timebudget import MARGIN, TimeBudget
from m3analyst.memo.verify import check_rephrasing


def test_costs_tokens_and_measured_rates():
    b = TimeBudget(100, start=time.monotonic(), prefill_tok_s=50, decode_tok_s=5)
    assert b.cost(500, 10) == pytest.approx(12.0)
    assert b.left() == pytest.approx(100 * (1 - MARGIN), abs=0.5)
    assert b.affords_tokens(4000) and not b.affords_tokens(5000)
    assert b.tokens_out(500, keep=80) == pytest.approx(int((95 - 80 - 10) * 5), abs=3)
    assert b.tokens_out(5000) == 0
    b.observe(SimpleNamespace(prompt_tokens=1100, cached_tokens=1000, prefill_s=2.0, new_tokens=21, decode_s=4.0))
    assert (b.prefill_tok_s, b.decode_tok_s) == (50.0, 5.0)
    b.observe(SimpleNamespace(prompt_tokens=1100, cached_tokens=1000, prefill_s=4.0, new_tokens=41, decode_s=20.0))
    assert (b.prefill_tok_s, b.decode_tok_s) == (25.0, 2.0)
    late = TimeBudget(10, start=time.monotonic() - 60)
    assert late.left() < 0 and late.tokens_out(0) == 0 and not late.affords_tokens(1)
    b.cut("x")
    assert b.to_dict()["cuts"] == ["x"] and b.to_dict()["seconds"] == 100


def _margin():
    return Finding("Net margin widened by 98 bps to 16.3% in 2018 from 15.3% in 2017 [p.56].", "margin", "Results",
                   [Figure("16.3%", 16.3, "%", "net_margin", "2018")])


@pytest.mark.parametrize("text, problem", [
    ("In 2018, net sales increased 98 bps, from 15.3% in 2017 to 16.3% in 2018 [p.56].", "subject word 'margin'"),
    ("The net margin widened 98 bps to 16.3% in 2018 from 15.3% in 2017 as pricing improved [p.56].", "'pricing'"),
    ("The net margin widened by 98 bps to 16.1% in 2018 from 15.3% in 2017 [p.56].", "figure 16.1"),
])
def test_a_rephrasing_keeps_the_subject_and_adds_no_content(text, problem):
    assert any(problem in p for p in check_rephrasing(_margin(), text))


def test_reordered_rephrasings_with_close_rates_are_told_apart():
    ok = "In 2018 the net margin widened by 98 bps, from 15.3% in 2017 to 16.3% in 2018 [p.56]."
    assert check_rephrasing(_margin(), ok) == []
    gross = Finding("Gross margin narrowed by 20 bps to 49.1% in 2018 from 49.3% in 2017 [p.56].", "margin")
    assert check_rephrasing(gross, "The gross margin narrowed by 20 bps, from 49.3% in 2017 to 49.1% in 2018 "
                                   "[p.56].") == []  # 49.1% and 49.3% are two figures, not one rounded
    assert any("moved" in p for p in check_rephrasing(
        gross, "The gross margin narrowed by 20 bps, from 49.1% in 2017 to 49.3% in 2018 [p.56]."))


class _Engine:
    """A scripted engine: render_chat / count_tokens / prefill like the real one; each generate returns the next
    scripted text and sleeps `step_s`."""

    def __init__(self, replies, step_s=0.0):
        self.replies, self.step_s, self.suffixes = list(replies), step_s, []

    def render_chat(self, messages):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def count_tokens(self, text):
        return len(text.split())

    def prefill(self, prefix, reserve=None):
        eng = self

        class Sess:
            def generate(self, suffix, max_new_tokens=None, stop=None, deadline=None, **kw):
                eng.suffixes.append(suffix)
                time.sleep(eng.step_s)
                text = eng.replies.pop(0)
                stats = SimpleNamespace(prompt_tokens=0, cached_tokens=0, prefill_s=0.0, new_tokens=9, decode_s=0.0)
                return SimpleNamespace(text=text, stats=stats, finish_reason="stop" if text.endswith(".") else "length")

        return Sess()


def _found():
    return [_margin(), Finding("Revenue rose 3.5% to $32,765M in 2018 from $31,657M in 2017 [p.56].", "growth",
                               figures=[Figure("+3.5%", 3.5, "%", "revenue_change", "2018")]),
            Finding("A risk stated by the filing [p.10].", "risk"),
            Finding("Net income rose 10.1% to $5,349M in 2018 from $4,858M in 2017 [p.56].", "growth",
                    figures=[Figure("+10.1%", 10.1, "%", "net_income_change", "2018")])]


def test_each_finding_gets_its_own_short_turn_and_every_try_is_counted():
    found = _found()
    eng = _Engine(["In 2018 the net margin widened by 98 bps, from 15.3% in 2017 to 16.3% in 2018 [p.56].",
                   "Revenue rose 3.5% to $32,765M in 2018 from $31,657M in 2017 [p.56].",  # the finding itself
                   "In 2018, net income rose 10.1% to $5,349M, up from $4,858M in 2017 [p.56], driven by"])  # cut off
    counts = rephrase.rephrase_findings(eng, None, found)
    assert counts == {"tried": 3, "accepted": 1, "cut": 0}  # the risk (a quoted statement) is not rephrased
    assert [f.source for f in found] == ["model", "rule", "rule", "rule"]
    assert found[0].template.startswith("Net margin widened") and found[0].extra["rephrasing"]["accepted"]
    assert "cut off" in found[3].extra["rephrasing"]["problems"][0]
    assert all(s.startswith("Finding: ") and "Evidence: (none)" in s for s in eng.suffixes)
    assert "15.3%" in eng.suffixes[0] and "Revenue" not in eng.suffixes[0]  # one finding per turn


def test_the_time_budget_cuts_rephrasings_and_says_so():
    found = _found()
    eng = _Engine(["In 2018 the net margin widened by 98 bps, from 15.3% in 2017 to 16.3% in 2018 [p.56]."] * 3,
                  step_s=0.3)
    budget = TimeBudget(1.0, prefill_tok_s=1e6, decode_tok_s=100)  # ~0.95 s: the first try fits, then 0.3 s each
    budget.observe = lambda stats: setattr(budget, "decode_tok_s", 20)  # measured: 9 tokens ~0.45 s
    counts = rephrase.rephrase_findings(eng, None, found, budget)
    assert counts["tried"] + counts["cut"] == 3 and 1 <= counts["tried"] < 3
    assert budget.cuts and "templates stand" in budget.cuts[0]
    spent = TimeBudget(1.0, start=time.monotonic() - 5)
    assert rephrase.rephrase_findings(_Engine([]), None, _found(), spent)["cut"] == 3 and spent.cuts


def test_each_percentage_keeps_its_own_direction():
    both_fell = Finding("Operating income fell 13.0% while revenue fell 15.4% in 2017: operating income outpaced "
                        "revenue by 2.4 points [p.74].", "operating leverage")
    wrong = "In 2017, operating income fell 13.0% against revenue growth of 15.4%, outpacing it by 2.4 points [p.74]."
    assert "direction of 15.4% reversed" in check_rephrasing(both_fell, wrong)
    assert check_rephrasing(both_fell, wrong.replace("against revenue growth of", "while revenue fell")) == []
