"""Writes evals/finance_metrics.jsonl: metric questions over the corpus filings whose golds were computed by hand.

Every input below was read off the statement page named beside it (the PDF's 1-based physical page, as
`m3analyst ingest` shows it) and typed in here; nothing is read by the project's parsers. The arithmetic is the
definition stated in each question. Templates are ones the FinanceBench dev split does not use (CAGR, N-year
averages, DSO / DIO / cash conversion cycle, capex intensity, interest coverage, payout, ROE, asset and fixed-asset
turnover, current ratio). Run: python benchmarks/finance_metrics_golds.py
"""

from __future__ import annotations

import json
from pathlib import Path

DOCS = {  # stem: (company, income statement page, balance sheet page, cash flow page)
    "AMAZON_2017_10K": ("Amazon", 38, 40, 37), "BESTBUY_2023_10K": ("Best Buy", 40, 39, 42),
    "COCACOLA_2017_10K": ("Coca-Cola", 74, 76, 77), "CORNING_2022_10K": ("Corning", 58, 60, 61),
    "MICROSOFT_2023_10K": ("Microsoft", 58, 60, 61), "NETFLIX_2017_10K": ("Netflix", 42, 45, 44),
    "NIKE_2021_10K": ("Nike", 59, 61, 62), "PEPSICO_2022_10K": ("PepsiCo", 62, 66, 64), "3M_2018_10K": ("3M", 56, 58, 60),
    "aapl-10-k-2024-11-01": ("Apple", 31, 33, 35),
}
SUFFIX = {"aapl-10-k-2024-11-01": ".html"}
DSO = "DSO is defined as 365 * (average accounts receivable of the year and the year before) / revenue."
DIO = "DIO is defined as 365 * (average inventory of the year and the year before) / cost of sales."
DPO = ("DPO is defined as 365 * (average accounts payable of the year and the year before) / "
       "(cost of sales + change in inventory over the year).")
CAGR = "Answer in percent, rounded to two decimal places."


def avg(a, b):
    return (a + b) / 2


def cagr(end, start, n):
    return 100 * ((end / start) ** (1 / n) - 1)


def dso(ar, ar0, rev):
    return 365 * avg(ar, ar0) / rev


def dio(inv, inv0, cogs):
    return 365 * avg(inv, inv0) / cogs


def dpo(ap, ap0, cogs, inv, inv0):
    return 365 * avg(ap, ap0) / (cogs + inv - inv0)


