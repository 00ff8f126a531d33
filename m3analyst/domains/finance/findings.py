"""Finance findings: what a junior analyst states about a filing — growth and margin changes (margins in bps),
operating leverage, tax-rate swings, cash conversion and free cash flow, liquidity and leverage, capital returned,
segment mix, outlook and risks — each a `Finding` whose figures are tied to the extracted facts.

Registered as the "finance" findings function (`make_findings`). The words, lines and thresholds it uses come from
the spec's `analysis` block (domains/finance/spec.yaml); figures come only from facts (`domains/finance/extract.py`: reported
lines per period, derived metrics) or are computed here from two facts, and say so (`Figure.derived`, `inputs`).
Each change carries the sentence where the filing states its driver (`domains/finance/drivers.py`), where it states one;
the other candidate sentences ride along in `extra["alternatives"]` for the memo writer to re-rank with a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m3analyst.domains.facts import Fact, current_and_prior, format_value
from m3analyst.domains.finance.drivers import driver_candidates
from m3analyst.domains.finance.narrative import outlook_findings, risk_findings
from m3analyst.domains.findings import Figure, Finding
from m3analyst.domains.plugins import register_findings
from m3analyst.domains.spec import DomainSpec
from m3analyst.ingest.model import Document
from m3analyst.text import period_key, period_span


@dataclass
class _Ctx:
    doc: Document
    spec: DomainSpec
    cfg: dict
    facts: list[Fact]
    used: set  # driver sentences already cited (each is cited once, under the first finding it explains)

    def section(self, key: str) -> str:
        return self.cfg.get("sections", {}).get(key, key)

    def series(self, name: str) -> list[Fact]:
        return [f for f in self.facts if f.name == name and isinstance(f.value, float) and not f.extra.get("yoy")]

    def pair(self, name: str) -> tuple[Fact | None, Fact | None]:
        return current_and_prior(self.series(name))

    def at(self, name: str, period: str | None) -> Fact | None:
        """The fact `name` for the same period as `period` (labels differ: '2024-09-28' vs 'September 28, 2024')."""
        key = period_key(period)
        return next((f for f in self.series(name) if period_key(f.period) == key or f.period == period), None)

    def label(self, name: str) -> str:
        fs = self.spec.fact(name) or next((d for d in self.spec.derived if d.name == name), None)
        return (fs.label if fs and fs.label else name.replace("_", " ").capitalize()) if fs else name

    def phrases(self, name: str) -> list[str]:
        fs = self.spec.fact(name) or next((d for d in self.spec.derived if d.name == name), None)
        return list(getattr(fs, "ask", None) or []) + [self.label(name).lower()]


@register_findings("finance")
def finance_findings(doc: Document, spec: DomainSpec, facts: list[Fact]) -> list[Finding]:
    """The filing's findings, in memo order (results, then liquidity and capital allocation, risks, outlook)."""
    cfg = dict(getattr(spec, "analysis", None) or {})
    ctx = _Ctx(doc, spec, cfg, facts, set())
    out: list[Finding] = []
    for rule in (_growth, _margins, _leverage, _tax_rate, _segment_mix, _cash_conversion, _net_debt, _liquidity,
                 _coverage, _capital_returned):
        out.extend(rule(ctx))
    out.extend(risk_findings(ctx.doc, ctx.cfg, ctx.section("risks")))
    item = next((o for o in spec.outline if o.heading == ctx.section("outlook")), None)
    out.extend(outlook_findings(ctx.doc, ctx.cfg, ctx.section("outlook"), _latest_year(facts), item.avoid if item else None,
                                (doc.metadata.company or "").split()[:1]))
    return out


# ---- figures and words ---------------------------------------------------------------------------
def fig(f: Fact) -> Figure:
    """A fact as a Figure (shown as the memo's facts table shows it)."""
    inputs = [f.source_text] if f.derived and f.source_text else []
    return Figure(f.display(), f.value, f.unit, f.name, f.period, f.derived, inputs)


def computed(text: str, value: float, unit: str, name: str, used: list[Fact]) -> Figure:
    """A figure computed here from facts (a change, a ratio, a sum): tied to the facts it is computed from."""
    return Figure(text, round(value, 6), unit, name, " vs ".join(dict.fromkeys(f.period or "" for f in used)), True,
                  [f"{f.name}@{f.period}" for f in used])


def marks(*facts: Fact | None) -> str:
    pages = sorted({p for f in facts if f is not None for p in f.pages})
    return " ".join(f"[p.{p}]" for p in pages)


def when(period: str | None, instant: bool = False) -> str:
    """'in 2018' / 'at the end of 2018' / 'in the three months to July 29, 2023' / 'in the year to 2023-06-30'."""
    p = period or ""
    if re.fullmatch(r"(FY)?\d{4}", p):
        return f"at the end of {p}" if instant else f"in {p}"
    if period_span(p):
        return f"in the {p}"
    return f"at {p}" if instant else f"in the year to {p}"


