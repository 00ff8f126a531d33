"""Calendar dates and durations as contracts write them, and date arithmetic over them.

DATE finds "December 23, 2003", "23rd day of December, 2003", "12/23/2003" (parse_date -> datetime.date);
DURATION_TEXT "three (3) years", "36 months", "ninety days" (parse_duration -> (3, "year") ...); `add(date, n,
unit)` moves a date by whole years / months / days (the 29th-31st clamp to the month's last day). The legal
extractor reads dates with them and states when a fixed term ends; the scorers compare dates with `parse_date`.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | {
    m.lower(): i for i, m in enumerate(calendar.month_abbr) if m} | {"sept": 9}
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
# an ordinal suffix, also as text extraction splits it ("19t h day of")
_ORD = r"(?:st|nd|rd|th|s\s?t|n\s?d|r\s?d|t\s?h)?"
# a calendar date as contracts write it: "December 23, 2003", "23rd day of December, 2003", "12/23/2003"
DATE = re.compile(
    rf"\b(?P<m1>{_MONTH})\s+(?P<d1>\d{{1,2}}){_ORD}\s*,?\s+(?P<y1>\d{{4}})"
    rf"|\b(?P<d2>\d{{1,2}}){_ORD}\s+(?:day\s+of\s+|of\s+)?(?P<m2>{_MONTH}),?\s+(?P<y2>\d{{4}})"
    r"|\b(?P<m3>\d{1,2})/(?P<d3>\d{1,2})/(?P<y3>\d{2,4})\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30, "forty": 40, "forty-five": 45, "sixty": 60,
                                                       "ninety": 90, "hundred": 100}
_NUMBER_WORD = "|".join(sorted((w for w in _NUMBER_WORDS if w != "zero"), key=len, reverse=True))
# a length of time: "three (3) years", "(5) years", "36 months", "ninety calendar days"
DURATION_TEXT = (rf"(?:(?:{_NUMBER_WORD})\s+(?:\(\d+\)\s+)?|\(\d+\)\s+|\d+\s+)(?:calendar\s+)?(?:years?|months?|days?)")
_DURATION = re.compile(rf"\b(?:(?P<word>{_NUMBER_WORD})\s+)?(?:\((?P<d1>\d+)\)\s+|(?P<d2>\d+)\s+)?(?:calendar\s+)?"
                       r"(?P<unit>year|month|day)s?\b", re.I)


def parse_date(text: str | None) -> _dt.date | None:
    """The first calendar date written in `text` that names a real day (a DATE, or an ISO date "2003-12-23"), or None.
    Two-digit years below 50 are 20xx, the others 19xx."""
    text = text or ""
    iso = _iso_date(text)
    for m in DATE.finditer(text):
        if iso is not None and iso[0] < m.start():
            return iso[1]
        g = m.groupdict()
        if g["y1"]:
            y, mo, d = int(g["y1"]), _MONTHS.get(g["m1"].rstrip(".").lower()), int(g["d1"])
        elif g["y2"]:
            y, mo, d = int(g["y2"]), _MONTHS.get(g["m2"].rstrip(".").lower()), int(g["d2"])
        else:
            y, mo, d = int(g["y3"]), int(g["m3"]), int(g["d3"])
            if mo > 12 >= d:  # day first: "18/9/2008"
                mo, d = d, mo
            if y < 100:  # two-digit years: "7/7/98" is 1998, "2/28/13" 2013
                y += 1900 if y >= 50 else 2000
        date = _make(y, mo, d) if mo else None
        if date is not None:
            return date
    return iso[1] if iso else None


_ISO_DATE = re.compile(r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?!\d)")


def _iso_date(text: str) -> tuple[int, _dt.date] | None:
    """(offset, date) of the first ISO date in `text` that names a real day."""
    for m in _ISO_DATE.finditer(text):
        if (date := _make(int(m["y"]), int(m["m"]), int(m["d"]))) is not None:
            return m.start(), date
    return None


def parse_duration(text: str) -> tuple[int, str] | None:
    """The first duration in `text` as (count, "year" | "month" | "day"): "three (3) years" -> (3, "year")."""
    for m in _DURATION.finditer(text):
        digits = m.group("d1") or m.group("d2")
        n = int(digits) if digits else _NUMBER_WORDS.get((m.group("word") or "").lower())
        if n:
            return n, m.group("unit").lower()
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
