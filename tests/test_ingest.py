"""Ingestion without the corpus: bad inputs through the CLI, loaders on small made-up documents."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from m3analyst.errors import InputError
from m3analyst.ingest import Document, load_document
from m3analyst.ingest.pagelayout import clean_pages
from m3analyst.ingest.statements import parse_number, row_value, scale_of, statement_kind_of_title


# ---- fixtures made in-test --------------------------------------------------------------------
def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A minimal PDF with a correct xref table from raw object bodies (object i+1 = objects[i])."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (i, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer_extra, xref))
    return out.getvalue()


_PAGE_TREE = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
]


def encrypted_pdf() -> bytes:
    """Standard security handler (RC4, R2) whose user password is not empty: cannot be opened."""
    encrypt = b"<< /Filter /Standard /V 1 /R 2 /O <" + b"ab" * 32 + b"> /U <" + b"cd" * 32 + b"> /P -44 >>"
    ids = b"/Encrypt 4 0 R /ID [<" + b"01" * 16 + b"> <" + b"01" * 16 + b">] "
    return _pdf(_PAGE_TREE + [encrypt], ids)


def _matplotlib_pdf(draw) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3, 3))
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    plt.close(fig)
    return buf.getvalue()


def scanned_pdf() -> bytes:
    """One page holding only a raster image (what a scanner produces): no text layer."""
    pixels = np.random.default_rng(0).integers(0, 255, (120, 120, 3)).astype(np.uint8)
    return _matplotlib_pdf(lambda fig: fig.figimage(pixels))


def text_pdf() -> bytes:
    return _matplotlib_pdf(lambda fig: fig.text(0.05, 0.5, "Quarterly results were strong this year."))


# ---- bad inputs: one line naming the file, exit code 2, no traceback --------------------------
BAD_INPUTS = {
    "zero_byte": (lambda p: p.write_bytes(b""), "file is empty"),
    "truncated_pdf": (lambda p: p.write_bytes(text_pdf()[:1500]), "PDF is corrupt or truncated"),
    "corrupt_pdf": (lambda p: p.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4), "PDF is corrupt or truncated"),
    "encrypted_pdf": (lambda p: p.write_bytes(encrypted_pdf()), "PDF is encrypted"),
    "scanned_pdf": (lambda p: p.write_bytes(scanned_pdf()), "PDF has no text layer"),
    "binary_junk": (lambda p: p.write_bytes(bytes(range(256)) * 8), "binary data"),
    "latin1_text": (lambda p: p.write_bytes("Café contract, signé à Paris\n".encode("latin-1")), "text is not valid UTF-8 (byte 0xe9 at offset 3)"),
    "html_no_body": (lambda p: p.write_bytes(b"<html><head><title>x</title></head></html>"), "HTML has no body text"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clean_line(cli, tmp_path, case):
    make, problem = BAD_INPUTS[case]
    path = tmp_path / f"{case}.bin"
    make(path)
    r = cli("ingest", path)
    assert r.exit_code == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert f"{path}: {problem}" in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_scanned_pdf_suggests_ocr(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pdf())
    with pytest.raises(InputError) as e:
        load_document(path)
    assert "ocr" in str(e.value).lower()


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_missing_path_and_directory(cli, tmp_path, kind):
    path = tmp_path / "nope.pdf" if kind == "missing" else tmp_path
    r = cli("ingest", path)
    assert r.exit_code == 2
    expected = "no such file" if kind == "missing" else "is a directory"
    assert f"{path}: {expected}" in r.stderr and "Traceback" not in r.stderr


def test_debug_flag_shows_traceback(cli, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(InputError):
        cli("--debug", "ingest", path)


def test_text_pdf_loads_with_page(tmp_path):
    path = tmp_path / "one.pdf"
    path.write_bytes(text_pdf())
    doc = load_document(path)
    assert doc.n_pages == 1 and "Quarterly results" in doc.text
    assert doc.locate("results were strong")[0].page == 1


# ---- page clean-up ------------------------------------------------------------------------------
def test_running_headers_footers_and_page_labels_are_stripped():
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    pages = [
        f"Table of Contents\nACME CORP\nBody text of page {w} about widgets.\n{w.title()} sales grew.\nNotes on {w}.\n{i + 10}"
        for i, w in enumerate(words)
    ]
    pages[3] = pages[3].replace("widgets", "manage-\nment decisions")
    clean = clean_pages(pages)
    assert clean.labels == [str(i + 10) for i in range(8)]
    assert all(not t.startswith("Table of Contents") and not t.rstrip().endswith(str(i + 10)) for i, t in enumerate(clean.texts))
    assert "about management\ndecisions" in clean.texts[3]  # the word is re-joined, the line break moves after it
    assert clean.texts[0].startswith("Body text of page alpha") and clean.texts[0].endswith("Notes on alpha.")


def test_footer_with_form_name_gives_label():
    topics = ["revenue", "costs", "margins", "cash", "debt", "equity"]
    pages = [f"Discussion of {t}.\nThe {t} changed.\n2021 FORM 10-K {i + 1}" for i, t in enumerate(topics)]
    clean = clean_pages(pages)
    assert clean.labels == [str(i + 1) for i in range(6)]
    assert "FORM 10-K" not in clean.texts[2]


# ---- statements helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "token,value",
    [("5,363", 5363.0), ("(547)", -547.0), ("—", 0.0), ("$1,234.5", 1234.5), ("5)", None), ("abc", None), ("(409", -409.0)],
)
def test_parse_number(token, value):
    assert parse_number(token) == value


def test_statement_titles_and_scale():
    assert statement_kind_of_title("Consolidated Statement of Incom e") == "income_statement"
    assert statement_kind_of_title("CONSOLIDATED BALANCE SHEETS") == "balance_sheet"
    assert statement_kind_of_title("CASH FLOWS STATEMENTS") == "cash_flow"
    assert statement_kind_of_title("Consolidated Statements of Comprehensive Income") is None
    assert statement_kind_of_title("Consolidated Statements of Income 56") is None  # a TOC line
    assert scale_of("(In millions, except per share amounts)") == 1e6
    assert scale_of("(in thousands)") == 1e3 and scale_of("Total") == 1.0


# ---- EDGAR HTML / iXBRL on a small made-up filing -------------------------------------------------
EDGAR_HTML = """<?xml version='1.0' encoding='UTF-8'?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"
 xmlns:xbrli="http://www.xbrl.org/2003/instance" xmlns:xbrldi="http://xbrl.org/2006/xbrldi"><head><title>acme</title></head><body>
