"""A fourth domain from files alone: a folder holding spec.yaml and plugin.py, found on the `domain.dirs` setting,
becomes a memo command, an `ask --domain`, a batch / eval choice, with its plugin's facts and findings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from m3analyst.domains import extract_facts, list_domains, load_domain, make_findings, render_hints
from m3analyst.errors import UsageError
from m3analyst.ingest.model import Document

SPEC = textwrap.dedent(
    """
    title: Incident review memo
    reads: incident report
    plugin: plugin.py
    extractor: incident
    detect: {keywords: ["outage", "root cause", "incident"]}
    facts:
      - {name: duration_minutes, label: Outage (minutes), value: number, ask: ["outage last", "how long"],
         patterns: ["outage lasted"]}
      - {name: customers, label: Customers affected, value: number, ask: ["customers affected"],
         patterns: ["customers were affected"]}
      - {name: root_cause, label: Root cause, ask: ["root cause"], patterns: ["root cause was"]}
    outline:
      - {heading: Facts, kind: facts}
      - {heading: Impact, kind: passages, queries: ["outage customers affected"], max_words: 60}
    render: {facts_table: values}
    """
)

# The plugin: the generic spec-driven extraction plus one derived fact, and a finding stating it.
PLUGIN = textwrap.dedent(
    """
    from m3analyst.domains import Fact, Figure, Finding, get_extractor, register_extractor, register_findings
    from m3analyst.ingest.model import Citation


    @register_extractor("incident")
    def extract(doc, spec):
        facts = get_extractor("patterns")(doc, spec)
        by = {f.name: f for f in facts}
        if "duration_minutes" in by and "customers" in by:
            hours = by["customers"].value * by["duration_minutes"].value / 60
            facts.append(Fact("customer_hours", hours, "h", 1.0, None, by["customers"].page,
                              by["customers"].source_text, "Customer-hours lost", True))
        return facts


    @register_findings("incident")
    def findings(doc, spec, facts):
        lost = next((f for f in facts if f.name == "customer_hours"), None)
        if lost is None:
            return []
        quote = lost.source_text or ""
        start = doc.text.find(quote)
        cite = Citation(lost.page, start, start + len(quote), quote)
        return [Finding(f"The outage cost {lost.value:,.0f} customer-hours.", "impact", "Impact",
                        [Figure(f"{lost.value:,.0f}", lost.value, "h", "customer_hours", None, True)], [cite])]
    """
)

REPORT = ("Incident 42 review.\n\nThe outage lasted 90 minutes on the morning of the release. In all, 3,000 customers were "
          "affected by it.\n\n"
          "The root cause was an expired TLS certificate on the edge proxy, renewed by hand at 14:05.\n")


@pytest.fixture
def incident(tmp_path, monkeypatch):
    """domains/incident/{spec.yaml, plugin.py} in a user folder named by the domain.dirs setting (environment)."""
    folder = tmp_path / "my_domains" / "incident"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(SPEC)
    (folder / "plugin.py").write_text(PLUGIN)
    monkeypatch.setenv("M3ANALYST_DOMAIN__DIRS", json.dumps([str(folder.parent)]))
    report = tmp_path / "incident42.txt"
    report.write_text(REPORT)
    return report


@pytest.fixture
def app(incident):
    from m3analyst.cli import build_app

    return build_app()  # built after the setting names the folder, as a fresh `m3analyst` process would be


def _run(app, *args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_the_folder_registers_a_domain_with_its_plugin_hooks(incident):
    assert "incident" in list_domains()
    spec = load_domain("incident")
    assert spec.path.name == "spec.yaml" and spec.plugin == "plugin.py" and render_hints("incident").charts == []
    doc = Document.from_pages([REPORT])
    facts = {f.name: f for f in extract_facts(doc, spec)}
    assert facts["duration_minutes"].value == 90.0 and facts["customers"].value == 3000.0
    assert facts["customer_hours"].value == 4500.0 and facts["customer_hours"].derived
    (finding,) = make_findings(doc, spec, list(facts.values()))
    assert finding.claim == "The outage cost 4,500 customer-hours." and finding.evidence[0].page == 1


def test_memo_command_ask_and_help(app, incident):
    top = _run(app, "--help")
    assert top.exit_code == 0 and "incident" in top.output and "incident report" in top.output
    memo = _run(app, "incident", incident, "--model", "none", "--json")
    assert memo.exit_code == 0, memo.output
    data = json.loads(memo.stdout)
    assert data["domain"] == "incident"
    assert {"duration_minutes", "customers", "root_cause", "customer_hours"} <= {f["name"] for f in data["facts"]}
    assert "The outage cost 4,500 customer-hours." in memo.stdout
    ask = _run(app, "ask", incident, "What was the root cause?", "--domain", "incident", "--model", "none", "--json")
    assert ask.exit_code == 0, ask.output
    answer = json.loads(ask.stdout)  # read from the new domain's facts, not from a passage
    assert answer["source"] == "facts" and answer["fact"] == "root_cause" and answer["citations"] == [1]
    assert "expired TLS certificate" in answer["text"]


def test_batch_and_eval_offer_the_domain(app, incident, tmp_path):
    for command in (["batch", "--help"], ["eval", "--help"], ["ask", "--help"]):
        out = _run(app, *command)
        assert out.exit_code == 0 and "incident" in out.output, command
    gold = tmp_path / "incident_eval.jsonl"
    gold.write_text(json.dumps({"id": "incident/42", "domain": "incident", "document": incident.name,
                                "facts": [{"field": "duration_minutes", "value": 90, "page": 1,
                                           "evidence": "The outage lasted 90 minutes"}]}) + "\n")
    ev = _run(app, "eval", "incident", "--dataset", gold, "--data-root", tmp_path, "--model", "none", "--json")
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.stdout)
    assert report["domain"] == "incident" and report["metrics"]["fact_recall"] == 1.0
    batch = _run(app, "batch", incident, "--out", tmp_path / "out", "--domain", "incident", "--model", "none")
    assert batch.exit_code == 0, batch.output
    assert "Customer-hours lost" in (tmp_path / "out" / "memos" / "incident42.md").read_text()


def test_an_unknown_domain_names_the_registered_ones(app, incident):
    out = _run(app, "eval", "nope")
    assert out.exit_code == 2 and "incident" in out.output


def test_a_broken_plugin_is_one_line_naming_the_file(incident, tmp_path):
    broken = tmp_path / "my_domains" / "broken"
    broken.mkdir()
    (broken / "spec.yaml").write_text(SPEC.replace("extractor: incident", "extractor: broken"))
    (broken / "plugin.py").write_text("raise RuntimeError('half-written')\n")
    with pytest.raises(UsageError, match=r"broken/plugin\.py: the domain plugin failed to load \(RuntimeError: half-written\)"):
        extract_facts(Document.from_pages([REPORT]), "broken")


def test_listing_the_domains_imports_no_plugin():
    """Every command lists the domains when it starts; only the command that uses a domain imports its plugin."""
    code = ("import sys, m3analyst.cli; from m3analyst.domains import list_domains; assert 'finance' in list_domains(); "
            "print(sorted(m for m in sys.modules if m.split('.')[:3] in (['m3analyst', 'domains', 'finance'], "
            "['m3analyst', 'domains', 'legal'], ['m3analyst', 'domains', 'bio'], ['m3analyst', 'domains', 'spec'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
