"""Financial-statement tables from PDF pages, with pdfplumber on those pages only.

1. `find_statement_pages(doc)`: text cues pick, for each registered statement kind, the page
   whose top lines carry the statement title and whose text carries its content words
   (income: net income + per share; balance sheet: total assets + total liabilities; cash flow:
   operating + investing activities). TOC and index pages lose because their lines end in page numbers.
2. `parse_statement_words(words)`: pdfplumber words -> lines (by `top`) -> label + trailing value
   tokens; value columns are clusters of the numbers' right edges, kept where a period year sits
   above them (numbers inside labels, "Authorized shares 500", are not a column); period labels are
   the header words over each column ("December 31, 2018", "Six Months Ended July 29, 2023").
   A statement continued on the next page ("(continued)") is parsed from both pages.

Result: `Table(kind=..., df=[rows x periods] floats as printed, periods, scale, unit="USD", bbox)`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from m3analyst.ingest.model import Document, Table
from m3analyst.ingest.statements import (
    STATEMENT_KINDS,
    content_matches,
    is_value_token,
    parse_number,
    rejoin_split_words,
    scale_of,
    statement_kind_of_title,
    table_span,
    unique_periods,
    year_of,
)

TITLE_LINES = 12  # a statement's title sits within the first lines of its page
LINE_TOL = 3.0  # points: words whose tops differ less belong to one line
COL_GAP = 18.0  # points: right edges further apart start a new value column
_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\b", re.IGNORECASE)


@dataclass
class _Line:
    top: float
    words: list[dict] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w["text"] for w in self.words)


def _title_kind(page_text: str) -> str | None:
    for line in page_text.split("\n")[:TITLE_LINES]:
        kind = statement_kind_of_title(line)
        if kind:
            return kind
    return None


def _numeric_lines(text: str) -> int:
    return sum(1 for ln in text.split("\n") if re.search(r"\d[\d,]*\)?\s*$", ln.strip()))


def find_statement_pages(doc: Document) -> dict[str, list[int]]:
    """kind -> [page, continuation pages...] for each statement found (1-based pages)."""
    item8 = doc.section("item_8")
    first = item8.page_start if item8 else 1
    found: dict[str, list[int]] = {}
    order = list(range(first, doc.n_pages + 1)) + list(range(1, first))
    for n in order:
        text = doc.page_text(n)
        kind = _title_kind(text)
        if kind is None or kind in found or _numeric_lines(text) < 8:
            continue
        if _toc_like(text) or not content_matches(kind, text):
            continue
        pages = [n]
        if n < doc.n_pages and _continues(doc.page_text(n + 1), kind):
            pages.append(n + 1)
        found[kind] = pages
    return found


def _toc_like(text: str) -> bool:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    refs = sum(1 for ln in lines if re.search(r"(statements?|sheets?|notes?)\b.*\s\d{1,3}$", ln, re.IGNORECASE))
    return refs >= 3


def _continues(next_text: str, kind: str) -> bool:
    head = "\n".join(next_text.split("\n")[:TITLE_LINES]).lower()
    return "continued" in head and _title_kind(next_text) == kind


def _lines(words: list[dict]) -> list[_Line]:
    lines: list[_Line] = []
    for w in sorted(words, key=lambda w: (round(w["top"]), w["x0"])):
        if lines and abs(lines[-1].top - w["top"]) <= LINE_TOL:
            lines[-1].words.append(w)
        else:
            lines.append(_Line(w["top"], [w]))
    for ln in lines:
        ln.words.sort(key=lambda w: w["x0"])
    return lines


def _split_values(line: _Line) -> tuple[list[dict], list[dict]]:
    """(label words, value words) where values are the trailing numeric/dash tokens ('$' dropped)."""
    words = line.words
    i = len(words)
    while i > 0 and (is_value_token(words[i - 1]["text"]) or words[i - 1]["text"] in ("$", "(", ")", "%")):
        i -= 1
    values = [w for w in words[i:] if w["text"] not in ("$", "(", ")", "%")]
    return words[:i], values


def _columns(value_rows: list[list[dict]]) -> list[float]:
    """Right-edge centres of the value columns (clusters of x1), left to right."""
    xs = sorted(w["x1"] for row in value_rows for w in row)
    clusters: list[list[float]] = []
    for x in xs:
        if clusters and x - clusters[-1][-1] <= COL_GAP:
            clusters[-1].append(x)
        else:
            clusters.append([x])
    need = max(2, int(0.15 * len(value_rows)))
    return [sum(c) / len(c) for c in clusters if len(c) >= need]


def _nearest(cols: list[float], x: float) -> int:
    return min(range(len(cols)), key=lambda i: abs(cols[i] - x))


def _bands(cols: list[float]) -> list[tuple[float, float]]:
    """x-range of each column's header: from just right of the previous column to a bit past its own edge."""
    tol = _align_tol(cols)
    out, left = [], -1e9
    for c in cols:
        out.append((max(left, c - 2.5 * tol), c + tol / 2))
        left = c + 2
    return out