<div style="display:none"><ix:header><ix:hidden>
<ix:nonNumeric name="dei:DocumentType" contextRef="c-1">10-K</ix:nonNumeric>
<ix:nonNumeric name="dei:EntityRegistrantName" contextRef="c-1">Acme Widgets Inc.</ix:nonNumeric>
</ix:hidden><ix:resources>
<xbrli:context id="c-1"><xbrli:entity><xbrli:identifier scheme="x">1</xbrli:identifier></xbrli:entity>
<xbrli:period><xbrli:startDate>2024-01-01</xbrli:startDate><xbrli:endDate>2024-12-31</xbrli:endDate></xbrli:period></xbrli:context>
<xbrli:context id="c-2"><xbrli:entity><xbrli:identifier scheme="x">1</xbrli:identifier>
<xbrli:segment><xbrldi:explicitMember dimension="us-gaap:StatementBusinessSegmentsAxis">acme:GadgetsMember</xbrldi:explicitMember></xbrli:segment></xbrli:entity>
<xbrli:period><xbrli:instant>2024-12-31</xbrli:instant></xbrli:period></xbrli:context>
<xbrli:unit id="usd"><xbrli:measure>iso4217:USD</xbrli:measure></xbrli:unit>
</ix:resources></ix:header></div>
<div>ACME WIDGETS INC. FORM 10-K ANNUAL REPORT PURSUANT TO SECTION 13</div>
<div>Item 8. Financial Statements and Supplementary Data 2</div>
<div>1</div>
<hr style="page-break-after:always"/>
<div>Item 8. Financial Statements and Supplementary Data</div>
<div>CONSOLIDATED STATEMENTS OF OPERATIONS</div><div>(In millions, except per-share amounts)</div>
<table>
<tr><td></td><td colspan="3">Years ended</td></tr>
<tr><td></td><td colspan="2">December 31, 2024</td><td colspan="2">December 31, 2023</td></tr>
<tr><td>Net sales</td><td>$</td><td><ix:nonFraction name="us-gaap:Revenues" contextRef="c-1" unitRef="usd" scale="6" decimals="-6" format="ixt:num-dot-decimal">1,250</ix:nonFraction></td><td>$</td><td>1,100</td></tr>
<tr><td>Other expense</td><td></td><td>(<ix:nonFraction name="us-gaap:OtherExpense" contextRef="c-1" unitRef="usd" scale="6" sign="-" decimals="-6">30</ix:nonFraction>)</td><td></td><td>—</td></tr>
<tr><td>Net income</td><td></td><td>200</td><td></td><td>150</td></tr>
<tr><td>Diluted earnings per share</td><td>$</td><td>2.50</td><td>$</td><td>1.90</td></tr>
</table>
<div>Segment assets <ix:nonFraction name="us-gaap:Assets" contextRef="c-2" unitRef="usd" scale="3" decimals="-3">7</ix:nonFraction></div>
<div>2</div>
</body></html>"""


@pytest.fixture(scope="module")
def edgar_doc(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "acme.htm"
    path.write_text(EDGAR_HTML, encoding="utf-8")
    return load_document(path)


def test_html_pages_text_and_hidden_header(edgar_doc):
    doc = edgar_doc
    assert doc.metadata.kind == "10-K" and doc.metadata.company == "Acme Widgets Inc."
    assert doc.n_pages == 2 and [p.label for p in doc.pages] == ["1", "2"]
    assert "10-K" not in doc.text.split("\n")[0] or "ACME" in doc.text  # hidden ix:header text is not visible text
    assert "Acme Widgets Inc." not in doc.text
    assert doc.section("item_8").page_start == 2  # the TOC line on page 1 is not the heading


def test_html_statement_table(edgar_doc):
    (t,) = edgar_doc.tables_of_kind("income_statement")
    assert t.page == 2 and t.scale == 1e6
    assert t.periods == ["December 31, 2024", "December 31, 2023"]
    assert t.df.loc["Net sales"].tolist() == [1250.0, 1100.0]
    assert t.df.loc["Other expense"].tolist() == [-30.0, 0.0]
    assert row_value(t, r"net sales", 0) == 1.25e9
    assert row_value(t, r"diluted", 1) == 1.90  # per-share rows are not scaled


def test_html_xbrl_facts(edgar_doc):
    x = edgar_doc.xbrl.set_index("concept")
    assert x.loc["us-gaap:Revenues", "value"] == 1.25e9 and x.loc["us-gaap:Revenues", "page"] == 2
    assert x.loc["us-gaap:Revenues", "period_end"] == "2024-12-31" and x.loc["us-gaap:Revenues", "unit"] == "USD"
    assert x.loc["us-gaap:OtherExpense", "value"] == -30e6 and x.loc["us-gaap:OtherExpense", "sign"] == -1
    assert x.loc["us-gaap:Assets", "value"] == 7000.0 and x.loc["us-gaap:Assets", "instant"] == "2024-12-31"
    assert x.loc["us-gaap:Assets", "dimensions"] == "us-gaap:StatementBusinessSegmentsAxis=acme:GadgetsMember"
    assert pd_isna(x.loc["dei:DocumentType", "page"])  # hidden facts have no page


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_json_round_trip_keeps_tables_and_xbrl(edgar_doc):
    back = Document.from_json(edgar_doc.to_json())
    assert back.text == edgar_doc.text and back.pages == edgar_doc.pages and back.sections == edgar_doc.sections
    (t,) = back.tables_of_kind("income_statement")
    assert t.df.loc["Net sales"].tolist() == [1250.0, 1100.0] and t.periods == ["December 31, 2024", "December 31, 2023"]
    assert len(back.xbrl) == len(edgar_doc.xbrl)


# ---- text / Markdown / contracts ------------------------------------------------------------------
CONTRACT = """SERVICES AGREEMENT

