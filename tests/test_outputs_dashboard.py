"""Batch dashboard (issue 21): its tables equal facts.csv, comparison.xlsx holds the same values, and a real headless
Chromium loads the dashboard and an HTML memo, clicks a citation and sees the page image with its highlight."""

from __future__ import annotations

import csv
import io
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from _chromium import Browser, find_chromium

DOCS = [("finance", "finance/3M_2018_10K.pdf"),
        ("legal", "legal/contracts_pdf/GpaqAcquisitionHoldingsInc_20200123_S-4A_EX-10.8_11951679_EX-10.8_Service Agreement.pdf"),
        ("bio", "bio/papers_pdf/metaanalysis_bmccancer2016_T2DM_colorectal_adenoma.pdf")]


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory):
    from typer.testing import CliRunner

    from m3analyst.cli import app
    from m3analyst.resources import corpus_dir

    paths = [(d, corpus_dir() / p) for d, p in DOCS]
    missing = [str(p) for _, p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"corpus documents not found: {missing[0]}")
    root = tmp_path_factory.mktemp("batch")
    manifest = root / "docs.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "domain"])
        w.writerows([[str(p), d] for d, p in paths])
    r = CliRunner().invoke(app, ["batch", str(manifest), "--out", str(root / "out"), "--model", "none", "--workers", "0",
                                 "--html"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "out"


class Cells(HTMLParser):
    """Every <td data-fact> of the tables, with its row's data-id / data-period, data-value and text."""

    def __init__(self):
        super().__init__()
        self.table, self.row, self.cell, self.cells = None, {}, None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
        elif tag == "tr":
            self.row = a
        elif tag == "td" and "data-fact" in a:
            self.cell = {"table": self.table, "id": self.row.get("data-id"), "period": self.row.get("data-period"),
                         "fact": a["data-fact"], "value": a.get("data-value"), "title": a.get("title"), "text": ""}
        elif tag == "span" and self.cell is not None:
            self.cell["text"] += "\x00"  # the page number follows

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.cell["shown"] = self.cell["text"].split("\x00")[0].strip()
            self.cells.append(self.cell)
            self.cell = None


def facts_csv(out: Path) -> dict[tuple, dict]:
    rows = {}
    with (out / "facts.csv").open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.setdefault((r["id"], r["fact"], r["period"]), r)
    return rows


def test_dashboard_tables_equal_facts_csv(batch_out):
    cells = Cells()
    cells.feed((batch_out / "index.html").read_text(encoding="utf-8"))
    facts = facts_csv(batch_out)
    peers = [c for c in cells.cells if c["table"] == "peers"]
    shown = [c for c in peers if c["value"] is not None]
    assert len(shown) >= 20
    for c in peers:
        f = facts.get((c["id"], c["fact"], c["period"]))
        if c["value"] is None:
            assert f is None and c["shown"] == "—", c
        else:
            assert float(c["value"]) == float(f["value"]) and c["shown"] == f["shown"], c
    clauses = [c for c in cells.cells if c["table"] == "clauses"]
    assert clauses and any(c["shown"] == "Yes" for c in clauses)
    for c in clauses:
        f = next((v for (i, name, _), v in facts.items() if i == c["id"] and name == c["fact"]), None)
        if f is None:
            assert c["shown"] == "—"
        else:
            assert c["shown"] == (f["shown"] if len(f["shown"]) <= 32 else "Yes"), c
    trials = [c for c in cells.cells if c["table"] == "trials"]
    assert any(c["fact"] == "sample_size" and c["shown"] for c in trials)


def test_bio_estimates_make_a_forest_plot(batch_out):
    html = (batch_out / "index.html").read_text(encoding="utf-8")
    # the meta-analysis's key result states risk ratios with 95 % CIs; each is drawn as "RR est [lo, hi]"
    assert '<svg class="forest"' in html and re.search(r"RR \d+(\.\d+)? \[\d+(\.\d+)?, \d+(\.\d+)?\]", html)


def test_comparison_xlsx_holds_the_same_values(batch_out):
    openpyxl = pytest.importorskip("openpyxl", reason="the [office] extra is not installed")
    wb = openpyxl.load_workbook(io.BytesIO((batch_out / "comparison.xlsx").read_bytes()))
    facts = facts_csv(batch_out)
    rows = list(wb["Finance peers"].iter_rows(values_only=True))
    head = rows[0]
    n = (len(head) - 2) // 2
    checked = 0
    for r in rows[1:]:
        for j in range(n):
            value, page = r[2 + j], r[2 + n + j]
            if value is None:
                continue
            label = head[2 + j].rsplit(" (", 1)[0]
            f = next(v for (i, _, p), v in facts.items() if i == r[0] and p == r[1] and v["label"] == label)
            assert value == pytest.approx(float(f["value"]), rel=1e-12) and str(page) == f["page"]  # xlsx keeps 15 digits
            checked += 1
    assert checked >= 20
    assert {"Legal clauses", "Bio effects"} <= set(wb.sheetnames)


def test_estimates_parse():
    from m3analyst.batch.compare import estimates

    got = estimates("Patients with existing T2DM (RR: 1.56; 95 % CI: 1.16–2.08) and a change of 0.338 mL, "
                    "95% confidence interval −9.66, 10.34")
    assert [(e["measure"], e["estimate"], e["lo"], e["hi"]) for e in got] == [("RR", 1.56, 1.16, 2.08),
                                                                              ("estimate", 0.338, -9.66, 10.34)]
    assert estimates("95% CI 1.2-0.8 for 2.0") == []


# ---- a real browser ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium where apt works)")
    b = Browser(binary)
    yield b
    b.close()


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_browser_opens_a_citation_page_with_its_highlight(batch_out, browser):
    memo = next((batch_out / "memos").glob("3M*.html"))
    browser.open(memo.as_uri())
    cid = browser.eval("document.querySelector('blockquote a.cite').getAttribute('href')")
    assert browser.eval(f"getComputedStyle(document.querySelector('{cid}')).display") == "none"
    browser.eval(f"document.querySelector('blockquote a.cite[href=\"{cid}\"]').click()")
    time.sleep(0.3)
    assert browser.eval("location.hash") == cid
    assert browser.eval(f"getComputedStyle(document.querySelector('{cid}')).display") == "block"
    page = browser.eval(f"(function(){{var r=document.querySelector('{cid} .pg').getBoundingClientRect();return [r.width,r.height]}})()")
    assert page[0] > 600 and page[1] > page[0]  # a portrait page, shown large
    url = browser.eval(f"getComputedStyle(document.querySelector('{cid} .pg')).backgroundImage")
    size = browser.eval("new Promise(function(ok){var i=new Image();i.onload=function(){ok([i.naturalWidth,i.naturalHeight])};"
                        f"i.onerror=function(){{ok(null)}};i.src={url[5:-2]!r};}})")
    assert size and size[0] >= 800, url[:80]  # the page image loaded (pypdfium2 render at 1.5x)
    mark = browser.eval(f"(function(){{var r=document.querySelector('{cid} mark').getBoundingClientRect();"
                        "return [r.left,r.top,r.width,r.height,window.innerWidth,window.innerHeight]})()")
    left, top, width, height, vw, vh = mark
    assert width > 50 and height > 5 and 0 <= top < vh and 0 <= left < vw  # highlight visible on screen
    png = browser.screenshot()
    assert _png_size(png) == (1280, 900) and len(png) > 50_000
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    box = img.crop((int(left) + 1, int(top) + 1, int(left + width) - 1, int(top + height) - 1))
    pixels = box.get_flattened_data() if hasattr(box, "get_flattened_data") else box.getdata()
    yellow = sum(1 for r, g, b in pixels if r > 150 and g > 120 and r - b > 60) / (box.width * box.height)
    assert yellow > 0.3, yellow  # the highlight is painted over the quoted words


def test_browser_dashboard_fits_1280_and_sorts(batch_out, browser):
    browser.open((batch_out / "index.html").as_uri())
    assert browser.eval("document.documentElement.scrollWidth") <= 1280
    tables = browser.eval("Array.from(document.querySelectorAll('table')).map(t=>[t.id,Math.round(t.getBoundingClientRect().right)])")
    assert all(right <= 1280 for _, right in tables), tables
    before = browser.eval("Array.from(document.querySelectorAll('#peers tbody tr')).map(r=>r.dataset.period)")
    browser.eval("document.querySelector('#peers th[data-fact=revenue]').click()")
    after = browser.eval("Array.from(document.querySelectorAll('#peers tbody tr td[data-fact=revenue]')).map(t=>parseFloat(t.dataset.value))")
    assert after == sorted(after) and len(before) == len(after)
    png = browser.screenshot()
    assert _png_size(png) == (1280, 900) and len(png) > 30_000