# (doc, slug, question, gold value, unit, statement kinds used ("i", "b", "c"), inputs as read)
Q = [
    ("AMAZON_2017_10K", "rev-cagr", "What is Amazon's 2-year compound annual growth rate (CAGR) of total net sales from FY2015 to FY2017? " + CAGR,
     cagr(177866, 107006, 2), "%", "i", "total net sales 2017 177,866; 2015 107,006"),
    ("AMAZON_2017_10K", "capex-avg", "What is Amazon's 3-year average of capital expenditure as a percentage of revenue over FY2015-FY2017? "
     "Capex is purchases of property and equipment.", (5387 / 107006 + 7804 / 135987 + 11955 / 177866) / 3 * 100, "%", "ic",
     "capex 5,387 / 7,804 / 11,955; net sales 107,006 / 135,987 / 177,866 (2015-2017)"),
    ("AMAZON_2017_10K", "dio", f"What was Amazon's FY2017 days inventory outstanding (DIO)? {DIO} Round to two decimals.",
     dio(16047, 11461, 111934), "days", "ib", "inventories 2017 16,047; 2016 11,461; cost of sales 2017 111,934"),
    ("AMAZON_2017_10K", "icov", "What was Amazon's FY2017 interest coverage ratio (operating income / interest expense)?",
     4106 / 848, "ratio", "i", "operating income 4,106; interest expense 848"),
    ("AMAZON_2017_10K", "wc-ratio", "What is Amazon's working capital ratio at the end of FY2017?", 60197 / 57883, "ratio", "b",
     "total current assets 60,197; total current liabilities 57,883"),
    ("AMAZON_2017_10K", "asset-turn", "What was Amazon's FY2017 asset turnover, defined as revenue / average total assets of FY2016 and FY2017?",
     177866 / avg(131310, 83402), "ratio", "ib", "net sales 177,866; total assets 131,310 and 83,402"),
    ("AMAZON_2017_10K", "dso", f"What is Amazon's FY2017 DSO? {DSO}", dso(13164, 8339, 177866), "days", "ib",
     "accounts receivable, net and other 13,164 and 8,339; net sales 177,866"),
    ("BESTBUY_2023_10K", "dio", f"What is Best Buy's days inventory outstanding for FY2023? {DIO}", dio(5140, 5965, 36386), "days", "ib",
     "merchandise inventories 5,140 and 5,965; cost of sales 36,386"),
    ("BESTBUY_2023_10K", "dso", f"Calculate Best Buy's FY2023 days sales outstanding. {DSO}", dso(1141, 1042, 46298), "days", "ib",
     "receivables, net 1,141 and 1,042; revenue 46,298"),
    ("BESTBUY_2023_10K", "ccc", f"What was Best Buy's cash conversion cycle in FY2023 (DSO + DIO - DPO)? {DSO} {DIO} {DPO}",
     dso(1141, 1042, 46298) + dio(5140, 5965, 36386) - dpo(5687, 6803, 36386, 5140, 5965), "days", "ib",
     "receivables 1,141/1,042; inventories 5,140/5,965; accounts payable 5,687/6,803; revenue 46,298; cost of sales 36,386"),
    ("BESTBUY_2023_10K", "icov", "What is Best Buy's FY2023 times interest earned (operating income divided by interest expense)?",
     1795 / 35, "ratio", "i", "operating income 1,795; interest expense 35"),
    ("BESTBUY_2023_10K", "payout", "What was Best Buy's dividend payout ratio in FY2023 (dividends paid / net earnings), in percent?",
     100 * 789 / 1419, "%", "ic", "dividends paid 789; net earnings 1,419"),
    ("BESTBUY_2023_10K", "ni-cagr", "What is the compound annual growth rate of Best Buy's net earnings between FY2021 and FY2023? " + CAGR,
     cagr(1419, 1798, 2), "%", "i", "net earnings FY2023 1,419; FY2021 1,798"),
    ("BESTBUY_2023_10K", "capex-int", "What was Best Buy's capex intensity (capital expenditures as a percentage of revenue) in FY2023?",
     100 * 930 / 46298, "%", "ic", "additions to property and equipment 930; revenue 46,298"),
    ("COCACOLA_2017_10K", "icov", "What is Coca-Cola's FY2017 interest coverage ratio? Use operating income over interest expense.",
     7501 / 841, "ratio", "i", "operating income 7,501; interest expense 841"),
    ("COCACOLA_2017_10K", "rev-cagr", "What was the 2-year CAGR of Coca-Cola's net operating revenues from FY2015 to FY2017? " + CAGR,
     cagr(35410, 44294, 2), "%", "i", "net operating revenues 2017 35,410; 2015 44,294"),
    ("COCACOLA_2017_10K", "dso", f"What is Coca-Cola's days sales outstanding for FY2017? {DSO}", dso(3667, 3856, 35410), "days", "ib",
     "trade accounts receivable 3,667 and 3,856; net operating revenues 35,410"),
    ("COCACOLA_2017_10K", "dio", f"What is Coca-Cola's FY2017 DIO? {DIO}", dio(2655, 2675, 13256), "days", "ib",
     "inventories 2,655 and 2,675; cost of goods sold 13,256"),
    ("COCACOLA_2017_10K", "capex-avg", "What is Coca-Cola's 3-year average capex as a % of revenue for FY2015 to FY2017?",
     (2553 / 44294 + 2262 / 41863 + 1675 / 35410) / 3 * 100, "%", "ic",
     "purchases of PP&E 2,553 / 2,262 / 1,675; revenues 44,294 / 41,863 / 35,410 (2015-2017)"),
    ("COCACOLA_2017_10K", "fa-turn", "What was Coca-Cola's fixed asset turnover in FY2017 (revenue / average net PP&E of FY2016 and FY2017)?",
     35410 / avg(8203, 10635), "ratio", "ib", "revenues 35,410; PP&E net 8,203 and 10,635"),
    ("CORNING_2022_10K", "icov", "What is Corning's interest coverage ratio for FY2022 (operating income / interest expense)?",
     1438 / 292, "ratio", "i", "operating income 1,438; interest expense 292"),
    ("CORNING_2022_10K", "capex-int", "What was Corning's capital expenditure intensity in FY2022, i.e. capex as a percentage of net sales?",
     100 * 1604 / 14189, "%", "ic", "capital expenditures 1,604; net sales 14,189"),
    ("CORNING_2022_10K", "rev-cagr", "What is Corning's net sales CAGR from FY2020 to FY2022? " + CAGR, cagr(14189, 11303, 2), "%", "i",
     "net sales 2022 14,189; 2020 11,303"),
    ("CORNING_2022_10K", "dio", f"What is Corning's FY2022 days inventory outstanding? {DIO}", dio(2904, 2481, 9683), "days", "ib",
     "inventories 2,904 and 2,481; cost of sales 9,683"),
    ("CORNING_2022_10K", "dso", f"What is Corning's FY2022 days sales outstanding? {DSO}", dso(1721, 2004, 14189), "days", "ib",
     "trade accounts receivable 1,721 and 2,004; net sales 14,189"),
    ("CORNING_2022_10K", "payout", "What is Corning's FY2022 payout ratio (dividends paid / net income attributable to Corning), in percent?",
     100 * 932 / 1316, "%", "ic", "dividends paid 932; net income attributable to Corning 1,316"),
    ("MICROSOFT_2023_10K", "rev-cagr", "What is Microsoft's 2-year revenue CAGR between FY2021 and FY2023? " + CAGR, cagr(211915, 168088, 2),
     "%", "i", "total revenue 2023 211,915; 2021 168,088"),
    ("MICROSOFT_2023_10K", "dso", f"What was Microsoft's FY2023 DSO? {DSO}", dso(48688, 44261, 211915), "days", "ib",
     "accounts receivable 48,688 and 44,261; revenue 211,915"),
    ("MICROSOFT_2023_10K", "capex-int", "What was Microsoft's FY2023 capex as a percentage of revenue? Capex is additions to property and equipment.",
     100 * 28107 / 211915, "%", "ic", "additions to property and equipment 28,107; revenue 211,915"),
    ("MICROSOFT_2023_10K", "roe", "What is Microsoft's FY2023 return on equity, defined as net income / average total stockholders' equity of FY2022 and FY2023?",
     72361 / avg(206223, 166542), "ratio", "ib", "net income 72,361; stockholders' equity 206,223 and 166,542"),
    ("MICROSOFT_2023_10K", "opm-avg", "What was Microsoft's average operating margin over the three fiscal years FY2021 to FY2023, in percent?",
     (69916 / 168088 + 83383 / 198270 + 88523 / 211915) / 3 * 100, "%", "i",
     "operating income 69,916 / 83,383 / 88,523; revenue 168,088 / 198,270 / 211,915"),
    ("MICROSOFT_2023_10K", "payout", "What was Microsoft's dividend payout ratio in FY2023 (common stock cash dividends paid / net income), in percent?",
     100 * 19800 / 72361, "%", "ic", "dividends paid 19,800; net income 72,361"),
    ("NETFLIX_2017_10K", "rev-cagr", "What is the 2-year CAGR of Netflix's revenues from FY2015 to FY2017? " + CAGR, cagr(11692713, 6779511, 2),
     "%", "i", "revenues 2017 11,692,713; 2015 6,779,511 (thousands)"),
    ("NETFLIX_2017_10K", "icov", "What is Netflix's FY2017 interest coverage ratio (operating income / interest expense)?",
     838679 / 238204, "ratio", "i", "operating income 838,679; interest expense 238,204"),
    ("NETFLIX_2017_10K", "capex-avg", "What was Netflix's 3-year average capex intensity (purchases of property and equipment / revenues) "
     "over FY2015-FY2017, in percent?", (91248 / 6779511 + 107653 / 8830669 + 173302 / 11692713) / 3 * 100, "%", "ic",
     "purchases of property and equipment 91,248 / 107,653 / 173,302; revenues 6,779,511 / 8,830,669 / 11,692,713"),
    ("NETFLIX_2017_10K", "roe", "What is Netflix's FY2017 ROE (net income / average stockholders' equity of FY2016 and FY2017)?",
     558929 / avg(3581956, 2679800), "ratio", "ib", "net income 558,929; stockholders' equity 3,581,956 and 2,679,800"),
    ("NIKE_2021_10K", "dso", f"What was Nike's FY2021 days sales outstanding? {DSO}", dso(4463, 2749, 44538), "days", "ib",
     "accounts receivable, net 4,463 and 2,749; revenues 44,538"),
    ("NIKE_2021_10K", "dio", f"What was Nike's FY2021 days inventory outstanding? {DIO}", dio(6854, 7367, 24576), "days", "ib",
     "inventories 6,854 and 7,367; cost of sales 24,576"),
    ("NIKE_2021_10K", "ccc", f"What is Nike's FY2021 cash conversion cycle, DSO + DIO - DPO? {DSO} {DIO} {DPO}",
     dso(4463, 2749, 44538) + dio(6854, 7367, 24576) - dpo(2836, 2248, 24576, 6854, 7367), "days", "ib",
     "receivables 4,463/2,749; inventories 6,854/7,367; accounts payable 2,836/2,248; revenues 44,538; cost of sales 24,576"),
    ("NIKE_2021_10K", "rev-cagr", "What is Nike's revenue CAGR from FY2019 to FY2021? " + CAGR, cagr(44538, 39117, 2), "%", "i",
     "revenues 2021 44,538; 2019 39,117"),
    ("NIKE_2021_10K", "payout", "What was Nike's FY2021 dividend payout ratio (dividends paid / net income), in percent?",
     100 * 1638 / 5727, "%", "ic", "dividends - common and preferred 1,638; net income 5,727"),
    ("NIKE_2021_10K", "capex-avg", "What is Nike's average capex as a percentage of revenues over the last three fiscal years (FY2019-FY2021)?",
     (1119 / 39117 + 1086 / 37403 + 695 / 44538) / 3 * 100, "%", "ic",
     "additions to PP&E 1,119 / 1,086 / 695; revenues 39,117 / 37,403 / 44,538"),
    ("PEPSICO_2022_10K", "dso", f"What is PepsiCo's FY2022 days sales outstanding? {DSO}", dso(10163, 8680, 86392), "days", "ib",
     "accounts and notes receivable, net 10,163 and 8,680; net revenue 86,392"),
    ("PEPSICO_2022_10K", "dio", f"What is PepsiCo's days inventory outstanding for FY2022? {DIO}", dio(5222, 4347, 40576), "days", "ib",
     "inventories 5,222 and 4,347; cost of sales 40,576"),
    ("PEPSICO_2022_10K", "capex-int", "What was PepsiCo's FY2022 capex intensity, capital spending as a percentage of net revenue?",
     100 * 5207 / 86392, "%", "ic", "capital spending 5,207; net revenue 86,392"),
    ("PEPSICO_2022_10K", "rev-cagr", "What is PepsiCo's 2-year net revenue CAGR from FY2020 to FY2022? " + CAGR, cagr(86392, 70372, 2), "%", "i",
     "net revenue 2022 86,392; 2020 70,372"),
    ("PEPSICO_2022_10K", "fa-turn", "What is PepsiCo's FY2022 fixed asset turnover (net revenue / average net PP&E of FY2021 and FY2022)?",
     86392 / avg(24291, 22407), "ratio", "ib", "net revenue 86,392; PP&E net 24,291 and 22,407"),
    ("3M_2018_10K", "rev-cagr", "What is 3M's 2-year net sales CAGR from FY2016 to FY2018? " + CAGR, cagr(32765, 30109, 2), "%", "i",
     "net sales 2018 32,765; 2016 30,109"),
    ("3M_2018_10K", "capex-avg", "What is 3M's 3-year average capital expenditure as a percentage of net sales (FY2016-FY2018)?",
     (1420 / 30109 + 1373 / 31657 + 1577 / 32765) / 3 * 100, "%", "ic",
     "purchases of PP&E 1,420 / 1,373 / 1,577; net sales 30,109 / 31,657 / 32,765"),
    ("3M_2018_10K", "dso", f"What was 3M's FY2018 days sales outstanding? {DSO}", dso(5020, 4911, 32765), "days", "ib",
     "accounts receivable - net 5,020 and 4,911; net sales 32,765"),
    ("3M_2018_10K", "asset-turn", "What was 3M's FY2018 total asset turnover (net sales / average total assets of FY2017 and FY2018)?",
     32765 / avg(36500, 37987), "ratio", "ib", "net sales 32,765; total assets 36,500 and 37,987"),
]


