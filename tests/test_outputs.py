"""Outputs (issue 21): citations that open the cited page with the quote highlighted, --format md|html|json|xlsx|
docx|pdf, templates, quote repair and charts. Model-free (--model none) on the 3M 10-K."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from m3analyst.memo.textfix import Vocabulary, repair

MEMO_FILE = "finance/3M_2018_10K.pdf"
_MARK = re.compile(r'left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%')


@pytest.fixture(scope="module")
def memo_and_doc():
    from m3analyst.ingest import load_document
    from m3analyst.memo import write_memo
    from m3analyst.resources import corpus_dir
    from m3analyst.settings import Settings

    path = corpus_dir() / MEMO_FILE
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared corpus is absent)")
    settings = Settings()
    settings.engine.model = "none"
    doc = load_document(path)
    return write_memo(doc, "finance", settings, engine=None), doc


@pytest.fixture(scope="module")
def memo_html(memo_and_doc, tmp_path_factory):
    from m3analyst.memo.render_html import render_html

    memo, doc = memo_and_doc
    out = tmp_path_factory.mktemp("html") / "memo.html"
    out.write_text(render_html(memo, doc, out_file=out), encoding="utf-8")
    return out


def overlays(html: str) -> dict[str, dict]:
    """The page overlays of a rendered memo: id -> page, quote kind, highlight boxes (page fractions)."""
    found = {}
    for m in re.finditer(r'<section class="pv" id="(c\d+)" aria-label="page (\d+)">(.*?)</section>', html, re.S):
        boxes = [[float(x) / 100 for x in b] for b in _MARK.findall(m.group(3))]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in boxes]
        found[m.group(1)] = {"page": int(m.group(2)), "boxes": boxes, "body": m.group(3)}
    return found


def plumber_words_in(pdf_path: Path, page: int, boxes: list[list[float]]) -> list[str]:
    """pdfplumber's words (an independent reading of the page) whose centres fall in any highlight box."""
    import pdfplumber

    with pdfplumber.open(str(pdf_path)) as pdf:
        pg = pdf.pages[page - 1]
        words = pg.extract_words()
        w, h = float(pg.width), float(pg.height)
    picked = []
    for x in words:
        cx, cy = (x["x0"] + x["x1"]) / 2 / w, (x["top"] + x["bottom"]) / 2 / h
        if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes):
            picked.append(x["text"])
    return picked


def letters(text: str) -> str:
    import unicodedata

    return re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKC", text).lower())


def test_every_citation_is_a_link_to_a_page_image(memo_html):
    html = memo_html.read_text(encoding="utf-8")
    links = re.findall(r'<a class="cite" href="#(c\d+)" data-page="(\d+)"', html)
    assert len(links) >= 20
    views = overlays(html)
    assert {c for c, _ in links} == set(views)
    for cid, page in links:
        assert views[cid]["page"] == int(page)
        assert f"pg{page}" in views[cid]["body"]
        css = re.search(rf'\.pg{page}\{{[^}}]*url\("([^"]+)"\)', html)
        assert css, f"no page image for p.{page}"
        assert (memo_html.parent / css.group(1)).is_file()
    assert "[p." not in re.sub(r'<a class="cite"[^>]*>\[p\.\d+\]</a>', "", html.split('<section class="pv"')[0]).split("<h2>Appendix")[0]


def test_highlights_cover_the_quoted_words(memo_and_doc, memo_html):
    """Each quote's highlight, read back through pdfplumber's words, is the quote: its words, in order, and little else."""
    memo, doc = memo_and_doc
    html = memo_html.read_text(encoding="utf-8")
    views = overlays(html)
    quotes = [(q.page, q.text) for s in memo.sections for q in s.quotes]
    assert len(quotes) >= 6
    for page, text in quotes:
        cid, view = next((c, v) for c, v in views.items() if v["page"] == page and v["boxes"] and
                         letters(text)[:40] in letters(re.sub(r"<[^>]+>", "", v["body"])))
        assert f'<a class="cite" href="#{cid}"' in html
        got = letters("".join(plumber_words_in(Path(memo.document["source"]), page, view["boxes"])))
        want = letters(text)
        from difflib import SequenceMatcher

        same = sum(b.size for b in SequenceMatcher(None, got, want, autojunk=False).get_matching_blocks())
        assert same / len(want) >= 0.97, (page, text[:60])  # ligatures: pdfium "af ected", pdfplumber "affected"
        assert len(got) <= len(want) * 1.05 + 10, (page, text[:60])