def pct(v: float, sign: bool = True) -> str:
    return f"{v:+.1f}%" if sign else f"{abs(v):.1f}%"


def _latest_year(facts: list[Fact]) -> int | None:
    keys = [period_key(f.period)[0] for f in facts if f.period and not f.extra.get("yoy")]
    return max(keys) if keys and max(keys) else None


def _verb(change: float, flat: float, up: str = "rose", down: str = "fell") -> str:
    return "was flat" if abs(change) < flat else up if change > 0 else down


# ---- drivers -------------------------------------------------------------------------------------
def attach_driver(ctx: _Ctx, finding: Finding, phrases: list[str], period: str | None, question: str) -> None:
    """Cite the sentence stating the driver of this change (the best one not cited yet), keep the other candidates
    for a model to re-rank (`extra["alternatives"]`), and say what it is (`extra["evidence_label"]`)."""
    floor = float(ctx.cfg.get("driver_min_score", 8.0))
    cands = [c for c in driver_candidates(ctx.doc, phrases, period, floor) if (c.span.start, c.span.end) not in ctx.used]
    k = int(ctx.cfg.get("driver_candidates", 4))
    if not cands:
        return
    best = cands[0]
    ctx.used.add((best.span.start, best.span.end))
    finding.evidence.append(best.citation())
    finding.extra.update(evidence_label="Stated driver", question=question, driver_index=len(finding.evidence) - 1,
                         alternatives=[c.citation().to_dict() for c in cands[:k]])


# ---- results -------------------------------------------------------------------------------------
def _growth(ctx: _Ctx) -> list[Finding]:
    out = []
    for name in ctx.cfg.get("growth", []):
        cur, prev = ctx.pair(name)
        if cur is None or prev is None or not prev.value:
            continue
        label = ctx.label(name)
        if (cur.value < 0) != (prev.value < 0):  # a swing between profit and loss: no percentage
            claim = f"{label} was {cur.display()} {when(cur.period)} against {prev.display()} {when(prev.period)} {marks(cur, prev)}."
            figs = [fig(cur), fig(prev)]
        else:
            ch = 100.0 * (cur.value - prev.value) / abs(prev.value)
            verb = _verb(ch, float(ctx.cfg.get("flat_pct", 0.5)))
            by = f"({pct(ch)})" if verb == "was flat" else pct(ch, False)
            claim = (f"{label} {verb} {by} to {cur.display()} {when(cur.period)} from {prev.display()} "
                     f"{when(prev.period)} {marks(cur, prev)}.")
            figs = [computed(pct(ch), ch, "%", f"{name}_change", [cur, prev]), fig(cur), fig(prev)]
        f = Finding(claim, "growth", ctx.section("results"), figs, label=None)
        if name in ctx.cfg.get("drivers", []):  # the line, or its margin ("operating margin ... increased, due to")
            margins = [m for m, base in (ctx.cfg.get("margins") or {}).items() if base == name]
            phrases = ctx.phrases(name) + [p for m in margins for p in ctx.phrases(m)]
            attach_driver(ctx, f, phrases, cur.period, f"What drove the change in {label.lower()} {when(cur.period)}?")
        out.append(f)
    return out


def _margins(ctx: _Ctx) -> list[Finding]:
    out = []
    for name, base in (ctx.cfg.get("margins") or {}).items():
        cur, prev = ctx.pair(name)
        if cur is None or prev is None:
            continue
        bps = round((cur.value - prev.value) * 100)
        label = ctx.label(name)
        verb = _verb(bps, float(ctx.cfg.get("flat_bps", 10)), "widened", "narrowed")
        text = f"{abs(bps):,} bps" if verb != "was flat" else f"{bps:+,} bps"
        claim = (f"{label} {verb} {'(' + text + ')' if verb == 'was flat' else 'by ' + text} to {cur.display()} "
                 f"{when(cur.period)} from {prev.display()} {when(prev.period)} {marks(cur, prev)}.")
        f = Finding(claim, "margin", ctx.section("results"),
                    [computed(f"{bps:+,} bps", bps, "bps", f"{name}_change", [cur, prev]), fig(cur), fig(prev)])
        phrases = ctx.phrases(name) + [f"{p} {w}" for p in ctx.phrases(base) for w in ("margin", "rate")]
        attach_driver(ctx, f, phrases, cur.period, f"Why did the {label.lower()} change {when(cur.period)}?")
        out.append(f)
    return out


