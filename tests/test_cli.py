from m3analyst import __version__


def test_help_lists_commands(cli):
    r = cli("--help")
    assert r.exit_code == 0
    assert "ingest" in r.output


def test_version(cli):
    r = cli("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_missing_file_is_one_clean_line(cli, tmp_path):
    missing = tmp_path / "nope.pdf"
    r = cli("ingest", missing)
    assert r.exit_code == 2
    assert f"{missing}: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_kernels_not_installed_top_level():
    import importlib.util

    import m3analyst.kernels  # noqa: F401  (mapped into the package)

    spec = importlib.util.find_spec("kernels")
    assert spec is None or "m3analyst" not in (spec.origin or "")
