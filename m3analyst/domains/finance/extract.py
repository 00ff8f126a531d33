"""Finance extractor: normalised line items from the primary statements (or inline XBRL), per period.

Sources, best first:
1. `doc.xbrl` (inline-XBRL facts of an EDGAR filing): concepts listed under each fact's `xbrl` key;
2. statements: `doc.tables` of kind income_statement / balance_sheet / cash_flow when the loader found
   them, plus statement pages parsed from the page text (`parse_page`): each line "label  v1  v2  v3"
   becomes a `Row`; the period header ("2018 2017 2016", "July 29, 2023 ...") names the columns and
   "(in millions)" gives the scale.

Each fact's label patterns come from the domain spec (domains/finance/spec.yaml). Values are stored in
units (USD, not millions); `Fact.scale` keeps the printed scale so the memo shows what the page shows.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field

import pandas as pd

from m3analyst.domains.facts import Fact, current_and_prior
from m3analyst.domains.plugins import register_extractor
from m3analyst.domains.spec import DomainSpec, FactSpec
from m3analyst.ingest.model import Document, Table
from m3analyst.text import YEAR as _YEAR
from m3analyst.text import period_key, period_span

STATEMENT_KINDS = ("income_statement", "balance_sheet", "cash_flow")

# Titles, matched against the page head with all whitespace removed (PDF text splits words: "Incom e").
_TITLES = {
    "income_statement": re.compile(
        r"(statements?of(consolidated)?(income|operations|earnings)(?!andcomprehensive)|incomestatements?)(?!.{0,3}comprehensive)"
    ),
    "balance_sheet": re.compile(r"balancesheets?|statements?offinancialposition|statementsofcondition"),
    "cash_flow": re.compile(r"statements?of(consolidated)?cashflows?|cashflowsstatements?"),
}
_BAD_HEAD = re.compile(r"comprehensiveincome|selectedfinancialdata|quarterlyfinancial|unauditedquarter|changesin(share|stock)holders")
_SCALE = [
    (re.compile(r"in\s+billions|\(billions\)", re.I), 1e9),
    (re.compile(r"in\s+millions|\(millions|\$\s*millions|millions\s+of\s+(u\.s\.\s+)?dollars|in\s+\$?\s*millions", re.I), 1e6),
    (re.compile(r"in\s+thousands|\(thousands\)|\$\s*thousands|thousands\s+of\s+(u\.s\.\s+)?dollars", re.I), 1e3),
]
_DATE = re.compile(
    r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\s+\d{1,2},?\s+(19[89]\d|20[0-4]\d)\b"
)
_NUM = re.compile(r"^(\((\d{1,3}(,\d{3})+|\d+)(\.\d+)?\)|-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?)$")
_DASHES = {"-", "—", "–", "─"}


@dataclass
class Row:
    label: str  # normalised: lower case, single spaces, no footnote marks
    values: list[float | None]  # one per period column, as printed (not scaled)
    page: int
    text: str  # the source line(s) as printed
    decimals: bool = False  # any value printed with decimals (per-share rows)


@dataclass
class Statement:
    kind: str | None
    page: int
    periods: list[str]
    scale: float
    rows: list[Row] = field(default_factory=list)
    score: float = 0.0
    source: str = "text"  # "text" (page parse) or "table" (ingest Table)


# ---- page text -> statement ----------------------------------------------------------------------
def _parse_value(tok: str) -> float | None:
    neg = tok.startswith("(") and tok.endswith(")") or tok.startswith("-")
    return (-1 if neg else 1) * float(tok.strip("()$-").replace(",", ""))


def split_row(line: str) -> tuple[str, list[float | None], bool] | None:
    """'Net sales $ 32,765 $ 31,657 $ 30,109' -> ('Net sales', [32765, 31657, 30109], False).

    Trailing numbers, '(1,577)' negatives and dashes (as None) are values; '$' is skipped; a number
    followed by '%' is a percent column and is dropped. None when the line has no values.
    """
    line = re.sub(r"\(\s*([\d,.]+)\s*\)", r"(\1)", line)
    toks = line.replace("$", " $ ").replace("%", " % ").split()
    values: list[float | None] = []
    decimals, pct, i = False, False, len(toks)
    while i > 0:
        t = toks[i - 1]
        if t == "$":
            pass
        elif t == "%":
            pct = True
        elif t in _DASHES:
            values.append(None)
        elif _NUM.match(t):
            if not pct:
                values.append(_parse_value(t))
                decimals |= "." in t
            pct = False
        else:
            break
        i -= 1
    if not values:
        return None
    label = " ".join(toks[:i])
    return label, values[::-1], decimals


def norm_label(label: str) -> str:
    s = label.lower().replace("’", "'").replace("\u2011", "-").replace("\ufffe", "-")
    s = re.sub(r"\(\d\)|\(notes? \d[^)]*\)|\(see notes?[^)]*\)|\[\d\]", " ", s)
    s = re.sub(r"\s+", " ", s).strip(" :.,$")
    return s


def _scale_of(head: str) -> float:
    for rx, scale in _SCALE:
        if rx.search(head):
            return scale
    return 1.0


def _periods(lines: list[str]) -> tuple[list[str], int]:
    """Column labels from the header line, and the index of the line after it."""
    for i, line in enumerate(lines[:25]):
        years = _YEAR.findall(line)
        if len(years) < 2 and not (len(years) == 1 and _DATE.search(line)):
            continue
        rest = _DATE.sub(" ", line)
        rest = _YEAR.sub(" ", rest)
        if re.search(r"\d", re.sub(r"\(\d\)", "", rest)):  # other numbers: a data row, not a header
            continue
        dates = [m.group(0) for m in _DATE.finditer(line)]
        labels = dates if len(dates) == len(years) else years
        block = " ".join(lines[max(0, i - 3) : i + 1]).lower()
        labels = _qualify(labels, block)
        return labels, i + 1
    return [], 0


def _qualify(labels: list[str], block: str) -> list[str]:
    """Prefix quarter / year-to-date columns in 10-Q headers ('Three Months Ended ... Six Months Ended')."""
    spans = re.findall(r"(three|six|nine|twelve) months", block)
    if len(spans) >= 2 and len(labels) % len(spans) == 0:
        per = len(labels) // len(spans)
        return [f"{spans[j // per]} months to {lab}" for j, lab in enumerate(labels)]
    if len(spans) == 1:
        return [f"{spans[0]} months to {lab}" for lab in labels]
    return labels


_CONNECT = re.compile(r"(\b(of|to|and|for|in|from|the|by|on|with|at|net|less)|,)$", re.I)


def parse_page(doc: Document, number: int) -> Statement | None:
    """Parse one page's text as a financial statement (None when it has no period header)."""
    text = doc.page_text(number)
    lines = [ln.strip() for ln in text.split("\n")]
    periods, first = _periods(lines)
    if not periods:
        return None
    st = Statement(None, number, periods, _scale_of(" ".join(lines[:first + 2])))
    pending = ""  # a label line waiting for its numbers (wrapped rows)
    for line in lines[first:]:
        parsed = split_row(line)
        if parsed is None:
            pending = line if len(line) < 160 else ""
            continue
        label, values, decimals = parsed
        if pending and (not label or label[:1].islower() or _CONNECT.search(pending)):
            label = f"{pending} {label}".strip()
            line = f"{pending}\n{line}"
        pending = ""
        if all(v is not None and v.is_integer() and 1980 <= v <= 2049 for v in values):
            continue  # a (second) period header line, not a data row
        if label and len(values) > len(periods) and re.search(r"\b(and|of)$", label, re.I):
            values = values[len(values) - len(periods):]  # "net of allowances of $95 and $103 5,020 4,911"
        if label and len(values) == len(periods):
            st.rows.append(Row(norm_label(label), values, number, line, decimals))
    return st if st.rows else None