# Held out: written after the calculator was finished and scored once, with no change made after seeing the result
# (Apple's inline-XBRL 10-K, a filing format the calculator was not developed on).
HELDOUT = [
    ("aapl-10-k-2024-11-01", "rev-cagr", "What is Apple's 2-year CAGR of total net sales from FY2022 to FY2024? " + CAGR,
     cagr(391035, 394328, 2), "%", "i", "total net sales 2024 391,035; 2022 394,328"),
    ("aapl-10-k-2024-11-01", "dio", f"What is Apple's FY2024 days inventory outstanding? {DIO}", dio(7286, 6331, 210352), "days", "ib",
     "inventories 7,286 and 6,331; total cost of sales 210,352"),
    ("aapl-10-k-2024-11-01", "dso", f"What is Apple's FY2024 days sales outstanding? {DSO}", dso(33410, 29508, 391035), "days", "ib",
     "accounts receivable, net 33,410 and 29,508; total net sales 391,035"),
    ("aapl-10-k-2024-11-01", "ccc", f"What is Apple's FY2024 cash conversion cycle (DSO + DIO - DPO)? {DSO} {DIO} {DPO}",
     dso(33410, 29508, 391035) + dio(7286, 6331, 210352) - dpo(68960, 62611, 210352, 7286, 6331), "days", "ib",
     "receivables 33,410/29,508; inventories 7,286/6,331; accounts payable 68,960/62,611; net sales 391,035; cost of sales 210,352"),
    ("aapl-10-k-2024-11-01", "capex-avg", "What is Apple's 3-year average capex as a percentage of net sales over FY2022-FY2024? "
     "Capex is payments for acquisition of property, plant and equipment.", (10708 / 394328 + 10959 / 383285 + 9447 / 391035) / 3 * 100,
     "%", "ic", "capex 10,708 / 10,959 / 9,447; net sales 394,328 / 383,285 / 391,035 (2022-2024)"),
    ("aapl-10-k-2024-11-01", "payout", "What was Apple's FY2024 dividend payout ratio (dividends paid / net income), in percent?",
     100 * 15234 / 93736, "%", "ic", "payments for dividends and dividend equivalents 15,234; net income 93,736"),
    ("aapl-10-k-2024-11-01", "roe", "What is Apple's FY2024 return on equity, net income / average total shareholders' equity of FY2023 and FY2024?",
     93736 / avg(56950, 62146), "ratio", "ib", "net income 93,736; shareholders' equity 56,950 and 62,146"),
    ("aapl-10-k-2024-11-01", "fa-turn", "What is Apple's FY2024 fixed asset turnover (net sales / average net PP&E of FY2023 and FY2024)?",
     391035 / avg(45680, 43715), "ratio", "ib", "net sales 391,035; PP&E net 45,680 and 43,715"),
    ("aapl-10-k-2024-11-01", "asset-turn", "What is Apple's FY2024 asset turnover (net sales / average total assets of FY2023 and FY2024)?",
     391035 / avg(364980, 352583), "ratio", "ib", "net sales 391,035; total assets 364,980 and 352,583"),
    ("aapl-10-k-2024-11-01", "rd-ratio", "What was Apple's research and development as a percentage of net sales in FY2024?",
     100 * 31370 / 391035, "%", "i", "research and development 31,370; total net sales 391,035"),
    ("aapl-10-k-2024-11-01", "wc-ratio", "What is Apple's working capital ratio at the end of FY2024?", 152987 / 176392, "ratio", "b",
     "total current assets 152,987; total current liabilities 176,392"),
]


