"""Settings: precedence (defaults < $M3ANALYST_HOME/config.toml < ./m3analyst.toml < environment < flags/--set),
the environment names, --set parsing, the model-free None, and the CLI's one-line errors."""

from __future__ import annotations

import json

import pytest

from m3analyst import settings as S
from m3analyst.errors import InputError, UsageError


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty $M3ANALYST_HOME and working folder, no M3ANALYST_ENGINE/MEMO/INGEST variables."""
    import os

    for var in [v for v in os.environ if v.startswith(("M3ANALYST_ENGINE", "M3ANALYST_MEMO", "M3ANALYST_INGEST"))]:
        monkeypatch.delenv(var)
    for var in S.LEGACY_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("M3ANALYST_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def test_each_source_overrides_the_one_below(home, monkeypatch):
    assert S.load().engine.attention.top_k == 80  # the field default
    (home / "home" / "config.toml").write_text("[engine.attention]\ntop_k = 11\nblock_size = 16\n")
    assert S.load().engine.attention.top_k == 11
    (home / "work" / "m3analyst.toml").write_text("[engine.attention]\ntop_k = 12\n")
    s = S.load()
    assert s.engine.attention.top_k == 12 and s.engine.attention.block_size == 16  # sections merge field by field
    monkeypatch.setenv("M3ANALYST_ENGINE__ATTENTION__TOP_K", "13")
    assert S.load().engine.attention.top_k == 13
    assert S.load(S.assignment("engine.attention.top_k=14")).engine.attention.top_k == 14
    assert S.load().engine.attention.block_size == 16


def test_environment_names_and_legacy_switches(home, monkeypatch):
    monkeypatch.setenv("M3ANALYST_MEMO__BUDGET", "4096")
    monkeypatch.setenv("M3ANALYST_ENGINE__KERNELS__MSA_MEANS", "fp32")
    monkeypatch.setenv("M3ANALYST_DOC_CACHE", "0")  # the old switch still works, below the new name
    s = S.load()
    assert s.memo.budget == 4096 and s.engine.kernels.msa_means == "fp32" and s.ingest.doc_cache is False
    monkeypatch.setenv("M3ANALYST_INGEST__DOC_CACHE", "1")
    assert S.load().ingest.doc_cache is True


def test_model_free_is_none_everywhere(home, monkeypatch):
    assert S.load(S.assignment("engine.model=none")).engine.model is None
    monkeypatch.setenv("M3ANALYST_ENGINE__MODEL", "None")
    assert S.load().engine.model is None
    s = S.Settings()
    s.engine.model = "none"  # assignment is validated too
    assert s.engine.model is None


@pytest.mark.parametrize("text", ["engine.attention.top_k", "top_k=3", "engine..top_k=3", "=3"])
def test_set_needs_section_field_value(text):
    with pytest.raises(UsageError, match="SECTION.FIELD=VALUE"):
        S.assignment(text)


def test_set_values_parse_as_toml():
    assert S.assignment("engine.attention.top_k=64") == {"engine": {"attention": {"top_k": 64}}}
    assert S.assignment("ingest.doc_cache=false") == {"ingest": {"doc_cache": False}}
    assert S.assignment("engine.model=some/dir") == {"engine": {"model": "some/dir"}}


@pytest.mark.parametrize("text, where", [("engine.attention.top_k=x", "engine.attention.top_k"),
                                          ("engine.nope=1", "engine.nope: no such setting"),
                                          ("memo.budget=10", "memo.budget")])
def test_bad_values_are_usage_errors(home, text, where):
    with pytest.raises(UsageError, match=where):
        S.load(S.assignment(text))


def test_a_broken_config_file_names_the_file(home):
    (home / "work" / "m3analyst.toml").write_text("[engine\n")
    with pytest.raises(InputError, match="m3analyst.toml"):
        S.load()


def test_use_scopes_current(home):
    s = S.load(S.assignment("memo.max_quotes=7"))
    with S.use(s):
        assert S.current() is s
    assert S.current().memo.max_quotes == 3


@pytest.mark.parametrize("args", [["--set", "engine.attention.top_k=zero"], ["--set", "engine.attention"],
                                  ["--top-k", "0"], ["--attention", "fast"]])
def test_cli_setting_errors_are_one_line(cli, home, args):
    r = cli("engine", "info", *args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_flags_and_set_reach_the_command(cli, home, tmp_path):
    """ingest runs inside the command's settings: --set ingest.doc_cache=true caches under $M3ANALYST_HOME."""
    doc = tmp_path / "a.md"
    doc.write_text("# Title\n\nSome text about revenue.\n")
    r = cli("ingest", doc, "--set", "ingest.doc_cache=true", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)  # the Document


def test_flags_are_mapped_in_one_table():
    from m3analyst.commands.options import FLAGS, _field_help, overrides

    got = overrides({"top_k": 9, "heading_tokens": 40, "model": None}, ["memo.budget=1024"])
    assert got == {"engine": {"attention": {"top_k": 9}, "max_new_tokens": 40}, "memo": {"heading_tokens": 40,
                                                                                           "budget": 1024}}
    for flag in FLAGS.values():  # every target is a real, described field
        assert all(_field_help(t) for t in flag.targets)