def _classify(doc: Document, st: Statement, spec: DomainSpec) -> None:
    """Set st.kind and st.score: title match + how many of the kind's line items the page has."""
    head = re.sub(r"\s+", "", doc.page_text(st.page)[:500]).lower()
    loader_kinds = {t.kind for t in doc.tables if t.page == st.page}  # the loader's statement detection agrees
    best = (None, 0.0)
    for kind in STATEMENT_KINDS:
        facts = [f for f in spec.facts if getattr(f, "statement", None) == kind]
        found = sum(1 for f in facts if _match_rows(st.rows, f))
        score = found + (4 if _TITLES[kind].search(head) else 0) - (5 if _BAD_HEAD.search(head) else 0)
        score += 5 if kind in loader_kinds else 0
        score -= 0.5 * max(0, len(st.periods) - 4)  # five-year summaries are not the statements
        if score > best[1]:
            best = (kind, score)
    st.kind, st.score = best


# ---- ingest tables -> statement ----------------------------------------------------------------
def statement_from_table(t: Table) -> Statement | None:
    """Rows of a loader Table (first text cell = label, numeric cells = values)."""
    df: pd.DataFrame = t.df
    if df is None or df.empty:
        return None
    rows = []
    for _, r in df.iterrows():
        cells = [str(c) for c in r.tolist() if c is not None and str(c).strip() not in ("", "nan", "None")]
        if not cells:
            continue
        parsed = split_row(" ".join(cells))
        if parsed and parsed[0]:
            label, values, dec = parsed
            if not t.periods or len(values) == len(t.periods):
                rows.append(Row(norm_label(label), values, t.page, " ".join(cells), dec))
    periods = list(t.periods) or [str(c) for c in df.columns[1:]]
    # Score just above the acceptance threshold: a page parse of the same statement (verified against
    # the filings) wins when both exist; tables fill in where the page text cannot be parsed.
    return Statement(t.kind, t.page, periods, t.scale or 1.0, rows, 3.5, "table") if rows else None


