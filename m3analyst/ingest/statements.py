"""Financial statements: recognise them by title and content, parse scale words and numbers.

Shared by the PDF and HTML loaders. A statement kind is *registered* with the cues that identify
it (a title pattern and content words that must appear), so adding e.g. "equity_statement" is one
entry, not another branch.

Values in a statement `Table.df` are the numbers as printed (floats; "(547)" -> -547.0, "—" -> 0.0);
multiply by `Table.scale` for units. Per-share rows (EPS, dividends per share) are printed in
plain currency units and are NOT multiplied by the scale: use `row_value()`, which knows that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from m3analyst.text import period_key


@dataclass(frozen=True)
class StatementKind:
    kind: str
    title: re.Pattern  # matched against a short heading line
    content: tuple[re.Pattern, ...]  # all must appear on the statement's page(s)


def _rx(s: str) -> re.Pattern:
    return re.compile(s, re.IGNORECASE)


STATEMENT_KINDS: dict[str, StatementKind] = {}


def register_statement(sk: StatementKind) -> None:
    STATEMENT_KINDS[sk.kind] = sk


_LEAD = r"^(?:the\s+)?(?:(?:consolidated|condensed|combined|interim|unaudited|audited)[\s,]+)*"

register_statement(
    StatementKind(
        "income_statement",
        _rx(_LEAD + r"(?:statements?\s+of\s+(?:consolidated\s+)?(?:income|operations|earnings)\b|income\s+statements?\b)"
            r"(?!.*comprehensive)"),
        (_rx(r"net\s+(?:income|earnings|loss|\(loss\))"), _rx(r"per\s+(?:common\s+)?share|earnings\s+per|basic")),
    )
)
register_statement(
    StatementKind(
        "balance_sheet",
        _rx(_LEAD + r"(?:balance\s+sheets?\b|statements?\s+of\s+(?:consolidated\s+)?financial\s+position)"),
        (_rx(r"total\s+assets"), _rx(r"total\s+(?:current\s+)?liabilities")),
    )
)
register_statement(
    StatementKind(
        "cash_flow",
        _rx(_LEAD + r"(?:statements?\s+of\s+(?:consolidated\s+)?cash\s+flows?|cash\s+flows?\s+statements?)"),
        (_rx(r"operating\s+activities|\boperations\b"), _rx(r"investing")),
    )
)

_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9}
_SCALE_RX = _rx(r"\b(?:in|\(|\$\s*in|dollars\s+in|amounts\s+in|except)?\s*(thousand|million|billion)s?\b")
_YEAR = re.compile(r"^(?:FY\s?)?((?:19|20)\d\d)$")
_NUMBER = re.compile(r"^(?P<open>\()?-?\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*%?(?P<close>\))?%?$")
_DASHES = {"—", "–", "-", "−", "— ", "$—", "$ —", "$-"}
_PER_SHARE = _rx(r"per\s+(?:common\s+|ordinary\s+)?share|\bEPS\b|per\s+diluted|per\s+basic")


_SPLIT_LAST_LETTER = re.compile(r"(?<=[A-Za-z]{2}) (?=[a-z](?:\W|$))")


def rejoin_split_words(s: str) -> str:
    """Undo pdfium's split of a word's last letter in display fonts ("Balance Shee t" -> "Balance Sheet")."""
    return _SPLIT_LAST_LETTER.sub("", s)


def statement_kind_of_title(line: str) -> str | None:
    """The registered statement kind a heading line names, if any (short lines only)."""
    s = rejoin_split_words(" ".join(line.split()))
    if not s or len(s) > 120 or re.search(r"\d{1,3}$", s) and not re.search(r"(19|20)\d\d$", s):
        return None
    for sk in STATEMENT_KINDS.values():
        if sk.title.search(s):
            return sk.kind
    return None


def content_matches(kind: str, text: str) -> bool:
    return all(p.search(text) for p in STATEMENT_KINDS[kind].content)


def scale_of(text: str) -> float:
    """Scale announced by words like "(in millions, except per share data)"; 1.0 when none."""
    m = _SCALE_RX.search(text)
    return _SCALES[m.group(1).lower()] if m else 1.0


def parse_number(token: str) -> float | None:
    """'5,363' -> 5363.0, '(547)' -> -547.0, '—' -> 0.0, '12.5%' -> 12.5; None if not a number."""
    t = token.strip().replace("\u2212", "-").replace("$", "").replace(" ", "")
    if t in _DASHES or t in ("", "—", "–", "-"):
        return 0.0 if token.strip() else None
    m = _NUMBER.match(t)
    if not m:
        return None
    if m.group("close") and not m.group("open"):
        return None  # "5)" closes a "(Note 5)" reference, not a number
    v = float(m.group(2).replace(",", "") + (m.group(3) or ""))
    negative = bool(m.group("open")) or t.startswith("-")
    return -v if negative else v


def is_value_token(token: str) -> bool:
    t = token.strip()
    return t in _DASHES or parse_number(t) is not None


def year_of(token: str) -> str | None:
    m = _YEAR.match(token.strip().rstrip(",").rstrip(")").lstrip("("))
    return m.group(1) if m else None


def is_per_share(label: str) -> bool:
    return bool(_PER_SHARE.search(label))


def row_value(table, label_pattern: str, period: str | int = 0) -> float | None:
    """Value of the first row whose label matches `label_pattern` (regex, case-insensitive), in units.

    `period` is a column label or position. Applies `table.scale`, except to per-share rows.
    """
    rx = _rx(label_pattern)
    df: pd.DataFrame = table.df
    col = period if isinstance(period, int) else list(df.columns).index(period)
    for i, label in enumerate(df.index):
        if rx.search(str(label)):
            v = df.iat[i, col]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            return float(v) * (1.0 if is_per_share(str(label)) else table.scale)
    return None


def unique_periods(labels: list[str]) -> list[str]:
    """Make period labels unique by suffixing repeats (' (2)', ' (3)')."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} ({seen[lab]})")
    return out


def warn_missing_statements(doc) -> None:
    """Add a warning naming the statements a 10-K/10-Q should carry but that were not found."""
    if doc.metadata.kind not in ("10-K", "10-Q"):
        return
    missing = [k for k in STATEMENT_KINDS if not doc.tables_of_kind(k)]
    if missing:
        doc.warnings.append(
            f"financial statement table(s) not found: {', '.join(missing)} "
            "(they may be incorporated by reference from an exhibit, or laid out unusually)"
        )


def table_span(doc, pages: list[int], labels: list[str]) -> tuple[int, int]:
    """[start, end) of a table's text in doc.text: from its first row label to its last, within `pages`.

    Falls back to the pages' bounds when a label cannot be found verbatim (spacing differs between extractors).
    """
    lo, hi = doc.pages[pages[0] - 1].start, doc.pages[pages[-1] - 1].end
    start = next((hits[0].start for lab in labels[:3] if (hits := doc.locate(lab, page=pages[0]))), lo)
    end = hi
    for lab in reversed(labels[-3:]):
        hits = [h for p in pages for h in doc.locate(lab, page=p) if h.start >= start]
        if hits:
            nl = doc.text.find("\n", hits[-1].end, hi)
            end = hits[-1].end if nl == -1 else nl
            break
    return start, end


def latest_period(table) -> str | None:
    """The most recent period column of a statement table (filings order columns either way; m3analyst.text's
    period order, where a quarter's column outranks the year-to-date one ending on the same day)."""
    return max(table.periods, key=period_key) if table.periods else None