def _leverage(ctx: _Ctx) -> list[Finding]:
    """Operating leverage: operating income growing faster (or falling faster) than revenue."""
    rc, rp = ctx.pair("revenue")
    oc, op = ctx.pair("operating_income")
    if None in (rc, rp, oc, op) or not rp.value or not op.value or op.value < 0 or oc.value < 0:
        return []
    if period_key(rc.period) != period_key(oc.period) or period_key(rp.period) != period_key(op.period):
        return []
    g_rev = 100.0 * (rc.value - rp.value) / abs(rp.value)
    g_oi = 100.0 * (oc.value - op.value) / abs(op.value)
    gap = g_oi - g_rev
    if abs(gap) < float(ctx.cfg.get("leverage_gap_pp", 1.0)):
        return []
    claim = (f"Operating income {'grew' if g_oi >= 0 else 'fell'} {pct(g_oi, False)} while revenue "
             f"{'grew' if g_rev >= 0 else 'fell'} {pct(g_rev, False)} {when(rc.period)}: operating income "
             f"{'outpaced' if gap > 0 else 'lagged'} revenue by {abs(gap):.1f} points {marks(rc, rp, oc, op)}.")
    figs = [computed(pct(g_oi, False), g_oi, "%", "operating_income_change", [oc, op]),
            computed(pct(g_rev, False), g_rev, "%", "revenue_change", [rc, rp]),
            computed(f"{abs(gap):.1f} points", gap, "pp", "operating_leverage_gap", [oc, op, rc, rp])]
    return [Finding(claim, "operating leverage", ctx.section("results"), figs)]


def _tax_rate(ctx: _Ctx) -> list[Finding]:
    cur, prev = ctx.pair("effective_tax_rate")
    if cur is None or prev is None or not (0 < cur.value < 100 and 0 < prev.value < 100):
        return []
    swing = cur.value - prev.value
    if abs(swing) < float(ctx.cfg.get("tax_swing_pp", 2.0)):
        return []
    claim = (f"The effective tax rate {'rose' if swing > 0 else 'fell'} {abs(swing):.1f} points to {cur.display()} "
             f"{when(cur.period)} from {prev.display()} {when(prev.period)} {marks(cur, prev)}.")
    f = Finding(claim, "tax rate", ctx.section("results"),
                [computed(f"{abs(swing):.1f} points", swing, "pp", "effective_tax_rate_change", [cur, prev]), fig(cur), fig(prev)])
    attach_driver(ctx, f, ctx.phrases("effective_tax_rate") + ["tax rate"], cur.period,
                  f"Why did the effective tax rate change {when(cur.period)}?")
    return [f]


def _segment_mix(ctx: _Ctx) -> list[Finding]:
    """Segment mix from a segment breakdown of revenue (facts `segment_revenue:<member>`): the largest segment's
    share and the largest shift in share."""
    segs = sorted({f.name for f in ctx.facts if f.name.startswith("segment_revenue:")})
    rows = []
    for s in segs:
        cur, prev = ctx.pair(s)
        if cur is not None and prev is not None:
            rows.append((s, cur, prev))
    if len(rows) < 2 or len({period_key(c.period) for _, c, _ in rows}) != 1:
        return []
    tot_c, tot_p = sum(c.value for _, c, _ in rows), sum(p.value for _, _, p in rows)
    if tot_c <= 0 or tot_p <= 0 or any(c.value < 0 for _, c, _ in rows):
        return []
    share = {s: (100 * c.value / tot_c, 100 * p.value / tot_p) for s, c, p in rows}
    big = max(rows, key=lambda r: share[r[0]][0])
    mover = max(rows, key=lambda r: abs(share[r[0]][0] - share[r[0]][1]))
    name = lambda r: r[1].title.split(": ", 1)[-1]  # noqa: E731 - "Revenue: Greater China" -> "Greater China"
    sc, sp = share[mover[0]]
    claim = (f"{name(big)} is the largest segment at {share[big[0]][0]:.1f}% of segment revenue {when(big[1].period)}; "
             f"{name(mover)}'s share {'rose' if sc > sp else 'fell'} {abs(sc - sp):.1f} points to {sc:.1f}% "
             f"{marks(*(r[1] for r in rows), *(r[2] for r in rows))}.")
    cur_all = [r[1] for r in rows]
    figs = [computed(f"{share[big[0]][0]:.1f}%", share[big[0]][0], "%", "segment_share", [big[1], *cur_all]),
            computed(f"{abs(sc - sp):.1f} points", sc - sp, "pp", "segment_share_change", [mover[1], mover[2]]),
            computed(f"{sc:.1f}%", sc, "%", "segment_share", [mover[1], *cur_all])]
    return [Finding(claim, "segment mix", ctx.section("results"), figs)]