# ---- matching --------------------------------------------------------------------------------
def _match_rows(rows: list[Row], fs: FactSpec) -> list[Row]:
    per_share = bool(getattr(fs, "per_share", False))
    for pats in (fs.prefer, fs.patterns):
        hits = [r for r in rows if any(re.search(p, r.label) for p in pats)]
        if per_share:
            hits = [r for r in hits if r.decimals and all(v is None or abs(v) < 1000 for v in r.values)]
        else:
            hits = [r for r in hits if not (r.decimals and all(v is None or abs(v) < 100 for v in r.values))]
        if hits:
            return hits
    return []


_STATEMENTS: list[tuple[Document, DomainSpec, list[Statement]]] = []  # the last few documents' statements


def statements(doc: Document, spec: DomainSpec) -> list[Statement]:
    """Every candidate statement (tables + parsed pages), best first within each kind. Remembered for the last few
    (document, spec) objects: the extractor and `ask`'s line look-ups read the same statements (documents are
    not changed after ingest)."""
    for d, sp, found in _STATEMENTS:
        if d is doc and sp is spec:
            return found
    found = _parse_statements(doc, spec)
    _STATEMENTS.insert(0, (doc, spec, found))
    del _STATEMENTS[4:]
    return found


def _parse_statements(doc: Document, spec: DomainSpec) -> list[Statement]:
    out = [s for s in (statement_from_table(t) for t in doc.tables if t.kind in STATEMENT_KINDS) if s]
    for p in doc.pages:
        st = parse_page(doc, p.number)
        if st is not None:
            _classify(doc, st, spec)
            if st.kind:
                out.append(st)
    return sorted(out, key=lambda s: -s.score)


def _facts_from_statement(st: Statement, fs: FactSpec) -> list[Fact]:
    hits = _match_rows(st.rows, fs)
    if not hits:
        return []
    scale = 1.0 if getattr(fs, "per_share", False) else st.scale
    absolute = bool(getattr(fs, "absolute", False))
    chosen = hits if getattr(fs, "sum", False) else hits[:1]
    out = []
    for j, period in enumerate(st.periods):
        vals = [r.values[j] for r in chosen if r.values[j] is not None]
        if not vals:
            continue
        v = sum(abs(x) if absolute else x for x in vals) * scale
        src = " | ".join(r.text.replace("\n", " ") for r in chosen)
        out.append(Fact(fs.name, v, fs.unit, scale, period, st.page, src, fs.title, derived=len(chosen) > 1,
                        extra={"statement": st.kind, "source": st.source}))
    return out


def facts_from_statements(doc: Document, spec: DomainSpec) -> list[Fact]:
    sts = statements(doc, spec)
    out: list[Fact] = []
    for fs in spec.facts:
        kind = getattr(fs, "statement", None)
        for st in _near_best(sts, kind):
            got = _facts_from_statement(st, fs)
            if got:
                out.extend(got)
                break
    return out


