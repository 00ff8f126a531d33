"""Reading values out of free text, and the match rules the scorers use (evals/README.md, "decisions").

Numbers: `parse_quantities("($1.2) billion")` -> [Quantity(value=-1.2, scale=1e9, ...)]; parentheses
mean negative; `$ € £` and thousands separators are dropped; scale words (thousand/million/billion/
trillion, k/m/mm/bn/b attached to the number) give `scale`; `%` sets `percent`.
`number_matches(q, gold_value, gold_scale, ...)` applies the comparison rules documented in the README.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from m3analyst.text import parse_date  # noqa: F401 - the one date parser, re-exported for the scorers

# ---------------------------------------------------------------------------------------------
# numbers

_SCALE_WORDS = {
    "thousand": 1e3, "thousands": 1e3, "k": 1e3,
    "million": 1e6, "millions": 1e6, "mm": 1e6, "mn": 1e6, "m": 1e6,
    "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9,
    "trillion": 1e12, "trillions": 1e12, "tn": 1e12,
}
_MINUS = "-\u2212\u2013"
_NUMBER_RE = re.compile(
    r"(?<![\w.,])(?<!\w[-\u2212\u2013])"  # not inside a word or number (FY2018, Q2, 1.2.3, COVID-19)
    r"(?P<cur0>US\$|[$€£])?"
    rf"(?P<open>\()?\s*(?P<s1>[{_MINUS}])?\s*(?P<cur>US\$|[$€£]|USD\s|EUR\s)?\s*(?P<s2>[{_MINUS}])?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:(?P<attached>bn|mm|mn|tn|[kmbKMB])(?![\w]))?"
    r"\s*(?P<close>\))?"
    r"\s*(?P<pct>%|percent\b|per\s+cent\b|pct\b)?"
    r"(?:\s*(?P<word>thousands?|millions?|billions?|trillions?|bn|mm|mn)\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    """A number read from text. `value` is as printed (sign applied); absolute = value * (scale or 1)."""

    value: float
    scale: float | None = None  # from a scale word; None when none was written
    percent: bool = False
    currency: str | None = None
    decimals: int = 0  # digits after the decimal point as printed
    text: str = ""

    @property
    def absolute(self) -> float:
        return self.value * (self.scale or 1.0)

    @property
    def year_like(self) -> bool:
        """A bare integer 1900..2100: most likely a year, not an amount."""
        return (
            self.scale is None and not self.percent and self.currency is None and self.decimals == 0
            and float(self.value).is_integer() and 1900 <= self.value <= 2100 and "," not in self.text
        )


def parse_quantities(text: str) -> list[Quantity]:
    """All numbers in `text`, in order of appearance."""
    out = []
    for m in _NUMBER_RE.finditer(text or ""):
        num = m["num"].replace(",", "")
        value = float(num)
        negative = bool(m["s1"] or m["s2"]) or bool(m["open"] and m["close"])
        decimals = len(num.split(".", 1)[1]) if "." in num else 0
        currency = (m["cur0"] or m["cur"] or "").strip() or None
        attached = m["attached"] or ""
        if len(attached) == 1 and not (currency or decimals):
            attached = ""  # 'Item 1B', '10m' (metres?): a lone letter counts only after $ or with decimals
        word = (attached or m["word"] or "").lower()
        out.append(
            Quantity(
                value=-value if negative else value,
                scale=_SCALE_WORDS.get(word),
                percent=bool(m["pct"]),
                currency=currency,
                decimals=decimals,
                text=m.group(0).strip(),
            )
        )
    return out


def parse_number(text: str) -> Quantity | None:
    """The first number in `text` that is not year-like (falls back to the first number at all)."""
    qs = parse_quantities(text)
    if not qs:
        return None
    return next((q for q in qs if not q.year_like), qs[0])


def close_enough(pred: float, gold: float, tolerance: float) -> bool:
    """|pred - gold| <= tolerance * |gold|; a gold of 0 needs |pred| < 1e-9."""
    if gold == 0:
        return abs(pred) < 1e-9
    return abs(pred - gold) <= tolerance * abs(gold) * (1 + 1e-12)


def _rounds_to(pred: Quantity, gold_abs: float) -> bool:
    """'$1.2 billion' for 1,234 million: gold rounded half-up at pred's scale and decimals equals pred."""
    if pred.scale is None:
        return False
    q = Decimal(1).scaleb(-pred.decimals)
    rounded = Decimal(repr(gold_abs / pred.scale)).quantize(q, rounding=ROUND_HALF_UP)
    return float(rounded) == pred.value


def number_matches(
    pred: Quantity, gold_value: float, gold_scale: float = 1.0, tolerance: float = 0.01, gold_percent: bool = False
) -> bool:
    """Does `pred` state the gold number? Rules (README): compare absolute quantities; a bare number
    is also tried at the gold scale; percentages compare as printed, a bare fraction |x|<=1 is tried x100;
    a number with a scale word also matches when the gold rounds to it at that precision."""
    if gold_percent:
        if pred.percent:
            return close_enough(pred.value, gold_value, tolerance)
        if pred.scale is not None:
            return False
        cands = [pred.value] + ([pred.value * 100] if abs(pred.value) <= 1 else [])
        return any(close_enough(c, gold_value, tolerance) for c in cands)
    if pred.percent:
        return False
    gold_abs = gold_value * gold_scale
    if pred.scale is not None:
        return close_enough(pred.absolute, gold_abs, tolerance) or _rounds_to(pred, gold_abs)
    return close_enough(pred.value, gold_abs, tolerance) or close_enough(pred.value * gold_scale, gold_abs, tolerance)


