"""Writes evals/finance_judgements_heldout.jsonl: judgement questions (liquidity, leverage, coverage, profitability,
capital intensity) over corpus filings, with golds computed by hand.

Every input was read off the statement page named beside it (the PDF's 1-based physical page; Apple's pages as in
benchmarks/finance_metrics_golds.py) and typed in here; the project's parsers play no part. Each question names the
metric its judgement rests on, as FinanceBench's do ("based on its quick ratio"); the verdict applies the
conventional analyst rule of thumb that domains/finance.yaml `judgements` states (current / quick ratio >= 1.0
healthy; debt to equity <= 1.0 moderate, above it high; interest coverage >= 3 comfortable; operating margin >= 10 %
and net margin >= 5 % solid; capex >= 5 % of revenue capital-intensive). Written after the judgement machinery was
last changed and scored once, with no change made after seeing the result: a held-out set, reported apart.
Run: python benchmarks/finance_judgements_golds.py
"""

from __future__ import annotations

import json
from pathlib import Path

SUFFIX = {"aapl-10-k-2024-11-01": ".html"}
COMPANY = {"3M_2018_10K": "3M", "AMAZON_2017_10K": "Amazon", "COCACOLA_2017_10K": "Coca-Cola", "CORNING_2022_10K": "Corning",
           "AMCOR_2023_10K": "Amcor", "MICROSOFT_2023_10K": "Microsoft", "BESTBUY_2023_10K": "Best Buy",
           "NETFLIX_2017_10K": "Netflix", "NIKE_2021_10K": "Nike", "aapl-10-k-2024-11-01": "Apple"}


def verdict(value: float, good_if_at_least: float | None = None, good_if_at_most: float | None = None) -> bool:
    """True when the favourable side of the threshold holds."""
    return value >= good_if_at_least if good_if_at_least is not None else value <= good_if_at_most