def _near_best(sts: list[Statement], kind: str | None) -> list[Statement]:
    """The best statement of `kind` and its continuation pages (same period columns, within 2 pages).

    Facts are never taken from notes or MD&A tables far from the primary statement.
    """
    of_kind = [s for s in sts if s.kind == kind and s.score >= 3]
    if not of_kind:
        return []
    best = of_kind[0]
    return [best] + [s for s in of_kind[1:] if abs(s.page - best.page) <= 2 and s.periods == best.periods]


# ---- inline XBRL -------------------------------------------------------------------------------
def facts_from_xbrl(doc: Document, spec: DomainSpec) -> list[Fact]:
    """Facts from `doc.xbrl` (no dimensions; annual durations preferred), one per period end."""
    x = doc.xbrl
    if x is None or x.empty or "concept" not in x:
        return []
    x = x.copy()
    if "numeric" in x:
        x = x[x["numeric"].astype(bool)]
    x["concept_l"] = x["concept"].astype(str).str.lower()
    if "dimensions" in x:
        x = x[x["dimensions"].map(lambda d: not d)]
    out: list[Fact] = []
    for fs in spec.facts:
        concepts = [c.lower() for c in (getattr(fs, "xbrl", None) or [])]
        for c in concepts if not getattr(fs, "sum", False) else []:
            sel = x[x["concept_l"] == c]
            if sel.empty:
                continue
            out.extend(_xbrl_rows_to_facts(sel, fs))
            break
    return out


def _xbrl_rows_to_facts(sel: pd.DataFrame, fs: FactSpec) -> list[Fact]:
    sel = sel.copy()
    end = sel["period_end"].astype(str).where(sel["period_end"].notna(), "")
    if "instant" in sel:  # instants (balance sheet) have no period_end
        inst = sel["instant"].astype(str).where(sel["instant"].notna(), "")
        end = end.where(end.str.strip() != "", inst)
    sel["end"] = end.str.slice(0, 10)
    sel = sel[sel["end"].str.strip() != ""]
    if "period_start" in sel and sel["period_start"].notna().any():
        days = (pd.to_datetime(sel["period_end"], errors="coerce") - pd.to_datetime(sel["period_start"], errors="coerce")).dt.days
        sel["annual"] = days.between(350, 380)
        if sel["annual"].any():
            sel = sel[sel["annual"]]
    out = []
    for end_label, g in sel.groupby("end", sort=False):
        r = g.iloc[0]
        v = float(r["value"])
        if getattr(fs, "absolute", False):
            v = abs(v)
        page = int(r["page"]) if "page" in r and pd.notna(r["page"]) else None
        scale = 1.0 if getattr(fs, "per_share", False) else float(10 ** -int(r["decimals"])) if _intlike(r.get("decimals")) and int(r["decimals"]) < 0 else 1.0
        out.append(Fact(fs.name, v, fs.unit, scale, str(end_label)[:10], page, str(r.get("raw", r["value"])), fs.title,
                        extra={"source": "xbrl", "concept": r["concept"]}))
    return out


def _intlike(v) -> bool:
    try:
        int(v)
        return True
    except (TypeError, ValueError):
        return False


def segment_facts(doc: Document, spec: DomainSpec) -> list[Fact]:
    """Per-segment facts from XBRL (spec `segments`): one fact per (concept, axis member, annual period)."""
    seg = getattr(spec, "segments", None) or {}
    x = doc.xbrl
    if not seg or x is None or x.empty or "dimensions" not in x:
        return []
    x = x[x["dimensions"].astype(str).str.count("=") == 1]
    out: list[Fact] = []
    for item in seg.get("facts", []):
        concepts = {c.lower() for c in item.get("concepts", [])}
        for axis in seg.get("axes", []):
            sel = x[x["concept"].astype(str).str.lower().isin(concepts) & x["dimensions"].astype(str).str.startswith(axis + "=")]
            for member, g in sel.groupby(sel["dimensions"].astype(str).str.split("=").str[1]):
                fs = FactSpec(name=f"segment_{item['name']}:{member}", label=f"{item['label']}: {_humanize(member)}", unit="USD")
                out.extend(_xbrl_rows_to_facts(g.drop_duplicates(subset=["period_end"]), fs))
            if out:
                break  # the first axis that has members is the segmentation
    return out


