"""Calendar dates and durations as contracts write them, and date arithmetic over them.

"December 23, 2003", "23rd day of December, 2003", "12/23/2003" -> datetime.date; "three (3) years",
"36 months", "ninety days" -> (3, "year") ... ; `add(date, n, unit)` moves a date by whole years / months /
days (the 29th-31st clamp to the month's last day). Used by the legal extractor to state when a fixed term ends.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | {
    m.lower(): i for i, m in enumerate(calendar.month_abbr) if m} | {"sept": 9}
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30, "forty": 40, "forty-five": 45, "sixty": 60,
                                                       "ninety": 90, "hundred": 100}
_MDY = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\s*,?\s+(\d{4})\b")
_DMY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?([A-Za-z]{3,9})\.?,?\s+(\d{4})\b", re.I)
_NUMERIC = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2,4})\b")
_DURATION = re.compile(r"\b(?:([a-z]+(?:-[a-z]+)?)\s+)?(?:\((\d+)\)\s+|(\d+)\s+)?(?:calendar\s+)?(year|month|day)s?\b", re.I)


def parse_date(text: str) -> _dt.date | None:
    """The first calendar date written in `text` (month-name forms first, then m/d/yyyy), or None."""
    found = []
    for m in _MDY.finditer(text):
        if m.group(1).lower() in _MONTHS:
            found.append((m.start(), _make(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))))
            break
    for m in _DMY.finditer(text):
        if m.group(2).lower() in _MONTHS:
            found.append((m.start(), _make(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))))
            break
    m = _NUMERIC.search(text)
    if m:
        year = int(m.group(3))
        found.append((m.start(), _make(year + 2000 if year < 100 else year, int(m.group(1)), int(m.group(2)))))
    found = [f for f in found if f[1] is not None]
    return min(found)[1] if found else None


def parse_duration(text: str) -> tuple[int, str] | None:
    """The first duration in `text` as (count, "year" | "month" | "day"): "three (3) years" -> (3, "year")."""
    for m in _DURATION.finditer(text):
        digits = m.group(2) or m.group(3)
        word = (m.group(1) or "").lower()
        n = int(digits) if digits else _NUMBER_WORDS.get(word)
        if n:
            return n, m.group(4).lower()
    return None


def add(date: _dt.date, n: int, unit: str) -> _dt.date:
    """`date` moved forward by n years / months / days."""
    if unit == "day":
        return date + _dt.timedelta(days=n)
    months = n * 12 if unit == "year" else n
    y, m = divmod(date.month - 1 + months, 12)
    year, month = date.year + y, m + 1
    return _dt.date(year, month, min(date.day, calendar.monthrange(year, month)[1]))


def written(date: _dt.date) -> str:
    """'December 23, 2006'."""
    return f"{calendar.month_name[date.month]} {date.day}, {date.year}"


def _make(year: int, month: int, day: int) -> _dt.date | None:
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None