def main() -> None:
    for questions, name in ((Q, "finance_metrics.jsonl"), (HELDOUT, "finance_metrics_heldout.jsonl")):
        write(questions, name)


def write(questions: list, name: str) -> None:
    items: dict[str, dict] = {}
    for stem, slug, question, value, unit, used, inputs in questions:
        company, pi, pb, pc = DOCS[stem]
        pages = [{"i": pi, "b": pb, "c": pc}[k] for k in used]
        item = items.setdefault(stem, {"id": f"finance-metrics/{stem.lower()}", "domain": "finance",
                                       "document": f"finance/{stem}{SUFFIX.get(stem, '.pdf')}", "title": f"{company} ({stem})", "source": "manual",
                                       "questions": [], "notes": "Golds computed by hand from the statement pages (inputs per question in its evidence)."})
        v = round(value, 4)
        item["questions"].append({"id": f"{stem.lower()}-{slug}", "question": question, "answer": f"{v}", "value": v,
                                  "unit": "%" if unit == "%" else None, "kind": "numeric", "tolerance": 0.01, "page": pages[-1],
                                  "evidence": f"inputs (pages {', '.join(map(str, pages))}): {inputs}"})
    out = Path(__file__).resolve().parent.parent / "evals" / name
    out.write_text("".join(json.dumps(i) + "\n" for i in items.values()), encoding="utf-8")
    print(f"wrote {out}: {sum(len(i['questions']) for i in items.values())} questions")


if __name__ == "__main__":
    main()
