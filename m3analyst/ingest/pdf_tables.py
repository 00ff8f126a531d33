"""Financial-statement tables from PDF pages, with pdfplumber on those pages only.

1. `find_statement_pages(doc)`: text cues pick, for each registered statement kind, the page
   whose top lines carry the statement title and whose text carries its content words
   (income: net income + per share; balance sheet: total assets + total liabilities; cash flow:
   operating + investing activities). TOC and index pages lose because their lines end in page numbers.
2. `parse_statement_page(words)`: pdfplumber words -> lines (by `top`) -> label + trailing value
   tokens; value columns are clusters of the numbers' right edges; period labels come from
   the year tokens of the header lines above the first value row.

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
        if "table of contents" in text[:200].lower() and _toc_like(text):
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
    label = words[:i]
    # A label that ends in a year-like number ("Notes due 2026") keeps it only if other values follow.
    return label, values


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


def _periods(header: list[_Line], cols: list[float]) -> list[str]:
    """Period label per column: the year in the header band, prefixed by a month/date word group."""
    years: list[str | None] = [None] * len(cols)
    dates: list[list[str]] = [[] for _ in cols]
    for line in header:
        for w in line.words:
            y = year_of(w["text"])
            if y and abs(cols[_nearest(cols, w["x1"])] - w["x1"]) < 40:
                years[_nearest(cols, w["x1"])] = y
    for line in header:
        if _MONTH.search(line.text) and not any(year_of(w["text"]) for w in line.words):
            groups = _word_groups(line.words)
            if len(groups) == len(cols):
                for i, g in enumerate(groups):
                    dates[i] = [w["text"] for w in g]
    labels = []
    for i in range(len(cols)):
        y = years[i] or f"col{i + 1}"
        d = " ".join(dates[i]).rstrip(",")
        labels.append(f"{d}, {y}" if d and years[i] else y)
    return unique_periods(labels)


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


def _period_row(split: list[tuple[list[dict], list[dict]]]) -> int | None:
    """Index of the header line holding the period years (before any real value row)."""
    best, most = None, 0
    for i, (lab, vals) in enumerate(split[:25]):
        if lab and vals and not _is_year_row(vals) and best is not None:
            break  # first real value row: the header is over
        if _is_year_row(vals) and len(vals) >= most:
            best, most = i, len(vals)
    return best


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
    head_i = _period_row(split)
    body_from = 0 if head_i is None else head_i + 1
    cols = _columns([v for lab, v in split[body_from:] if v and lab])
    if head_i is not None:  # the years line fixes the columns when the data clusters disagree with it
        years = [w["x1"] for w in split[head_i][1]]
        if len(years) > len(cols):
            cols = years
    if not cols:
        return pd.DataFrame(), [], "", None
    header = lines[: body_from or next((i for i, (lab, v) in enumerate(split) if v and lab), 0)]
    periods = _periods(header, cols)
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
    p = doc.pages[numbers[0] - 1]
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
            start=p.start,
            end=doc.pages[numbers[-1] - 1].end,
        )
    )


__all__ = ["STATEMENT_KINDS", "add_statement_tables", "find_statement_pages", "parse_statement_words"]