This SERVICES AGREEMENT (the "Agreement") is made as of March 1, 2020 by and between Alpha Tools, Inc., a Delaware
corporation ("Alpha"), and Beta Works LLC, a Texas limited liability company ("Beta").

RECITALS
WHEREAS, Alpha wishes to engage Beta.
NOW, THEREFORE, the parties agree as follows:

ARTICLE I DEFINITIONS
1.1 Defined Terms. Capitalised terms have the meanings below.
(a) "Services" means the services.
ARTICLE II SERVICES
2.1 Scope. Beta shall perform the Services.
2.2 Fees. Alpha shall pay the fees.
IN WITNESS WHEREOF, the parties have signed this Agreement.
By: ____ Name: A. Person
EXHIBIT A
Statement of Work
"""


def test_contract_outline_and_parties(tmp_path):
    path = tmp_path / "contract.txt"
    path.write_text(CONTRACT, encoding="utf-8")
    doc = load_document(path)
    assert doc.kind == "contract"
    assert doc.metadata.parties == ["Alpha Tools", "Beta Works LLC"]
    kinds = [(s.kind, s.number) for s in doc.sections]
    for want in [("title", None), ("preamble", None), ("recitals", None), ("article", "I"), ("section", "1.1"),
                 ("clause", "(a)"), ("article", "II"), ("section", "2.2"), ("signature", None), ("exhibit", "A")]:  # fmt: skip
        assert want in kinds
    art2 = next(s for s in doc.sections if s.kind == "article" and s.number == "II")
    assert "2.2 Fees" in doc.section_text(art2) and "IN WITNESS" not in doc.section_text(art2)
    assert doc.outline.missing == []


def test_markdown_headings_and_offsets(tmp_path):
    text = "# Notes\n\nIntro line.\n\n## Findings\nThe result.\n"
    path = tmp_path / "notes.md"
    path.write_text(text, encoding="utf-8")
    doc = load_document(path)
    assert doc.text == text  # offsets into the document are offsets into the file
    assert [(s.title, s.level) for s in doc.sections] == [("Notes", 1), ("Findings", 2)]
    assert doc.section_text(doc.sections[1]).startswith("## Findings")


def test_paper_outline_from_text(tmp_path):
    text = (
        "A randomised trial of something useful in adults\nJane Smith, John Doe\n\nAbstract\n"
        "Objective: To test it.\nMethods: We did it.\nResults: It worked.\nConclusions: Use it.\n\n"
        "Introduction\nWhy.\n\nMethods\nHow.\n\nResults\nWhat.\n\nDiscussion\nSo what.\n\nReferences\n1. Ref.\n"
    )
    path = tmp_path / "paper.txt"
    path.write_text(text, encoding="utf-8")
    doc = load_document(path)
    assert doc.kind == "paper"
    kinds = [s.kind for s in doc.sections]
    for k in ("abstract", "abstract_objective", "abstract_methods", "abstract_results", "abstract_conclusions",
              "introduction", "methods", "results", "discussion", "references"):  # fmt: skip
        assert k in kinds
    assert doc.outline.missing == [] and doc.outline.problems == []


def test_cli_json_and_out(cli, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(CONTRACT, encoding="utf-8")
    r = cli("ingest", path, "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["metadata"]["kind"] == "contract" and d["sections"]
    out = tmp_path / "summary.txt"
    r = cli("ingest", path, "--out", out)
    assert r.exit_code == 0 and "contract" in out.read_text() and "Outline" in out.read_text()


def test_pdfium_marked_hyphens_rejoin_only_known_words():
    pages = ["We describe a sample size calcu\ufffelation here.", "The calculation is simple; forward\ufffelooking words stay."]
    clean = clean_pages(pages)
    assert "sample size calculation here" in clean.texts[0]
    assert "forward-looking" in clean.texts[1]


def test_plain_html_without_page_breaks(tmp_path):
    path = tmp_path / "note.html"
    path.write_text(
        "<!doctype html><html><head><style>p{color:red}</style><script>var x=1;</script></head><body>"
        "<h1>Quarterly note</h1><p>Revenue rose.</p><div style='display: none'>hidden</div>"
        "<table><tr><td>Item</td><td>2024</td></tr><tr><td>Sales</td><td>(1,200)</td></tr><tr><td>Costs</td><td>—</td></tr></table>"
        "</body></html>",
        encoding="utf-8",
    )
    doc = load_document(path)
    assert doc.n_pages == 1 and doc.metadata.format == "html"
    assert doc.text.split("\n")[:2] == ["Quarterly note", "Revenue rose."]
    assert "hidden" not in doc.text and "var x" not in doc.text and "color:red" not in doc.text
    assert "Sales (1,200)" in doc.text  # one table row per line
    (t,) = doc.tables
    assert t.df.loc["Sales"].tolist() == [-1200.0] and t.df.loc["Costs"].tolist() == [0.0]


def test_html_pages_from_page_number_footers(tmp_path):
    body = "".join(f"<p>Section text number {i} about the business.</p><p>More on topic {i}.</p><p>{i}</p>" for i in range(1, 5))
    path = tmp_path / "filing.htm"
    path.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")
    doc = load_document(path)
    assert doc.n_pages == 4 and [p.label for p in doc.pages] == ["1", "2", "3", "4"]
    assert doc.locate("topic 3")[0].page == 3


def test_out_to_unwritable_path_is_one_line(cli, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(CONTRACT, encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("ingest", path, "--out", blocker / "sub" / "out.txt")  # parent is a file
    assert r.exit_code == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_contract_parties_from_party_a_b_lines():
    from m3analyst.ingest.metadata import find_parties

    head = ("Exhibit 10.10\n\nRoad Transportation Agreement\n\nParty A (Shipper): ZTO Express Co., Ltd.\nAddress: Building 1, "
            "Huazhi Road, Shanghai\n\nParty B (Carrier): Tonglu Tongze Logistics Ltd.\nAddress: 12 Floor, HSBC Tower\n\n"
            "Due to the need for logistics business, Party A and Party B enter into this Agreement.")
    assert find_parties(head) == ["ZTO Express Co., Ltd", "Tonglu Tongze Logistics Ltd"]
    assert find_parties("This Agreement is made between Acme Corp. and Beta LLC.") == ["Acme Corp", "Beta LLC"]
