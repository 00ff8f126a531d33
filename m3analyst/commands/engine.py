"""`m3analyst engine info | generate | bench`: the embedded engine from the command line."""

from __future__ import annotations

import sys

import typer

from m3analyst.commands.common import console, emit_json, err_console, handle_errors
from m3analyst.commands.options import ENGINE_FLAGS, with_settings
from m3analyst.settings import Settings

engine_app = typer.Typer(help="The embedded inference engine (MSA sparse attention).", no_args_is_help=True)



def register(app: typer.Typer) -> None:
    app.add_typer(engine_app, name="engine")


@engine_app.command("info")
@handle_errors
@with_settings(*ENGINE_FLAGS)
def info(json_out: bool = typer.Option(False, "--json", help="Print JSON."), *, settings: Settings) -> None:
    """Load the model and show its architecture, context, device, dtype and attention settings."""
    from m3analyst.engine import load_engine

    d = load_engine(settings.engine).info()
    if json_out:
        emit_json(d | {"settings": settings.model_dump(mode="json")}, None)
        return
    for k, v in d.items():
        console.print(f"[bold]{k}[/]: {v}", highlight=False)


@engine_app.command("generate")
@handle_errors
@with_settings(*ENGINE_FLAGS)
def generate(
    prompt: str = typer.Argument(..., help="User message (chat template applied) or raw text with --raw."),
    raw: bool = typer.Option(False, "--raw", help="Feed the prompt as is (no chat template)."),
    stats: bool = typer.Option(False, "--stats", help="Print run statistics (JSON) to stderr at the end."),
    *,
    settings: Settings,
) -> None:
    """Generate text, streaming it to the terminal."""
    import json

    from m3analyst.engine import load_engine

    es = settings.engine
    eng = load_engine(es)
    text = prompt if raw else [{"role": "user", "content": prompt}]
    for piece in eng.generate(text, max_new_tokens=es.max_new_tokens, temperature=es.temperature, seed=es.seed,
                              stream=True):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    res = eng.last_result
    if stats:
        err_console.print(json.dumps(res.stats.to_dict() | {"finish_reason": res.finish_reason,
                                                            "settings": settings.model_dump(mode="json")}),
                          highlight=False)


@engine_app.command("bench")
@handle_errors
@with_settings(*(f for f in ENGINE_FLAGS if f != "attention"))
def bench(
    context: str = typer.Option("2048,8192", "--context", help="Comma-separated context lengths (tokens)."),
    attention: str = typer.Option("msa,dense", "--attention", help="Backends to time, comma-separated."),
    steps: int = typer.Option(32, "--steps", min=1, help="Decode steps timed per run."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    *,
    settings: Settings,
) -> None:
    """Prefill seconds and decode tokens/s (with attention share) per context length and backend."""
    from m3analyst.engine import load_engine
    from m3analyst.engine.bench import run_bench
    from m3analyst.errors import UsageError

    try:
        contexts = [int(c) for c in context.split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--context must be comma-separated integers, got {context!r}") from None
    backends = [b.strip() for b in attention.split(",") if b.strip()]
    bad = [b for b in backends if b not in ("msa", "dense")]
    if bad or not contexts:
        raise UsageError(f"--attention takes msa and/or dense (got {attention!r}); --context needs a length")
    eng = load_engine(settings.engine)
    rows = [r.to_dict() for r in run_bench(eng, contexts, backends, steps)]
    if json_out:
        info = eng.info()
        emit_json({"model": eng.name, "dtype": str(eng.dtype), "decode_weights": info.get("decode_weights"),
                   "threads": info["threads"], "decode_threads": info["decode_threads"], "rows": rows,
                   "settings": settings.model_dump(mode="json")}, None)
        return
    from rich.table import Table

    table = Table("backend", "context", "prefill s", "prefill tok/s", "decode tok/s", "attention share", "load")
    for r in rows:
        share = "-" if r["attention_share"] is None else f"{r['attention_share']:.1%}"
        table.add_row(r["backend"], f"{r['context']:,}", f"{r['prefill_s']:.2f}", f"{r['prefill_tok_s']:.0f}",
                      f"{r['decode_tok_s']:.1f}", share, f"{r['load']:.1f}")
    console.print(table)
