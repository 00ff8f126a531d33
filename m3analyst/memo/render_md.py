"""Markdown rendering of a Memo (the default output)."""

from __future__ import annotations

from m3analyst.domains.facts import Fact, format_value
from m3analyst.domains.findings import Finding
from m3analyst.domains.plugins import render_hints
from m3analyst.memo.types import FALLBACK_NOTE, Memo, MemoSection


# Document text is data, not markup: raw HTML (<script>, <iframe>) becomes entities and [text](javascript:...) links or
# ![images] lose their brackets, so no viewer renders them.
_MD_INERT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]"})


def _md(text: object) -> str:
    return str(text).translate(_MD_INERT)


def _esc(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def facts_rows(memo: Memo) -> list[dict]:
    """One row per fact: latest and prior period values (numeric facts), or the value (text facts)."""
    from m3analyst.domains.facts import current_and_prior

    order: list[str] = []
    groups: dict[str, list[Fact]] = {}
    for f in memo.facts:
        if f.name not in groups:
            order.append(f.name)
        groups.setdefault(f.name, []).append(f)
    rows = []
    for name in order:
        cur, prev = current_and_prior(groups[name])
        rows.append({"fact": cur, "prior": prev if prev is not None and isinstance(prev.value, float) else None})
    return rows


def _cell(f: Fact | None) -> str:
    if f is None:
        return ""
    period = f" ({f.period})" if f.period else ""
    return f"{f.display()}{period}"


def _pages(f: Fact) -> str:
    return ", ".join(f"[p.{p}]" for p in f.pages)


def facts_table(memo: Memo) -> list[str]:
    rows = facts_rows(memo)
    if not rows:
        return ["_No facts could be extracted._"]
    numeric = any(isinstance(r["fact"].value, float) for r in rows)
    if numeric and render_hints(memo.domain).facts_table == "periods":
        out = ["| Fact | Latest | Prior | Page |", "| --- | ---: | ---: | --- |"]
        for r in rows:
            f = r["fact"]
            label = f.title + (" *(derived)*" if f.derived else "")
            out.append(f"| {_esc(label)} | {_esc(_cell(f))} | {_esc(_cell(r['prior']))} | {_pages(f)} |")
        return out
    out = ["| Fact | Value | Page |", "| --- | --- | --- |"]
    for r in rows:
        f = r["fact"]
        value = f.display() if not isinstance(f.value, str) else f.value
        value = value if len(value) <= 220 else value[:219] + "…"
        out.append(f"| {_esc(f.title)} | {_esc(value)} | {_pages(f)} |")
    return out


def section_lines(memo: Memo, s: MemoSection) -> list[str]:
    lines = [f"## {s.heading}", ""]
    if s.kind == "facts":
        lines += facts_table(memo) + [""]
        for f in s.findings:  # what the domain states at a glance (a trial's PICO), below the table
            lines += finding_lines(f)
        return lines + ([""] if s.findings else [])
    shown = s.shown_claims(memo.drop_unsupported)
    if shown:
        lines += [" ".join(_md(c.text) + ("" if c.ok else " **[unsupported]**") for c in shown), ""]
    if s.findings:
        for f in s.findings:
            lines += finding_lines(f)
        return lines + [""]
    if s.quotes:
        if s.kind != "facts":
            lines += [f"_{FALLBACK_NOTE}_", ""]
        how = s.quotes[0].chosen_by
        label = {"engine": "chosen by the model reading the whole prompt", "lexical (no model)": "chosen lexically, no model",
                 "lexical (outside the prompt)": "chosen lexically from text the prompt could not hold"}
        lines.append(f"Key passages ({label.get(how, how)}):")
        lines.append("")
        for q in s.quotes:
            lines += [f"> \u201c{_md(q.text)}\u201d [p.{q.page}]", ""]
    elif not shown:
        lines += ["_Nothing in the document matched this heading._", ""]
    return lines


def finding_lines(f: Finding) -> list[str]:
    """'- claim [p.N]' (a short label first where the finding has one), then its quoted evidence, indented."""
    label = f"**{f.label}**: " if f.label and f.label not in f.claim else ""  # the claim already says it
    out = [f"- {label}{f.claim}" + (" *(rephrased by the model, checked)*" if f.source == "model" else "")]
    what = f.extra.get("evidence_label")
    for c in f.evidence:
        if c.quote and c.quote not in f.claim:  # a quoted statement is its own evidence
            out.append(f"  > {what + ': ' if what else ''}“{c.quote}” {c.mark}")
    return out


def render_markdown(memo: Memo) -> str:
    d = memo.document
    mode = (f"engine: {memo.engine['name']} ({memo.settings['engine']['attention']['backend']})" if memo.engine
            else "extractive: no model; findings by rule, passages chosen lexically")
    src = (d.get("source") or "").split("/")[-1]
    lines = [f"# {_md(memo.title)}", "", f"*{d.get('kind')} · {d.get('pages')} pages · {_md(src)} · {mode}*", ""]
    for s in memo.sections:
        lines += section_lines(memo, s)
    lines += appendix(memo)
    return "\n".join(lines).rstrip() + "\n"


def appendix(memo: Memo) -> list[str]:
    g, b = memo.grounding, memo.budget
    lines = ["## Appendix", "",
             f"- Grounding: {g['quoted_chars']:,} characters quoted verbatim; {g['generated_chars']:,} generated, "
             f"{g['verified_chars']:,} of them verified; {g['dropped_sentences']} sentence(s) dropped; "
             f"{g['unsupported_claims']} unsupported claim(s); {g['bad_citations_removed']} citation(s) to non-existent pages removed; "
             f"{g.get('citations_added', 0)} citation(s) added by the verifier; "
             f"grounding score {g['grounding_score']:.2f}.",
             f"- Facts: {g['facts']} extracted, {g['facts_with_page']} with their page.",
             f"- Findings: {g.get('findings', 0)} ({g.get('findings_by_model', 0)} rephrased by the model and checked); "
             f"{g.get('finding_figures', 0)} figures, {g.get('unsupported_figures', 0)} not tied to a fact.",
             f"- Prompt: {b['prompt_tokens']:,} of {b['budget']:,} tokens{' (estimated)' if b['estimated'] else ''}; "
             f"document {b['document_tokens_kept']:,} of {'~' if b.get('total_estimated') else ''}{b['document_tokens_total']:,} tokens kept."]
    if b["omitted"]:
        left = "; ".join(_omitted(o) for o in b["omitted"][:12])
        more = f" and {len(b['omitted']) - 12} more" if len(b["omitted"]) > 12 else ""
        lines.append(f"- Left out of the prompt for length: {left}{more}.")
    dropped = [c for s in memo.sections for c in s.claims if not c.ok]
    if dropped and memo.drop_unsupported:
        lines += ["", "Dropped by the verifier (not part of the memo):", ""]
        lines += [f"- ~~{_esc(c.text)}~~ ({'; '.join(c.problems)})" for c in dropped[:20]]
    if g.get("rephrasings_tried"):
        lines.append(f"- Model rephrasings of findings: {g['rephrasings_accepted']} of {g['rephrasings_tried']} "
                     "accepted by the verifier (the template sentence stands for the others).")
    tb = (memo.engine or {}).get("time_budget")
    if tb:
        cut = "; ".join(_md(c) for c in tb["cuts"]) or "nothing"
        lines.append(f"- Time budget: {tb['seconds']:.0f} s, {tb['spent_s']:.0f} s spent by the model's work; "
                     f"cut for time: {cut}.")
    if memo.timings:
        lines.append("- Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in memo.timings.items()) + ".")
    return lines + [""]


def _omitted(o: dict) -> str:
    pages = o["pages"]
    span = f"p.{pages[0]}" if pages[0] == pages[1] else f"pp.{pages[0]}-{pages[1]}"
    kept = f", pages {', '.join(map(str, sorted(o['pages_kept'])))} kept" if o.get("pages_kept") else ""
    return f"{_md(o['title'])} ({span}{kept})"


__all__ = ["facts_rows", "format_value", "render_markdown"]
