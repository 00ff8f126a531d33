"""HTML `<table>` -> DataFrame, and the financial statements among them.

EDGAR tables spread one printed number over several cells (`$`, `294,866`, `)`), put column
headers in merged cells (`colspan`) over two or three header rows, and write zero as `—`.
`table_frame` expands colspans into a grid, takes the rows before the first numeric row as the
header, keeps one DataFrame column per grid column that holds numbers (labelled by the header
cells above it, merged across header rows), parses "(1,234)" as -1234 and "—" as 0.

Statement kind: title line(s) just before the table (`statement_kind_of_title`) plus the
content cues of that kind, searched from Item 8 onwards (as for PDFs).
"""

from __future__ import annotations

import re

import pandas as pd

from m3analyst.ingest.model import Document, Table
from m3analyst.ingest.statements import (
    content_matches,
    parse_number,
    scale_of,
    statement_kind_of_title,
    table_span,
    unique_periods,
)

MAX_TITLE_LINES = 6
_YEAR = re.compile(r"\b(19|20)\d\d\b")
_SKIP_CELL = {"$", ")", "%", "(", "€", "£"}
_DASH_CELLS = {"—", "–", "-"}


def _cell_text(td) -> str:
    return " ".join(td.text_content().split())


MAX_COLSPAN = 1000  # the HTML standard clamps colspan to 1000; a larger one must not allocate millions of cells
MAX_CELLS = 500_000  # a table with more cells (after colspans) is skipped with a warning


def _span(td) -> int:
    raw = (td.get("colspan") or "1").strip()
    return min(max(int(raw), 1), MAX_COLSPAN) if re.fullmatch(r"[0-9]{1,9}", raw) else 1


def _grid(table) -> list[list[str]]:
    """Rows of cell texts with colspans expanded (the text sits in the span's first column)."""
    rows = []
    for tr in table.iter("tr"):
        row: list[str] = []
        for td in tr:
            if td.tag not in ("td", "th"):
                continue
            span = _span(td)
            row.append(_cell_text(td))
            row.extend([""] * (span - 1))
        rows.append(row)
    width = max((len(r) for r in rows), default=0)
    if width * len(rows) > MAX_CELLS:
        raise ValueError(f"table of {len(rows):,} rows x {width:,} columns is past {MAX_CELLS:,} cells")
    return [r + [""] * (width - len(r)) for r in rows]


def _header_spans(table) -> list[list[tuple[int, int, str]]]:
    """Per row: (first col, last col, text) of each non-empty cell (for header labelling)."""
    out = []
    for tr in table.iter("tr"):
        spans, col = [], 0
        for td in tr:
            if td.tag not in ("td", "th"):
                continue
            span = _span(td)
            t = _cell_text(td)
            if t:
                spans.append((col, col + span - 1, t))
            col += span
        out.append(spans)
    return out


def _is_number_cell(t: str) -> bool:
    return bool(t) and t not in _SKIP_CELL and parse_number(t.replace(" ", "")) is not None and not _YEAR.fullmatch(t)


def _group_value(row: list[str], cols: list[int]) -> float | None:
    for j in cols:
        t = row[j]
        if _is_number_cell(t) or t in ("—", "–", "-"):
            return parse_number(t.replace(" ", ""))
    return None


def _column_groups(num_cols: list[int], header_spans: list[list[tuple[int, int, str]]], data: list[list[str]]) -> list[list[int]]:
    """Merge grid columns that hold one printed column: same header cell above, or never both filled."""
    def key(j: int):
        for row in reversed(header_spans):
            for a, b, _ in row:
                if a > 0 and a <= j <= b:
                    return (a, b)
        return None

    groups: list[list[int]] = []
    for j in num_cols:
        if groups:
            prev = groups[-1]
            same_header = key(j) is not None and key(j) == key(prev[-1])
            disjoint = key(j) is None and j - prev[-1] <= 2 and not any(
                _is_number_cell(r[j]) and any(_is_number_cell(r[p]) for p in prev) for r in data
            )
            if same_header or disjoint:
                prev.append(j)
                continue
        groups.append([j])
    return groups


