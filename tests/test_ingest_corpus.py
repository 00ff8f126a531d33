"""Ingestion on the real corpus (read in place from ../shared/corpus; skipped when it is absent).

Pinned pages were checked by eye against each filing's table of contents and the page itself
(physical 1-based page numbers; printed labels where they differ). Documents are loaded once
per session (module-level cache), so each file is parsed a single time across these tests.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from m3analyst.ingest import Document, load_document
from m3analyst.ingest.statements import STATEMENT_KINDS, latest_period, row_value
from m3analyst.resources import corpus_dir

CORPUS = corpus_dir()
FIN = CORPUS / "finance"


@functools.lru_cache(maxsize=None)
def doc(rel: str) -> Document:
    return load_document(CORPUS / rel)


@pytest.fixture(autouse=True)
def _need_corpus(corpus):  # skips every test here, with the reason, when the corpus is absent
    return corpus


def _glob(sub: str, *patterns: str) -> list[str]:
    if not CORPUS.is_dir():
        return []
    out = []
    for pat in patterns:
        out += sorted(str(p.relative_to(CORPUS)) for p in (CORPUS / sub).glob(pat))
    return out


TEN_KS = _glob("finance", "*_10K.pdf", "*10-k*.html")
CONTRACTS = _glob("legal/contracts_pdf", "*.pdf", "*.PDF")
PAPERS = _glob("bio/papers_pdf", "*.pdf")

# (file, {item: (physical start page, printed page label)}) — Items 1, 1A, 7, 7A, 8
ITEM_PAGES = {
    "finance/3M_2018_10K.pdf": {"1": (4, "4"), "1a": (10, "10"), "7": (15, "15"), "7a": (51, "51"), "8": (52, "52")},
    "finance/COCACOLA_2017_10K.pdf": {"1": (4, "2"), "1a": (12, "10"), "7": (30, "28"), "7a": (71, "69"), "8": (73, "71")},
    "finance/MICROSOFT_2023_10K.pdf": {"1": (4, "4"), "1a": (23, "23"), "7": (40, "40"), "7a": (57, "57"), "8": (58, "58")},
    "finance/NETFLIX_2017_10K.pdf": {"1": (3, "1"), "1a": (5, "3"), "7": (21, "19"), "7a": (33, "31"), "8": (33, "31")},
    "finance/NIKE_2021_10K.pdf": {"1": (3, "1"), "1a": (12, "10"), "7": (30, "28"), "7a": (53, "51"), "8": (55, "53")},
    "finance/aapl-10-k-2024-11-01.html": {"1": (3, "1"), "1a": (7, "5"), "7": (23, "21"), "7a": (29, "27"), "8": (30, "28")},
    "finance/AMAZON_2017_10K.pdf": {"1": (3, "3"), "1a": (6, "6"), "7": (19, "19"), "7a": (33, "33"), "8": (35, "35")},
    "finance/AMCOR_2023_10K.pdf": {"1": (5, "5"), "1a": (14, "14"), "7": (29, "29"), "7a": (46, "46"), "8": (48, "48")},
    "finance/PEPSICO_2022_10K.pdf": {"1": (4, "2"), "1a": (13, "11"), "7": (31, "29"), "7a": (118, "116"), "8": (118, "116")},
    "finance/CORNING_2022_10K.pdf": {"1": (2, "2"), "1a": (13, "13"), "7": (23, "23"), "7a": (44, "44"), "8": (44, "44")},
    "finance/BESTBUY_2023_10K.pdf": {"1": (4, "4"), "1a": (8, "8"), "7": (23, "23"), "7a": (33, "33"), "8": (35, "35")},
    "finance/ibm-10-k-2025-02-25.html": {"1": (3, "1"), "1a": (5, "3"), "7": (14, "12"), "7a": (14, "12"), "8": (14, "12")},
}


@pytest.mark.slow
@pytest.mark.parametrize("rel", TEN_KS)
def test_item_pages_agree_with_the_filings_own_toc(rel):
    """Where a filing has a table of contents, each Item starts on the page whose printed number the TOC gives."""
    d = doc(rel)
    first = d.section("item_1").start
    toc = {}
    for line in d.text[:first].split("\n"):
        m = re.match(r"^\s*item\s*(\d{1,2}[A-C]?)\b.*?\s(\d{1,3})\s*$", line, re.IGNORECASE)
        if m:
            toc.setdefault(m.group(1).lower(), m.group(2))
    if len(toc) < 5:
        pytest.skip(f"{rel} has no parseable table of contents")
    for s in d.sections:  # the acceptance Items (Amazon's own TOC is one page off for Item 1B)
        want = toc.get(s.number.lower()) if s.number in ("1", "1A", "7", "7A", "8") else None
        if want is not None:
            assert d.pages[s.page_start - 1].label == want, f"{rel}: Item {s.number} on p.{s.page_start}"


@pytest.mark.parametrize("rel", sorted(ITEM_PAGES))
def test_item_start_pages_pinned(rel):
    d = doc(rel)
    assert d.kind == "10-K"
    for item, (page, label) in ITEM_PAGES[rel].items():
        s = d.section(f"item_{item}")
        assert s is not None, f"{rel}: Item {item} not found"
        assert (s.page_start, d.pages[s.page_start - 1].label) == (page, label), f"{rel}: Item {item}"
        assert re.match(rf"item\s*{item}\b", d.text[s.start : s.start + 12], re.IGNORECASE)


@pytest.mark.parametrize("rel", TEN_KS)
def test_every_10k_has_items_and_statements(rel):
    d = doc(rel)
    assert d.kind == "10-K"
    for item in ("item_1", "item_1a", "item_7", "item_7a", "item_8"):
        assert d.section(item) is not None, f"{rel}: {item} missing"
    starts = [d.section(k).start for k in ("item_1", "item_1a", "item_7", "item_7a", "item_8")]
    assert starts == sorted(starts)
    if "ibm-" in rel:  # IBM's 10-K incorporates its statements by reference (Exhibit 13): say so
        assert any("not found" in w and "incorporated by reference" in w for w in d.warnings)
        return
    for kind in STATEMENT_KINDS:
        (t,) = d.tables_of_kind(kind)
        assert t.page > d.section("item_1").page_start  # not the TOC; PepsiCo prints them before Item 8 ("see Item 15")
        assert len(t.periods) >= 2 and all(re.search(r"(19|20)\d\d", p) for p in t.periods), t.periods
        assert list(t.df.columns) == t.periods and t.scale in (1e3, 1e6)
        assert t.df.shape[0] >= 10 and t.df.notna().to_numpy().mean() > 0.8
    bs = d.tables_of_kind("balance_sheet")[0]
    ta = row_value(bs, r"^total\s+assets", 0)
    tle = row_value(bs, r"^total\s+liabilities\s+and\s+(?:stock|share)holders", 0) or row_value(bs, r"^total\s+liabilities\s+and", 0)
    assert ta and tle and abs(ta - tle) < 0.001 * ta  # the balance sheet balances


def test_statement_values_3m_and_apple():
    d = doc("finance/3M_2018_10K.pdf")
    inc, bs = d.tables_of_kind("income_statement")[0], d.tables_of_kind("balance_sheet")[0]
    assert inc.periods == ["2018", "2017", "2016"] and inc.page == 56
    assert row_value(inc, r"^net sales", "2018") == 32_765e6
    assert row_value(inc, r"per share.*diluted", "2017") == 7.93
    assert row_value(bs, r"^total assets", 0) == 36_500e6
    assert bs.periods == ["December 31, 2018", "December 31, 2017"]
    assert d.text[inc.start : inc.end].startswith("Net sales $ 32,765") and d.page_at(inc.end) == 56  # text span for citations
    amzn = doc("finance/AMAZON_2017_10K.pdf").tables_of_kind("income_statement")[0]
    assert amzn.periods == ["2015", "2016", "2017"] and latest_period(amzn) == "2017"
    assert row_value(amzn, r"^total net sales", latest_period(amzn)) == 177_866e6
    a = doc("finance/aapl-10-k-2024-11-01.html")
    inc = a.tables_of_kind("income_statement")[0]
    assert inc.periods[0] == "September 28, 2024" and row_value(inc, r"^total net sales", 0) == 391_035e6
    q = doc("finance/BESTBUY_2024Q2_10Q.pdf")
    assert q.kind == "10-Q"
    assert q.tables_of_kind("income_statement")[0].periods[:2] == ["Three Months Ended July 29, 2023", "Three Months Ended July 30, 2022"]


def test_xbrl_facts_apple():
    x = doc("finance/aapl-10-k-2024-11-01.html").xbrl
    assert len(x) > 1000
    ni = x[(x.concept == "us-gaap:NetIncomeLoss") & (x.period_end == "2024-09-28") & (x.dimensions == "")]
    assert set(ni.value) == {93_736e6} and 31 in set(ni.page)
    eps = x[(x.concept == "us-gaap:EarningsPerShareDiluted") & (x.period_end == "2024-09-28")]
    assert set(eps.value) == {6.08} and set(eps.unit) == {"USD/shares"}
    assert (x[x.sign == -1].value < 0).all()
    seg = x[x.dimensions.str.contains("StatementBusinessSegmentsAxis", na=False)]
    assert len(seg) > 0


def test_pdf_pages_clean():
    d = doc("finance/3M_2018_10K.pdf")
    assert d.n_pages == 160
    assert all(not d.page_text(n).startswith("Table of Contents") for n in range(2, 20))
    assert [d.pages[n - 1].label for n in (4, 56, 128)] == ["4", "56", "128"]
    assert "\ufffe" not in d.text
    hits = d.locate("Net sales $ 32,765", page=56)
    assert hits and hits[0].page == 56


@pytest.mark.parametrize("rel", CONTRACTS)
def test_contract_pdfs_load_with_outline(rel):
    d = doc(rel)
    assert d.kind == "contract"
    assert d.outline.missing == [], d.outline.missing
    assert len([s for s in d.sections if s.kind in ("article", "section")]) >= 5


def test_contract_outlines_pinned():
    d = doc(next(r for r in CONTRACTS if "MEDALIST" in r))
    assert d.metadata.title == "CONSULTING AGREEMENT"
    assert d.metadata.parties == ["Gunston Consulting", "Medalist Diversified REIT"]
    top = [(s.number, s.page_start) for s in d.sections if s.kind == "section" and s.level == 1]
    assert [n for n, _ in top] == [str(i) for i in range(1, 10)]
    assert d.section("signature").page_start == 7
    b = doc(next(r for r in CONTRACTS if "BABCOCK" in r))
    arts = [s.number for s in b.sections if s.kind == "article"]
    assert arts == ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"]
    assert b.section("article").page_start == 5  # after the 4-page table of contents
    assert b.metadata.parties == ["THE BABCOCK & WILCOX COMPANY", "BABCOCK & WILCOX ENTERPRISES"]
    parties = {k: doc(next(r for r in CONTRACTS if k in r)).metadata.parties for k in ("Ehave", "PapaJohns", "TomOnline", "Playboy")}
    assert parties["Ehave"] == ["EHAVE", "COMPANION HEALTHCARE TECHNOLOGIES CORP"]  # '(“Ehave”); - and - COMPANION ...'
    assert parties["PapaJohns"] == ["ABG-Shaq", "Papa John’s Marketing Fund"]  # 'and, on the other hand, ...'
    assert parties["TomOnline"][:2] == ["Skype Communications", "Skype Technologies"] and len(parties["TomOnline"]) == 5
    assert parties["Playboy"] == ["eFashion Solutions", "Playboy.com"]
    z = doc(next(r for r in CONTRACTS if "Zogenix" in r))
    assert z.section("preamble").page_start == 6 and z.section("recitals").page_start == 6


@pytest.mark.parametrize("rel", PAPERS)
def test_paper_pdfs_load_with_outline(rel):
    d = doc(rel)
    assert d.kind == "paper"
    assert d.metadata.title and len(d.metadata.title) > 20
    found = {s.kind for s in d.sections}
    assert {"abstract", "introduction", "methods", "references"} <= found, found
    assert set(d.outline.missing) <= {"results"}  # a study protocol has no results yet


def test_paper_outlines_pinned():
    d = doc(next(r for r in PAPERS if "stopadvisor" in r))
    assert d.metadata.title.startswith("Internet-based intervention for smoking cessation (StopAdvisor)")
    assert d.metadata.authors[:2] == ["Jamie Brown", "Susan Michie"]
    pages = {s.kind: s.page_start for s in d.sections}
    assert pages["introduction"] == 1 and pages["methods"] == 2 and pages["results"] == 5 and pages["references"] == 9
    fields = [s.kind for s in d.sections if s.kind.startswith("abstract_")]
    assert fields[:4] == ["abstract_background", "abstract_methods", "abstract_results", "abstract_conclusions"]
    p = doc(next(r for r in PAPERS if "protocol_trials" in r))
    assert p.outline.missing == ["results"]
    h = doc(next(r for r in PAPERS if "HPV_breast" in r))
    assert any("order looks wrong" in pr for pr in h.outline.problems)  # BMC puts Methods at the end: reported


def test_json_round_trip_real_10k(cli, tmp_path):
    rel = "finance/NETFLIX_2017_10K.pdf"
    out = tmp_path / "nflx.json"
    r = cli("ingest", CORPUS / rel, "--json", "--out", out)
    assert r.exit_code == 0
    back = Document.from_json(Path(out))
    d = doc(rel)
    assert back.text == d.text and back.pages == d.pages and back.sections == d.sections
    assert [t.kind for t in back.tables] == [t.kind for t in d.tables]
    assert back.tables[0].df.equals(d.tables[0].df)
    assert json.loads(out.read_text())["metadata"]["kind"] == "10-K"


@pytest.mark.slow
def test_summary_shows_outline_and_statements(cli):
    r = cli("ingest", CORPUS / "finance/MICROSOFT_2023_10K.pdf")
    assert r.exit_code == 0
    for want in ("10-K", "MICROSOFT", "item_7a", "income_statement", "Outline"):
        assert want in r.stdout


def test_10q_parts_and_items():
    d = doc("finance/BESTBUY_2024Q2_10Q.pdf")
    got = [(s.kind, s.page_start) for s in d.sections]
    assert got == [("item_1", 3), ("item_2", 14), ("item_3", 24), ("item_4", 24), ("part2_item_1", 24),
                   ("part2_item_2", 25), ("part2_item_5", 25), ("part2_item_6", 25)]  # fmt: skip
    assert d.outline.ok


@pytest.mark.slow
def test_kind_sniffing_on_text_sets():
    trials = _glob("bio/trials_txt", "*.txt")
    assert all(load_document(CORPUS / t).kind == "paper" for t in trials)
    contracts = _glob("legal/contracts_txt", "*.txt")[:60]
    kinds = [load_document(CORPUS / c).kind for c in contracts]
    assert kinds.count("contract") >= 0.9 * len(kinds)


def test_pdfplumber_only_opens_statement_pages(monkeypatch):
    """pdfplumber is slow (~0.5 s a page): it must only ever see the statement pages the text pointed at."""
    import pdfplumber

    calls = []
    real_open = pdfplumber.open

    def spy(*args, **kw):
        calls.append(kw.get("pages"))
        return real_open(*args, **kw)

    monkeypatch.setattr(pdfplumber, "open", spy)
    d = load_document(CORPUS / "finance/NETFLIX_2017_10K.pdf")
    assert calls == [[42, 44, 45]]
    assert sorted(t.page for t in d.tables if t.kind) == [42, 44, 45]
    calls.clear()
    load_document(CORPUS / next(r for r in CONTRACTS if "MEDALIST" in r))
    assert calls == []  # no statements, no pdfplumber


FIRST_AUTHORS = {  # read off each paper's first page
    "crossover": "Pempa Lhakhang", "longitudinal": "Fariha Khalid", "metaanalysis_bmccancer": "Feifei Yu",
    "metaanalysis_infect": "Jong-Myon Bae", "metaanalysis_pain": "Marta Seretny",
    "metaanalysis_revsaude": "Vivian Siqueira Santos Gonçalves", "pilot_bmccancer": "Anna L Hawkes",
    "prospective": "Neil B. Hampson", "protocol": "Alan J Forster", "rct_bmcpublichealth": "Tracy Epton",
    "rct_bmjopen": "Kirsten Corder", "rct_jmir": "Lucy Yardley", "rct_lancet": "Jamie Brown",
}  # fmt: skip


def test_paper_titles_and_first_authors():
    for rel in PAPERS:
        d = doc(rel)
        key = next(k for k in FIRST_AUTHORS if Path(rel).name.startswith(k))
        assert d.metadata.authors and d.metadata.authors[0] == FIRST_AUTHORS[key], rel
        assert not any(a in d.metadata.title for a in d.metadata.authors[:1]), rel  # the title stops before the authors