def _humanize(member: str) -> str:
    """'aapl:WearablesHomeandAccessoriesMember' -> 'Wearables Homeand Accessories'."""
    name = member.split(":")[-1]
    name = re.sub(r"(Segment)?Member$", "", name)
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).strip()


# ---- derived facts -----------------------------------------------------------------------------
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _eval(expr: str, env: dict[str, float]) -> float | None:
    """Arithmetic over fact names (+ - * /, numbers); None when a name is missing or division by zero."""

    def ev(n: ast.AST) -> float:
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return float(n.value)
        if isinstance(n, ast.Name):
            return env[n.id]
        raise ValueError(f"unsupported expression {expr!r}")

    try:
        return ev(ast.parse(expr, mode="eval").body)
    except (KeyError, ZeroDivisionError):
        return None


def derived_facts(facts: list[Fact], spec: DomainSpec) -> list[Fact]:
    by_period: dict[str, dict[str, Fact]] = {}
    for f in facts:
        if isinstance(f.value, float) and f.period:
            by_period.setdefault(f.period, {}).setdefault(f.name, f)
    out = []
    for d in spec.derived:
        for period, fs in by_period.items():
            if d.name in fs:  # reported: a fallback derivation is not needed
                continue
            env = {k: f.value for k, f in fs.items()}
            if "prev_" in d.expr:
                env.update(_prior_env(by_period, period))
            v = _eval(d.expr, env)
            if v is None:
                continue
            used = [f for k, f in fs.items() if re.search(rf"\b{k}\b", d.expr)]
            used += [f for k, f in _prior_facts(by_period, period).items() if re.search(rf"\bprev_{k}\b", d.expr)]
            scale = used[0].scale if d.unit == "USD" and used else 1.0
            pages = sorted({f.page for f in used if f.page})
            fact = Fact(d.name, v, d.unit, scale, period, pages[0] if pages else None, d.expr, d.label, True, extra={"pages": pages})
            fs[d.name] = fact  # later derivations may use it (gross_margin after a derived gross_profit)
            out.append(fact)
    return out


def _prior_facts(by_period: dict[str, dict[str, Fact]], period: str) -> dict[str, Fact]:
    """Facts of the comparable prior period (same span, the latest before `period`)."""
    earlier = [p for p in by_period if period_span(p) == period_span(period) and period_key(p) < period_key(period)]
    return by_period[max(earlier, key=period_key)] if earlier else {}


def _prior_env(by_period: dict[str, dict[str, Fact]], period: str) -> dict[str, float]:
    return {f"prev_{k}": f.value for k, f in _prior_facts(by_period, period).items()}


def yoy_facts(facts: list[Fact], spec: DomainSpec) -> list[Fact]:
    """Change of the latest period vs the previous one, in %, for the spec's `yoy` facts."""
    out = []
    for name in spec.yoy:
        series = [f for f in facts if f.name == name and isinstance(f.value, float) and not f.extra.get("yoy")]
        cur, prev = current_and_prior(series)
        if cur is None or prev is None or not prev.value or period_key(cur.period)[0] == 0:
            continue
        v = 100.0 * (cur.value - prev.value) / abs(prev.value)
        out.append(Fact(f"{name}_yoy", v, "%", 1.0, f"{cur.period} vs {prev.period}", cur.page,
                        f"({cur.display()} - {prev.display()}) / {prev.display()}", f"{cur.title} YoY", True,
                        extra={"pages": sorted({cur.page, prev.page} - {None})}))
    return out


# ---- the extractor -----------------------------------------------------------------------------
@register_extractor("finance")
def extract_finance(doc: Document, spec: DomainSpec) -> list[Fact]:
    """Reported line items per period (XBRL first, statements fill the gaps), then derived and YoY facts."""
    xb = facts_from_xbrl(doc, spec)
    have = {f.name for f in xb}
    st = [f for f in facts_from_statements(doc, spec) if f.name not in have]
    facts = sorted(xb + st, key=lambda f: ([x.name for x in spec.facts].index(f.name), [-k for k in period_key(f.period)]))
    return facts + derived_facts(facts, spec) + yoy_facts(facts, spec) + segment_facts(doc, spec)


def latest(facts: list[Fact], name: str) -> Fact | None:
    """The fact `name` for the latest period (quarter columns before year-to-date ones)."""
    cands = [f for f in facts if f.name == name]
    return max(cands, key=lambda f: period_key(f.period), default=None)