# (doc, slug, question, metric value, favourable?, question asks about the unfavourable side?, page, inputs as read)
Q = [
    ("3M_2018_10K", "liq-current", "Does 3M have a reasonably healthy liquidity profile based on its current ratio at the end of FY2018?",
     13709 / 7244, verdict(13709 / 7244, 1.0), False, 58, "total current assets 13,709; total current liabilities 7,244"),
    ("AMAZON_2017_10K", "liq-quick", "Does Amazon have a healthy liquidity position based on its quick ratio for FY2017?",
     (60197 - 16047) / 57883, verdict((60197 - 16047) / 57883, 1.0), False, 40,
     "total current assets 60,197; inventories 16,047; total current liabilities 57,883"),
    ("COCACOLA_2017_10K", "lev-de", "Is Coca-Cola highly leveraged based on its debt-to-equity ratio at the end of FY2017?",
     (13205 + 3298 + 31182) / 17072, verdict((13205 + 3298 + 31182) / 17072, None, 1.0), True, 76,
     "loans and notes payable 13,205; current maturities of long-term debt 3,298; long-term debt 31,182; "
     "equity attributable to shareowners 17,072"),
    ("COCACOLA_2017_10K", "cov-interest", "Can Coca-Cola comfortably cover its interest expense from operating income in FY2017, "
     "judged by interest coverage?", 7501 / 841, verdict(7501 / 841, 3.0), False, 74, "operating income 7,501; interest expense 841"),
    ("CORNING_2022_10K", "lev-de", "Is Corning highly leveraged based on its debt to equity in FY2022?",
     (224 + 6687) / 12008, verdict((224 + 6687) / 12008, None, 1.0), True, 60,
     "current portion of long-term debt and short-term borrowings 224; long-term debt 6,687; Corning shareholders' equity 12,008"),
    ("AMCOR_2023_10K", "lev-de", "Is Amcor's leverage high, judged by its debt-to-equity ratio at the end of FY2023?",
     (13 + 80 + 6653) / 4026, verdict((13 + 80 + 6653) / 4026, None, 1.0), True, 52,
     "current portion of long-term debt 13; short-term debt 80; long-term debt 6,653; Amcor plc shareholders' equity 4,026"),
    ("MICROSOFT_2023_10K", "liq-current", "Is Microsoft's liquidity healthy based on its current ratio at the end of FY2023?",
     184257 / 104149, verdict(184257 / 104149, 1.0), False, 60, "total current assets 184,257; total current liabilities 104,149"),
    ("MICROSOFT_2023_10K", "capint", "Is Microsoft a capital-intensive business based on its FY2023 capex as a percentage of revenue?",
     100 * 28107 / 211915, verdict(100 * 28107 / 211915, 5.0), False, 61,
     "additions to property and equipment 28,107 (p.61); total revenue 211,915 (p.58)"),
    ("BESTBUY_2023_10K", "capint", "Is Best Buy a capital-intensive business based on its FY2023 capex intensity?",
     100 * 930 / 46298, verdict(100 * 930 / 46298, 5.0), False, 42, "capital expenditures 930 (p.42); revenue 46,298 (p.40)"),
    ("NIKE_2021_10K", "prof-net", "Is Nike a profitable business based on its net margin in FY2021?",
     100 * 5727 / 44538, verdict(100 * 5727 / 44538, 5.0), False, 59, "net income 5,727; revenues 44,538"),
    ("NETFLIX_2017_10K", "prof-op", "Does Netflix have solid profitability based on its FY2017 operating margin?",
     100 * 838679 / 11692713, verdict(100 * 838679 / 11692713, 10.0), False, 42, "operating income 838,679; revenues 11,692,713"),
    ("NETFLIX_2017_10K", "cov-interest", "Can Netflix comfortably service its debt based on its FY2017 interest coverage?",
     838679 / 238204, verdict(838679 / 238204, 3.0), False, 42, "operating income 838,679; interest expense 238,204"),
    ("aapl-10-k-2024-11-01", "liq-current", "Does Apple have a healthy liquidity profile based on its current ratio at the end of FY2024?",
     152987 / 176392, verdict(152987 / 176392, 1.0), False, 33, "total current assets 152,987; total current liabilities 176,392"),
    ("3M_2018_10K", "lev-de", "Is 3M over-leveraged based on its debt-to-equity ratio at the end of FY2018?",
     (1211 + 13411) / 9796, verdict((1211 + 13411) / 9796, None, 1.0), True, 58,
     "short-term borrowings and current portion of long-term debt 1,211; long-term debt 13,411; 3M shareholders' equity 9,796"),
]


def main() -> None:
    items: dict[str, dict] = {}
    for stem, slug, question, value, good, asks_bad, page, inputs in Q:
        item = items.setdefault(stem, {"id": f"finance-judgements/{stem.lower()}", "domain": "finance",
                                       "document": f"finance/{stem}{SUFFIX.get(stem, '.pdf')}", "title": f"{COMPANY[stem]} ({stem})",
                                       "source": "manual", "questions": [],
                                       "notes": "Golds computed by hand from the statement pages; verdict by the rule of thumb in the question's docstring."})
        yes = good != asks_bad  # "Is it healthy?" -> yes when favourable; "Is it highly leveraged?" -> yes when unfavourable
        item["questions"].append({"id": f"{stem.lower()}-{slug}", "question": question,
                                  "answer": f"{'Yes' if yes else 'No'} (metric {value:.3f})", "kind": "yesno", "labels": ["yes", "no"],
                                  "page": page, "evidence": f"inputs (page {page}): {inputs}"})
    out = Path(__file__).resolve().parent.parent / "evals" / "finance_judgements_heldout.jsonl"
    out.write_text("".join(json.dumps(i) + "\n" for i in items.values()), encoding="utf-8")
    print(f"wrote {out}: {sum(len(i['questions']) for i in items.values())} questions")


if __name__ == "__main__":
    main()