def table_frame(table) -> tuple[pd.DataFrame, list[str], str] | None:
    """(df rows x value columns, column labels, header text) or None when the table has no numbers."""
    grid = _grid(table)
    if len(grid) < 2:
        return None
    spans = _header_spans(table)

    def label_of(row: list[str]) -> str:
        return next((c for c in row if c and not _is_number_cell(c) and c not in _SKIP_CELL), "")

    data_rows = [i for i, r in enumerate(grid) if any(_is_number_cell(c) or c in _DASH_CELLS for c in r[1:]) and label_of(r)]
    if len(data_rows) < 2:
        return None
    first = data_rows[0]
    if not any(_is_number_cell(c) for i in data_rows for c in grid[i][1:]):
        return None
    num_cols = sorted({j for i in data_rows for j, c in enumerate(grid[i]) if j > 0 and _is_number_cell(c)})
    # a column whose only numbers sit in the label position is not a value column
    label_cols = {next((j for j, c in enumerate(grid[i]) if c), 0) for i in data_rows}
    num_cols = [j for j in num_cols if j not in label_cols]
    if not num_cols:
        return None
    groups = _column_groups(num_cols, spans[:first], [grid[i] for i in data_rows])
    headers = []
    for cols in groups:
        parts = [t for row in spans[:first] for (a, b, t) in row if a > 0 and any(a <= j <= b for j in cols)]
        headers.append(" ".join(dict.fromkeys(parts)).strip())
    labels = unique_periods([h or f"col{k + 1}" for k, h in enumerate(headers)])
    rows, index = [], []
    for i in range(first, len(grid)):
        r = grid[i]
        lab = label_of(r)
        vals = [_group_value(r, cols) for cols in groups]
        if all(v is None for v in vals):
            continue  # sub-heading row ("Current assets:")
        index.append(lab or "(unlabelled)")
        rows.append([float("nan") if v is None else v for v in vals])
    if not rows:
        return None
    header_text = " ".join(t for row in spans[:first] for (_, _, t) in row)
    return pd.DataFrame(rows, index=index, columns=labels), labels, header_text


def _period_label(label: str) -> str:
    """'Years ended September 28, 2024' -> 'September 28, 2024'; a bare year stays a year."""
    m = re.search(r"((?:January|February|March|April|May|June|July|August|September|October|November|December)\s+\d{1,2},?\s*)?((?:19|20)\d\d)", label)
    if not m:
        return label
    return re.sub(r",(?=\d)", ", ", (m.group(1) or "") + m.group(2))


def add_html_tables(doc: Document, tables: list[tuple[object, int, str]]) -> None:
    """Append every numeric table (with page, title, scale) and mark the three statements."""
    item8 = doc.section("item_8")
    item8_page = item8.page_start if item8 else 1
    for el, page, before in tables:
        try:
            parsed = table_frame(el)
        except Exception as e:  # noqa: BLE001 - one odd table must not sink the document
            doc.warnings.append(f"table on p.{page} not parsed ({type(e).__name__}: {str(e)[:120]})")
            continue
        if parsed is None:
            continue
        df, labels, header = parsed
        lines = [ln.strip() for ln in before.split("\n") if ln.strip()][-MAX_TITLE_LINES:]
        start, end = table_span(doc, [page], [str(i) for i in df.index])
        title = next((ln for ln in reversed(lines) if statement_kind_of_title(ln)), None)
        if title is None and lines:
            title = next((ln for ln in reversed(lines) if not re.search(r"\bin (?:millions|thousands|billions)\b", ln, re.I)), lines[-1])
        doc.tables.append(
            Table(
                id=f"t{len(doc.tables) + 1}",
                page=page,
                df=df,
                title=(title or "")[:200] or None,
                caption=header[:200] or None,
                scale=scale_of(" ".join(lines[-3:]) + " " + header),
                unit="USD" if "$" in el.text_content() else None,
                periods=[_period_label(c) for c in labels],
                start=start,
                end=end,
            )
        )
    _mark_statements(doc, item8_page)


_SEGMENT = re.compile(r"\bsegments?\b", re.IGNORECASE)


def _mark_statements(doc: Document, from_page: int) -> None:
    """The first table of each statement kind (from Item 8 on) gets its kind; segment tables get "segment"."""
    done: set[str] = set()
    ordered = [t for t in doc.tables if t.page >= from_page] + [t for t in doc.tables if t.page < from_page]
    for t in ordered:
        kind = statement_kind_of_title(t.title or "")
        if kind is None and _SEGMENT.search(t.title or "") and t.kind is None:
            t.kind = "segment"
            continue
        if kind is None or kind in done:
            continue
        text = " ".join(map(str, t.df.index))
        if content_matches(kind, text):
            t.kind = kind
            t.df.columns = t.periods = unique_periods(t.periods)
            done.add(kind)