def _periods(header: list[_Line], cols: list[float], period_line: _Line | None = None) -> list[str]:
    """Period label per column: the words of the period line over the column ("July 29, 2023", "2018"),
    prefixed by the group heading above when labels repeat ("Six Months Ended July 29, 2023")."""
    bands = _bands(cols)
    if period_line is None:
        period_line = next((ln for ln in reversed(header) if any(year_of(w["text"]) for w in ln.words)), None)
    per_col: list[list[str]] = [[] for _ in cols]
    tol = _align_tol(cols)
    for g in _word_groups(period_line.words if period_line else [], gap=8.0):
        i = _nearest(cols, g[-1]["x1"])
        if abs(cols[i] - g[-1]["x1"]) <= tol:
            per_col[i].append(_group_text(g))
    labels = []
    for i, parts in enumerate(per_col):
        text = " ".join(parts).strip(" ,")
        year = next((year_of(t) for t in text.split() if year_of(t)), None)
        if not year:
            labels.append(f"col{i + 1}")
        elif _MONTH.search(text):
            labels.append(re.sub(r"\s+,", ",", text))
        else:
            labels.append(year)
    above = [ln for ln in header if ln is not period_line and ln.top < (period_line.top if period_line else 0)]
    if len(set(labels)) < len(labels) and above:
        groups = _word_groups(above[-1].words, gap=8.0)
        for i, (lo, hi) in enumerate(bands):
            mid = (lo + hi) / 2 if lo > -1e8 else hi - 20
            g = next((g for g in groups if g[0]["x0"] - 30 <= mid <= g[-1]["x1"] + 30), None)
            if g:
                labels[i] = _group_text(g) + " " + labels[i]
    if all(not _MONTH.search(lab) for lab in labels):  # month line above a years line: "December 31," "2018"
        month_lines = [ln for ln in above if _MONTH.search(ln.text) and not any(year_of(w["text"]) for w in ln.words)]
        if month_lines:
            groups = _word_groups(month_lines[-1].words)
            if len(groups) == len(cols):
                labels = [f"{' '.join(w['text'] for w in g).rstrip(',')}, {lab}" if not lab.startswith("col") else lab
                          for g, lab in zip(groups, labels)]  # fmt: skip
    return unique_periods(labels)


def _group_text(words: list[dict]) -> str:
    """Words of a group as text; fragments closer than a point are one word ("M" "on" "t" "hs" -> "Months")."""
    out = ""
    for j, w in enumerate(words):
        out += w["text"] if j and w["x0"] - words[j - 1]["x1"] < 1.0 else (" " if j else "") + w["text"]
    return out


def _word_groups(words: list[dict], gap: float = 12.0) -> list[list[dict]]:
    groups: list[list[dict]] = []
    for w in words:
        if groups and w["x0"] - groups[-1][-1]["x1"] <= gap:
            groups[-1].append(w)
        else:
            groups.append([w])
    return groups


def _is_year_row(vals: list[dict]) -> bool:
    return bool(vals) and all(year_of(w["text"]) for w in vals)


def _align_tol(cols: list[float]) -> float:
    """How far (points) a header word may sit from its column's right edge: centred headers drift."""
    spacing = min((b - a for a, b in zip(cols, cols[1:])), default=120.0)
    return max(40.0, 0.45 * spacing)


def _period_row(lines: list[_Line], split, cols: list[float]) -> tuple[int | None, list[float]]:
    """(index of the header line holding the period years, right edges of its years aligned with value columns).

    The years must sit over the value columns: "2022 2021 2020" wins over a prose line
    "Fiscal years ended December 31, 2022, December 25, 2021 and ..." whose years sit at the left.
    """
    best, best_years = None, []
    tol = _align_tol(cols)
    for i, (lab, vals) in enumerate(split[:25]):
        if lab and vals and not _is_year_row(vals) and best is not None:
            break  # first real value row: the header is over
        years = [w["x1"] for w in lines[i].words if year_of(w["text"])]
        aligned = [x for x in years if not cols or min(abs(c - x) for c in cols) <= tol]
        if aligned and len(aligned) >= len(best_years):
            best, best_years = i, aligned
    return best, best_years


def _attach(vals: list[dict], cols: list[float]) -> tuple[list[dict], list[dict]]:
    """(values close to a column, stray tokens that belong to the label, e.g. '$40 and $42')."""
    spacing = min((b - a for a, b in zip(cols, cols[1:])), default=120.0)
    left_edge = cols[0] - max(spacing * 0.6, COL_GAP * 1.5)
    keep, stray = [], []
    for w in vals:
        (keep if w["x1"] >= left_edge else stray).append(w)
    return keep, stray


