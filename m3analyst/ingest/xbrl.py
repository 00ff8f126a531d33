"""Inline-XBRL facts -> one DataFrame (`Document.xbrl`).

Columns (one row per `ix:nonFraction` / `ix:nonNumeric`):
    concept       "us-gaap:NetIncomeLoss"
    value         float for numeric facts (displayed number x 10**scale, sign applied), else the text (<= 2000 chars)
    raw           the displayed text
    unit          "USD", "shares", "USD/shares", ... (None for text facts)
    scale         int power of ten from the `scale` attribute (6 = millions)
    sign          -1 when the fact carries sign="-", else 1
    decimals      "-6", "2", "INF" (as written)
    period_start, period_end, instant   ISO dates from the context ("" when absent)
    dimensions    "axis=member; axis=member" ("" for the default context)
    context_id    the contextRef
    page          1-based page the fact is displayed on (None for hidden facts in ix:header)
    numeric       True for nonFraction facts
"""

from __future__ import annotations

import math
import re

import pandas as pd

COLUMNS = [
    "concept", "value", "raw", "unit", "scale", "sign", "decimals", "period_start", "period_end",
    "instant", "dimensions", "context_id", "page", "numeric",
]  # fmt: skip
TEXT_LIMIT = 2000
MAX_SCALE = 30  # |scale| past this is malformed (real filings use -6 to 9); 10**400 would overflow
_WORD_ZERO = re.compile(r"^(?:no|none|nil|zero|-|—|–)$", re.IGNORECASE)


def fact_key(el) -> object:
    """Stable key of an inline fact (lxml element proxies are not stable objects, so no id())."""
    return el.get("id") or (el.sourceline, el.get("name"), el.get("contextref"), el.text)


def _local(tag: str) -> str:
    return tag.split(":", 1)[-1].split("}", 1)[-1].lower()


def _contexts(root) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for ctx in root.iter("xbrli:context"):
        d = {"period_start": "", "period_end": "", "instant": "", "dimensions": ""}
        dims = []
        for el in ctx.iter():
            if not isinstance(el.tag, str):
                continue
            name = _local(el.tag)
            if name == "startdate":
                d["period_start"] = (el.text or "").strip()
            elif name == "enddate":
                d["period_end"] = (el.text or "").strip()
            elif name == "instant":
                d["instant"] = (el.text or "").strip()
            elif name in ("explicitmember", "typedmember"):
                member = (el.text or "").strip() or " ".join(el.text_content().split())
                dims.append(f"{el.get('dimension')}={member}")
        d["dimensions"] = "; ".join(dims)
        out[ctx.get("id")] = d
    return out


def _units(root) -> dict[str, str]:
    out: dict[str, str] = {}
    for u in root.iter("xbrli:unit"):
        measures = [(m.text or "").strip().split(":")[-1] for m in u.iter("xbrli:measure")]
        if len(measures) == 2 and next(u.iter("xbrli:divide"), None) is not None:
            out[u.get("id")] = f"{measures[0]}/{measures[1]}"
        else:
            out[u.get("id")] = measures[0] if measures else u.get("id")
    return out


def numeric_value(raw: str, fmt: str | None, scale: int, sign: int) -> float | None:
    """Displayed text -> number: formats num-dot-decimal / num-comma-decimal / fixed-zero / words 'no'."""
    s = raw.strip()
    f = (fmt or "").lower()
    if "fixed-zero" in f or "zerodash" in f or _WORD_ZERO.match(s) or s == "":
        v = 0.0
    else:
        if "comma-decimal" in f or "numcommadecimal" in f:
            s = s.replace(".", "").replace(" ", "").replace(",", ".")
        else:
            s = s.replace(",", "").replace(" ", "")
        s = s.strip("()$%")
        try:
            v = float(s)
        except ValueError:
            return None
    return v * (10.0**scale) * sign


def _scale(el) -> int:
    """The fact's scale attribute as an int; ValueError when it is not a small integer."""
    scale = int((el.get("scale") or "0").strip())
    if abs(scale) > MAX_SCALE:
        raise ValueError(f"scale {scale} out of range")
    return scale


def facts_frame(root, fact_pages: dict[object, int], warnings: list[str] | None = None) -> pd.DataFrame | None:
    """All inline facts of the document as a DataFrame (see module doc), or None without iXBRL. A malformed fact
    (a scale that is not a small integer, a value that is not finite) is skipped and counted in `warnings`."""
    contexts, units = _contexts(root), _units(root)
    continuations = {el.get("id"): el for el in root.iter("ix:continuation")}
    rows, skipped = [], []
    for el in root.iter("ix:nonfraction", "ix:nonnumeric"):
        numeric = el.tag == "ix:nonfraction"
        raw = " ".join(el.text_content().split())
        if not numeric and el.get("continuedat"):
            raw = " ".join([raw] + _continued_text(el.get("continuedat"), continuations))
        sign = -1 if el.get("sign") == "-" else 1
        try:
            scale = _scale(el)
            value = numeric_value(raw, el.get("format"), scale, sign) if numeric else raw[:TEXT_LIMIT]
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"value {raw[:40]!r} is not finite")
        except (ValueError, OverflowError) as e:
            skipped.append(f"{el.get('name')} ({e})")
            continue
        ctx = contexts.get(el.get("contextref") or "", {})
        rows.append(
            {
                "concept": el.get("name"),
                "value": value,
                "raw": raw[:200],
                "unit": units.get(el.get("unitref") or "", el.get("unitref")) if numeric else None,
                "scale": scale,
                "sign": sign,
                "decimals": el.get("decimals"),
                "period_start": ctx.get("period_start", ""),
                "period_end": ctx.get("period_end", ""),
                "instant": ctx.get("instant", ""),
                "dimensions": ctx.get("dimensions", ""),
                "context_id": el.get("contextref"),
                "page": fact_pages.get(fact_key(el)),
                "numeric": numeric,
            }
        )
    if skipped and warnings is not None:
        warnings.append(f"iXBRL: {len(skipped)} malformed fact(s) skipped: " + "; ".join(skipped[:5])
                        + (" ..." if len(skipped) > 5 else ""))
    if not rows:
        return None
    return pd.DataFrame(rows, columns=COLUMNS)


def _continued_text(first_id: str, continuations: dict) -> list[str]:
    """Texts of an ix:continuation chain (a text block split across pages), cycle-safe."""
    out, seen, cid = [], set(), first_id
    while cid and cid in continuations and cid not in seen and len(out) < 200:
        seen.add(cid)
        c = continuations[cid]
        out.append(" ".join(c.text_content().split()))
        cid = c.get("continuedat")
    return out


def dei(frame: pd.DataFrame | None, concept: str) -> str | None:
    """First value of a dei: cover-page fact (e.g. 'DocumentType', 'EntityRegistrantName')."""
    if frame is None:
        return None
    hit = frame.loc[frame["concept"] == f"dei:{concept}", "value"]
    return str(hit.iloc[0]) if len(hit) else None