def test_fact_rows_highlight_the_value(memo_and_doc, memo_html):
    memo, _ = memo_and_doc
    html = memo_html.read_text(encoding="utf-8")
    revenue = next(f for f in memo.facts if f.name == "revenue")
    row = re.search(r"<tr><td>Revenue</td>.*?href=\"#(c\d+)\"", html).group(1)
    view = overlays(html)[row]
    strong = [[float(x) / 100 for x in b] for b in _MARK.findall(view["body"].split('class="hl strong"', 1)[1])]
    strong = [[x, y, x + w, y + h] for x, y, w, h in strong]
    words = plumber_words_in(Path(memo.document["source"]), revenue.page, strong)
    assert f"{revenue.value / revenue.scale:,.0f}" in words


def test_repair_joins_only_proven_words():
    vocab = Vocabulary("liquidity liquidity affected affected affect post retirement post retirement postretirement "
                       "postretirement postretirement manufacturing manufacturing office office the post and the retirement")
    assert repair("FINANCIAL CONDITION AND LIQUIDI TY", vocab) == "FINANCIAL CONDITION AND LIQUIDITY"
    assert repair("results are af ected by", vocab) == "results are affected by"
    assert repair("manu- facturing and of ce", vocab) == "manufacturing and office"
    assert repair("post retirement plans", vocab) == "post retirement plans"  # two real words stay apart
    assert repair("an af ected word", Vocabulary()) == "an af ected word"  # nothing proven, nothing changed


def test_quotes_shown_repaired(memo_and_doc, memo_html):
    """Every quote and claim the memo shows is shown with its proven split words joined (and nothing else changed)."""
    from html import escape

    memo, doc = memo_and_doc
    html = memo_html.read_text(encoding="utf-8")
    vocab = Vocabulary(doc.text)
    texts = [q.text for s in memo.sections for q in s.quotes] + [f.claim.split(" [p.")[0] for f in memo.findings]
    fixed = [t for t in texts if repair(t, vocab) != t]
    for t in texts:
        assert escape(repair(t, vocab), quote=True)[:120] in html, t[:60]
    assert fixed  # the 3M 10-K's text layer splits words ("ef ects", "af ected"): the memo shows them whole


def test_xlsx_reproduces_every_fact_value_and_page(memo_and_doc):
    openpyxl = pytest.importorskip("openpyxl", reason="the [office] extra is not installed")
    import io

    from m3analyst.memo.export_xlsx import memo_xlsx

    memo, doc = memo_and_doc
    wb = openpyxl.load_workbook(io.BytesIO(memo_xlsx(memo)))
    rows = list(wb["Facts"].iter_rows(values_only=True))
    head = rows[0]
    got = [dict(zip(head, r)) for r in rows[1:]]
    assert len(got) == len(memo.facts)
    for f, r in zip(memo.facts, got):
        assert (r["fact"], r["period"], r["page"]) == (f.name, f.period, f.page)
        assert r["value"] == pytest.approx(f.value) if isinstance(f.value, float) else r["value"] == f.value
    income = list(wb["Income statement"].iter_rows(values_only=True))
    periods = income[0][1::2]
    for line in income[1:]:
        fact = next(f for f in memo.facts if f.title == line[0] and not f.derived)
        for i, period in enumerate(periods):
            f = next((x for x in memo.facts if x.name == fact.name and x.period == period), None)
            value, page = line[1 + 2 * i], line[2 + 2 * i]
            assert (value, page) == ((None, None) if f is None else (pytest.approx(f.value), f.page))
    assert set(wb.sheetnames) >= {"Income statement", "Balance sheet", "Cash flow", "Facts", "Findings", "Quotes"}


def test_docx_carries_the_citations(memo_and_doc):
    docx = pytest.importorskip("docx", reason="the [office] extra is not installed")
    import io

    from m3analyst.memo.export_docx import memo_docx

    memo, _ = memo_and_doc
    d = docx.Document(io.BytesIO(memo_docx(memo)))
    text = "\n".join(p.text for p in d.paragraphs)
    for s in memo.sections:
        for q in s.quotes:
            assert f"[p.{q.page}]" in text
    assert "Citations" in text and d.tables and "[p.56]" in d.tables[0].rows[1].cells[-1].text


def test_format_options(cli, tmp_path):
    r = cli("finance", "nothing.pdf", "--format", "xlsx")
    assert r.exit_code == 2 and "--out" in r.stderr and "Traceback" not in r.stderr
    r = cli("finance", "nothing.pdf", "--format", "rtf", "--out", tmp_path / "m")
    assert r.exit_code == 2 and "rtf" in r.stderr
    from m3analyst.memo.outputs import parse_formats, targets

    assert parse_formats(["html,xlsx", "pdf", "html"]) == ["html", "xlsx", "pdf"]
    assert targets(["html", "xlsx"], tmp_path / "memo.html") == {"html": tmp_path / "memo.html",
                                                                  "xlsx": tmp_path / "memo.xlsx"}


