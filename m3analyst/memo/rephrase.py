"""The model's rephrasing of rule-made findings, one finding per short prompt (issue 16 point 6, issue 20).

A shared prefix (the instruction of `prompts/rephrase.j2` and the worked examples of `rephrase_examples.json` as
chat turns) is prefilled once; each finding then costs one short turn: its claim and, where the claim does not
already quote it, its first evidence quote with the page, then a greedy generation of about the claim's length,
stopped at the first line break. A rephrasing stands only when `check_rephrasing` finds nothing wrong (same figures,
names, direction and pages); otherwise the template sentence stands. Every attempt is recorded on the finding
(`extra["rephrasing"]`: text, accepted, problems) so the memo counts generated and accepted sentences honestly.

    rephrase_findings(engine, spec, findings, budget)     # budget: memo/timebudget.py (None: no time limit)
"""

from __future__ import annotations

import json

from m3analyst.domains.findings import Finding
from m3analyst.engine.prefixcache import is_cached, prefill_cached
from m3analyst.engine.progress import note
from m3analyst.domains.spec import DomainSpec
from m3analyst.memo.verify import CITE, check_rephrasing, citations_in, split_sentences
from m3analyst.prompting import TASK_SENTINEL, render_template
from m3analyst.resources import resource_dir

SKIP_TOPICS = ("risk", "outlook")  # quoted statements: nothing to rephrase
EVIDENCE_WORDS = 40  # words of the evidence quote shown with the finding
EXTRA_TOKENS = 16  # a rephrasing may run this many tokens longer than the claim (plus a driver clause)
MAX_TOKENS = 80


def rephrasable(f: Finding) -> bool:
    return bool(f.figures) and f.topic not in SKIP_TOPICS


def finding_turn(f: Finding) -> str:
    """The user turn for one finding: its claim, and its first evidence quote not already in the claim."""
    ev = next((c for c in f.evidence if c.quote and c.quote not in f.claim), None)
    quote = " ".join(ev.quote.split()[:EVIDENCE_WORDS]) if ev else ""
    return f"Finding: {f.claim}\nEvidence: {f'[p.{ev.page}] {quote}' if ev else '(none)'}"


def _examples() -> list[dict]:
    return json.loads((resource_dir("prompts") / "rephrase_examples.json").read_text())


def shared_prompt(engine, spec: DomainSpec | None = None) -> tuple[str, str]:
    """(prefix, tail): the chat text before a finding's turn (computed once) and after it (the assistant's start)."""
    messages = [{"role": "system", "content": render_template("rephrase.j2", spec).strip()}]
    for ex in _examples():
        shown = Finding(ex["finding"], "example", evidence=[])
        turn = finding_turn(shown).replace("(none)", ex["evidence"] or "(none)")
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": ex["rephrasing"]}]
    messages.append({"role": "user", "content": TASK_SENTINEL})
    prefix, tail = engine.render_chat(messages).split(TASK_SENTINEL, 1)
    return prefix, tail


def max_tokens(engine, f: Finding) -> int:
    return min(MAX_TOKENS, engine.count_tokens(f.claim) + EXTRA_TOKENS)


def rephrase_findings(engine, spec: DomainSpec | None, found: list[Finding], budget=None, stats_all=None) -> dict:
    """Let the model rephrase each rephrasable finding in turn while `budget` affords one more; returns counts
    {"tried", "accepted", "cut"} (cut: findings left as templates for lack of time)."""
    todo = [f for f in found if rephrasable(f)]
    counts = {"tried": 0, "accepted": 0, "cut": 0}
    if not todo:
        return counts
    prefix, tail = shared_prompt(engine, spec)
    local = getattr(engine, "path", None) is not None  # the embedded engine: the prefix's KV cache kept on disk
    if budget is not None and not (local and is_cached(engine, prefix)) and \
            not budget.affords_tokens(engine.count_tokens(prefix), 0):
        counts["cut"] = len(todo)
        budget.cut(f"model rephrasing of {len(todo)} finding(s): no time left for its prompt")
        return counts
    sess = prefill_cached(engine, prefix, MAX_TOKENS + 256) if local else engine.prefill(prefix, MAX_TOKENS + 256)
    for i, f in enumerate(todo):
        note(f"rephrasing findings: {i + 1}/{len(todo)}")
        suffix = finding_turn(f) + tail
        n_in, n_out = engine.count_tokens(suffix), max_tokens(engine, f)
        if budget is not None and not budget.affords_tokens(n_in, n_out):
            counts["cut"] = len(todo) - i
            budget.cut(f"model rephrasing of {len(todo) - i} of {len(todo)} finding(s) (templates stand)")
            break
        res = sess.generate(suffix, max_new_tokens=n_out, stop=("\n",),
                            deadline=budget.deadline if budget is not None else None)
        if stats_all is not None:
            stats_all.append(res.stats)
        counts["tried"] += 1
        if budget is not None:
            budget.observe(res.stats)
        counts["accepted"] += apply_rephrasing(f, res.text, res.finish_reason)
    return counts


def apply_rephrasing(f: Finding, generated: str, finish: str = "eos") -> bool:
    """Keep `generated` (its first sentence) as the finding's claim when it passes `check_rephrasing` and was not cut
    off (`finish`: the generation's finish reason); records the attempt in f.extra["rephrasing"]. True when accepted."""
    sents = split_sentences(generated.strip().strip('"'))
    text = sents[0] if sents else ""
    if text and not CITE.search(text):
        text = f"{text.rstrip('.')} {' '.join(f'[p.{p}]' for p in citations_in(f.claim))}."
    if _plain(text) in (_plain(f.claim), ""):
        problems = ["no rephrasing (empty or the finding itself)"]
    elif finish in ("length", "deadline", "context") and not generated.rstrip().endswith((".", "]")):
        problems = [f"cut off ({finish}) before the sentence ended"]
    else:
        problems = check_rephrasing(f, text)
    f.extra["rephrasing"] = {"text": text, "accepted": not problems, "problems": problems}
    if problems:
        f.extra["rephrasing_rejected"] = {"text": text, "problems": problems}
        return False
    f.template, f.claim, f.source = f.claim, text, "model"
    return True


def _plain(text: str) -> str:
    return " ".join(CITE.sub(" ", text).lower().replace("finding:", " ").split()).strip(" .")