def text_states_number(
    text: str, gold_value: float, gold_scale: float = 1.0, tolerance: float = 0.01, gold_percent: bool = False
) -> bool:
    """Whether the first non-year number in `text` matches the gold (see `number_matches`)."""
    q = parse_number(text)
    return q is not None and number_matches(q, gold_value, gold_scale, tolerance, gold_percent)


def is_percent_unit(unit: str | None) -> bool:
    return (unit or "").strip().lower() in ("%", "percent", "pct", "percentage", "percentage points", "pp")


# ---------------------------------------------------------------------------------------------
# text, labels

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014"})
_ARTICLES = {"a", "an", "the"}


def normalize_text(s: str) -> str:
    """Lower case, punctuation -> spaces, articles dropped, whitespace collapsed (SQuAD style)."""
    words = str(s).lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def token_f1(pred: str, gold: str) -> float:
    p, g = normalize_text(pred).split(), normalize_text(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def text_matches(pred: str, gold: str, aliases: list[str] | tuple[str, ...] = (), threshold: float = 0.5) -> bool:
    """Token F1 >= threshold, or a normalised gold/alias contained in the normalised prediction."""
    npred = f" {normalize_text(pred)} "
    for g in (gold, *aliases):
        ng = normalize_text(g)
        if ng and f" {ng} " in npred:
            return True
        if token_f1(pred, g) >= threshold:
            return True
    return False


def normalize_name(name: str) -> str:
    """'Governing Law' / 'governing-law' / 'governing_law' -> 'governing_law'."""
    return "_".join(re.findall(r"[a-z0-9]+", str(name).lower()))


YESNO = ("yes", "no", "maybe")
EFFECT_LABELS = ("significantly increased", "significantly decreased", "no significant difference")

# Surface forms per canonical label, checked against normalised text; first occurrence wins.
_LABEL_FORMS: dict[str, tuple[str, ...]] = {
    "no significant difference": (
        "no significant difference", "no significant differences", "not significantly different",
        "no statistically significant difference", "not significant", "no difference", "no significant change",
        "no significant effect", "did not differ", "similar",
    ),
    "significantly increased": ("significantly increased", "significantly increase", "significantly increases",
                                "significantly higher", "significant increase", "increased"),
    "significantly decreased": ("significantly decreased", "significantly decrease", "significantly decreases",
                                "significantly lower", "significantly reduced", "significant decrease",
                                "significant reduction", "decreased", "reduced"),
}


def normalize_label(text: str, labels: tuple[str, ...] | list[str]) -> str | None:
    """Map free text onto one label of `labels` (canonical form returned), or None.

    yes/no/maybe: the first of those words in the text. Other labels: the earliest occurring surface
    form of any label (the label itself, and for the Evidence-Inference labels the forms above)."""
    norm = f" {normalize_text(text)} "
    canon = [normalize_text(lab) for lab in labels]
    if set(canon) <= set(YESNO):
        for w in norm.split():
            if w in canon:
                return labels[canon.index(w)]
        return None
    best: tuple[int, int] | None = None  # (position, -len) of the earliest, longest form
    winner = None
    for lab, c in zip(labels, canon):
        forms = {c, *(normalize_text(f) for f in _LABEL_FORMS.get(c, ()))}
        for f in forms:
            pos = norm.find(f" {f} ")
            if pos >= 0 and (best is None or (pos, -len(f)) < best):
                best, winner = (pos, -len(f)), lab
    return winner


def canonical_effect_label(label: str) -> str | None:
    """Evidence-Inference label variants ('significantly increase') -> canonical three-way label."""
    return normalize_label(label, EFFECT_LABELS)


# ---------------------------------------------------------------------------------------------
# evidence on a page

def _tokens(s: str) -> list[str]:
    s = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", s or "")  # hyphenation across line breaks
    return re.findall(r"\w+", s.lower())


def evidence_in_text(evidence: str, text: str, min_shingle_share: float = 0.8, shingle: int = 5) -> bool:
    """Is `evidence` in `text`? Normalised token containment; for evidence of >= 2*shingle words,
    >= min_shingle_share of its `shingle`-word shingles present also counts (layout breaks tables)."""
    ev, tx = _tokens(evidence), _tokens(text)
    if not ev:
        return False
    if f" {' '.join(ev)} " in f" {' '.join(tx)} ":
        return True
    if len(ev) < 2 * shingle:
        return False
    have = {tuple(tx[i : i + shingle]) for i in range(len(tx) - shingle + 1)}
    sh = [tuple(ev[i : i + shingle]) for i in range(len(ev) - shingle + 1)]
    return sum(s in have for s in sh) >= min_shingle_share * len(sh)