def test_missing_extra_is_one_line(monkeypatch):
    import sys

    from m3analyst.errors import UsageError
    from m3analyst.memo.export_xlsx import require

    monkeypatch.setitem(sys.modules, "openpyxl", None)  # what an install without the extra sees
    with pytest.raises(UsageError, match=r"pip install 'm3analyst\[office\]'"):
        require("openpyxl", "xlsx")


def test_template_override(memo_and_doc, tmp_path):
    from m3analyst.memo.render_html import render_html

    memo, doc = memo_and_doc
    (tmp_path / "memo.css.j2").write_text("<style>body{color:#123456}</style>", encoding="utf-8")
    html = render_html(memo, doc, template_dir=tmp_path)
    assert "#123456" in html and 'class="cite"' in html
    (tmp_path / "memo.html.j2").write_text("{{ title }} {{ nope.x }}", encoding="utf-8")
    from m3analyst.errors import InputError

    with pytest.raises(InputError, match="template error"):
        render_html(memo, doc, template_dir=tmp_path)


def test_charts_never_draw_missing_as_zero():
    from m3analyst.memo import charts

    drawn = []
    series = {"Revenue": {"2017": 10.0, "2018": None}, "Margin": {"2017": None, "2018": 0.0}}
    png = charts.grouped_bars(series, ["2017", "2018"], "x", lambda v: f"{v:.1f}", on_bars=drawn.append)
    assert png and png.startswith(b"\x89PNG")
    assert [(name, list(xs), list(ys), labels) for name, xs, ys, labels in drawn] == [
        ("Revenue", [0.0], [10.0], ["10.0"]), ("Margin", [1.4], [0.0], ["0.0"])]
    assert charts.grouped_bars({"A": {"2018": None}}, ["2018"], "x", str) is None


def test_roa_prints_as_a_percentage(memo_and_doc):
    memo, _ = memo_and_doc
    roa = next(f for f in memo.facts if f.name == "roa")
    assert roa.unit == "%" and roa.display().endswith("%") and 1 < roa.value < 100


def test_edgar_html_citations_link_to_marked_elements_of_a_local_copy(tmp_path):
    """An EDGAR iXBRL filing's citations open a local copy of the filing at the cited element, highlighted."""
    from m3analyst.ingest import load_document
    from m3analyst.memo import write_memo
    from m3analyst.memo.highlight import norm_token
    from m3analyst.memo.render_html import render_html
    from m3analyst.resources import corpus_dir
    from m3analyst.settings import Settings

    path = corpus_dir() / "finance/aapl-10-k-2024-11-01.html"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    settings = Settings()
    settings.engine.model = "none"
    doc = load_document(path)
    memo = write_memo(doc, "finance", settings, engine=None)
    out = tmp_path / "aapl.html"
    html = render_html(memo, doc, out_file=out)
    links = re.findall(r'<a class="cite" href="aapl_pages/filing\.xhtml#([\w-]+)"[^>]*title="([^"]*)"', html)
    assert len(links) >= 30
    from lxml import etree

    root = etree.parse(str(tmp_path / "aapl_pages" / "filing.xhtml"))
    marked = norm_token(" ".join("".join(e.itertext()) for e in root.xpath('//*[contains(@class, "m3hl")]')))
    for anchor, title in links:
        el = root.xpath(f'//*[@id="{anchor}"]')
        assert el and "m3hl" in el[0].get("class"), anchor
        want = norm_token(title.replace("&amp;", "&").replace("&#39;", "'").replace("&quot;", '"'))
        assert norm_token("".join(el[0].itertext()))[:20] in want or want[:20] in norm_token("".join(el[0].itertext()))
        assert want[:150] in marked, (anchor, title[:60])  # the cited words are all highlighted
    quotes = [q for s in memo.sections for q in s.quotes]
    assert quotes and all(f"“{q.text[:20]}" in html.replace("&#39;", "'").replace("&amp;", "&") for q in quotes[:3])


def test_ratios_and_percentages_print_consistently(memo_and_doc):
    memo, _ = memo_and_doc
    for f in memo.facts:
        if f.unit == "%":
            assert re.fullmatch(r"-?\d[\d,]*\.\d%", f.display()), f
        elif f.unit == "ratio":
            assert re.fullmatch(r"-?\d[\d,]*\.\d\d", f.display()), f