# ---- liquidity and capital allocation --------------------------------------------------------------
def _cash_conversion(ctx: _Ctx) -> list[Finding]:
    ocf, _ = ctx.pair("operating_cash_flow")
    ni = ctx.at("net_income", ocf.period) if ocf else None
    if ocf is None or ni is None or ni.value <= 0:
        return []
    ratio = ocf.value / ni.value
    capex, fcf = ctx.at("capex", ocf.period), ctx.at("free_cash_flow", ocf.period)
    claim = (f"Operating cash flow of {ocf.display()} was {ratio:.2f}x net income of {ni.display()} {when(ocf.period)}")
    figs = [computed(f"{ratio:.2f}x", ratio, "x", "cash_conversion", [ocf, ni]), fig(ocf), fig(ni)]
    if capex is not None and fcf is not None:
        claim += f"; after capital expenditures of {capex.display()}, free cash flow was {fcf.display()}"
        figs += [fig(capex), fig(fcf)]
    f = Finding(f"{claim} {marks(ocf, ni, capex)}.", "cash conversion", ctx.section("liquidity"), figs)
    attach_driver(ctx, f, ctx.phrases("operating_cash_flow"), ocf.period,
                  f"What drove operating cash flow {when(ocf.period)}?")
    return [f]


def _net_debt(ctx: _Ctx) -> list[Finding]:
    debt, _ = ctx.pair("total_debt")
    cash = ctx.at("cash", debt.period) if debt else None
    if debt is None or cash is None:
        return []
    net = debt.value - cash.value
    shown = format_value(net, "USD", debt.scale)
    claim = f"Net debt was {shown} {when(debt.period, True)} (total debt {debt.display()} less cash {cash.display()})"
    figs = [computed(shown, net, "USD", "net_debt", [debt, cash]), fig(debt), fig(cash)]
    ebitda = ctx.at("ebitda", debt.period)
    if ebitda is not None and ebitda.value > 0:
        lev = net / ebitda.value
        claim += f", {lev:.1f}x EBITDA of {ebitda.display()}"
        figs += [computed(f"{lev:.1f}x", lev, "x", "net_debt_to_ebitda", [debt, cash, ebitda]), fig(ebitda)]
    return [Finding(f"{claim} {marks(debt, cash, ebitda)}.", "leverage", ctx.section("liquidity"), figs)]


def _liquidity(ctx: _Ctx) -> list[Finding]:
    cur, prev = ctx.pair("current_ratio")
    if cur is None:
        return []
    claim = f"The current ratio was {cur.value:.2f}x {when(cur.period, True)}"
    figs = [computed(f"{cur.value:.2f}x", cur.value, "x", "current_ratio", [cur])]
    if prev is not None:
        claim += f", against {prev.value:.2f}x {when(prev.period, True)}"
        figs.append(computed(f"{prev.value:.2f}x", prev.value, "x", "current_ratio", [prev]))
    wc = ctx.at("working_capital", cur.period)
    if wc is not None:
        claim += f"; working capital {wc.display()}"
        figs.append(fig(wc))
    return [Finding(f"{claim} {marks(cur, prev)}.", "liquidity", ctx.section("liquidity"), figs)]


def _coverage(ctx: _Ctx) -> list[Finding]:
    oi, _ = ctx.pair("operating_income")
    interest = ctx.at("interest_expense", oi.period) if oi else None
    if oi is None or interest is None or interest.value <= 0:
        return []
    cov = oi.value / interest.value
    claim = (f"Operating income was {cov:.1f}x interest expense of {interest.display()} {when(oi.period)} "
             f"{marks(oi, interest)}.")
    return [Finding(claim, "interest coverage", ctx.section("liquidity"),
                    [computed(f"{cov:.1f}x", cov, "x", "interest_coverage", [oi, interest]), fig(interest)])]


def _capital_returned(ctx: _Ctx) -> list[Finding]:
    div, _ = ctx.pair("dividends")
    bb = ctx.at("buybacks", div.period) if div else None
    if div is None:
        bb, _ = ctx.pair("buybacks")
    base = div or bb
    if base is None:
        return []
    parts = [f for f in (div, bb) if f is not None]
    total = sum(f.value for f in parts)
    shown = format_value(total, "USD", base.scale)
    names = {"dividends": "dividends", "buybacks": "share repurchases"}
    detail = " and ".join(f"{names[f.name]} {f.display()}" for f in parts)
    claim = f"The company returned {shown} to shareholders {when(base.period)} ({detail})"
    figs = [computed(shown, total, "USD", "capital_returned", parts), *[fig(f) for f in parts]]
    fcf = ctx.at("free_cash_flow", base.period)
    if fcf is not None and fcf.value > 0:
        share = 100 * total / fcf.value
        claim += f", {share:.0f}% of free cash flow"
        figs.append(computed(f"{share:.0f}%", share, "%", "capital_returned_to_fcf", [*parts, fcf]))
    return [Finding(f"{claim} {marks(*parts, fcf)}.", "capital returned", ctx.section("liquidity"), figs)]


__all__ = ["attach_driver", "computed", "fig", "finance_findings", "marks", "when"]