def parse_statement_words(words: list[dict]) -> tuple[pd.DataFrame, list[str], str, tuple[float, float, float, float] | None]:
    """pdfplumber words of one page -> (df rows x periods, periods, header text, bbox of the table)."""
    lines = _lines(words)
    split = [_split_values(ln) for ln in lines]
    cols = _columns([v for lab, v in split if v and lab and not _is_year_row(v)])
    head_i, years = _period_row(lines, split, cols)
    body_from = 0 if head_i is None else head_i + 1
    if head_i is not None:  # the years line says which clusters are period columns
        if len(years) > len(cols) or not cols:
            cols = years
        elif len(years) < len(cols):
            # keep the cluster under each year; others are numbers inside labels ("Authorized shares 500")
            cols = sorted({min(cols, key=lambda c: abs(c - y)) for y in years})
    if not cols:
        return pd.DataFrame(), [], "", None
    header = lines[: body_from or next((i for i, (lab, v) in enumerate(split) if v and lab), 0)]
    periods = _periods(header, cols, lines[head_i] if head_i is not None else None)
    rows, labels, pending = [], [], ""
    body = lines[body_from:]
    for lab, vals in split[body_from:]:
        vals, stray = _attach(vals, cols) if vals else ([], [])
        text = " ".join(w["text"] for w in lab + stray).strip()
        if not vals:
            pending = f"{pending} {text}".strip() if pending and text[:1].islower() else text
            continue
        if not text or text[:1].islower():
            text = f"{pending} {text}".strip()
        pending = ""
        row = [float("nan")] * len(cols)
        for w in vals:
            v = parse_number(w["text"])
            if v is not None:
                row[_nearest(cols, w["x1"])] = v
        rows.append(row)
        labels.append(text or "(unlabelled)")
    df = pd.DataFrame(rows, index=labels, columns=periods)
    allw = [w for ln in (body or lines) for w in ln.words]
    bbox = (min(w["x0"] for w in allw), min(w["top"] for w in allw), max(w["x1"] for w in allw), max(w["bottom"] for w in allw))
    return df, periods, " ".join(ln.text for ln in header), bbox


def add_statement_tables(doc: Document, path: Path, data: bytes) -> None:
    """Append the income statement, balance sheet and cash-flow tables found in `doc` (PDF only)."""
    pages = find_statement_pages(doc)
    if not pages:
        return
    import pdfplumber

    wanted = sorted({n for numbers in pages.values() for n in numbers})
    try:
        pdf = pdfplumber.open(io.BytesIO(data), pages=wanted)  # only these pages are parsed
    except Exception as e:  # noqa: BLE001 - pdfminer raises many types; text is already loaded
        doc.warnings.append(f"tables skipped: pdfplumber cannot open the file ({type(e).__name__})")
        return
    with pdf:
        for kind, numbers in pages.items():
            try:
                _add_one(doc, {n: pdf.pages[i] for i, n in enumerate(wanted)}, kind, numbers)
            except Exception as e:  # noqa: BLE001 - one bad page must not sink the document
                doc.warnings.append(f"{kind} on p.{numbers[0]}: table not parsed ({type(e).__name__}: {e})")


def _add_one(doc: Document, plumber_pages: dict, kind: str, numbers: list[int]) -> None:
    frames, periods, header, bbox = [], None, "", None
    for n in numbers:
        words = plumber_pages[n].extract_words(keep_blank_chars=False, x_tolerance=1.5)
        df, per, head, box = parse_statement_words(words)
        if df.empty:
            continue
        if periods is None:
            periods, header, bbox = per, head, box
        elif len(per) == len(periods):
            df.columns = periods
        else:
            continue
        frames.append(df)
    if not frames:
        doc.warnings.append(f"{kind} found on p.{numbers[0]} but no numeric columns parsed")
        return
    df = pd.concat(frames)
    page_text = doc.page_text(numbers[0])
    title = next((rejoin_split_words(ln.strip()) for ln in page_text.split("\n")[:TITLE_LINES] if statement_kind_of_title(ln) == kind), None)
    start, end = table_span(doc, numbers, [str(i) for i in df.index])
    doc.tables.append(
        Table(
            id=f"t{len(doc.tables) + 1}",
            page=numbers[0],
            df=df,
            title=title,
            caption=header[:200] or None,
            kind=kind,
            scale=scale_of(header + "\n" + page_text[:600]),
            unit="USD",
            periods=list(df.columns),
            bbox=bbox,
            start=start,
            end=end,
        )
    )


__all__ = ["STATEMENT_KINDS", "add_statement_tables", "find_statement_pages", "parse_statement_words"]
