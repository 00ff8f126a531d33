"""`m3analyst engine info | generate | bench`: the embedded engine from the command line."""

from __future__ import annotations

import sys

import typer

from m3analyst.commands.common import console, emit_json, err_console, handle_errors, model_option, safe

engine_app = typer.Typer(help="The embedded inference engine (MSA sparse attention).", no_args_is_help=True)

MODEL_OPT = typer.Option(None, "--model", help="Registry name, HF model directory or .gguf path.")
MIN_BENCH_CONTEXT, MAX_BENCH_CONTEXT = 16, 1 << 20  # checked before the model loads; then against its context
ATTN_OPT = typer.Option(None, "--attention", help="msa (block top-K sparse) or dense.")


def register(app: typer.Typer) -> None:
    app.add_typer(engine_app, name="engine")


def _settings(model, attention=None, top_k=None, block_size=None, scorer=None, dtype=None):
    from m3analyst.errors import UsageError
    from m3analyst.settings import EngineSettings

    s = EngineSettings()
    if model_option(model):
        s.model = model
    if dtype:
        s.dtype = dtype
    updates = {"backend": attention, "top_k": top_k, "block_size": block_size, "scorer": scorer}
    updates = {k: v for k, v in updates.items() if v is not None}
    if updates:
        try:
            s.attention = s.attention.model_validate(s.attention.model_dump() | updates)
        except ValueError as e:
            raise UsageError(f"bad attention option: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
    return s


@engine_app.command("info")
@handle_errors
def info(model: str | None = MODEL_OPT, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Load the model and show its architecture, context, device, dtype and attention settings."""
    from m3analyst.engine import load_engine

    d = load_engine(_settings(model)).info()
    if json_out:
        emit_json(d, None)
        return
    for k, v in d.items():
        console.print(f"[bold]{k}[/]: {safe(v)}", highlight=False)


@engine_app.command("generate")
@handle_errors
def generate(
    prompt: str = typer.Argument(..., help="User message (chat template applied) or raw text with --raw."),
    model: str | None = MODEL_OPT,
    attention: str | None = ATTN_OPT,
    top_k: int | None = typer.Option(None, "--top-k", help="Blocks attended per KV group and step."),
    block_size: int | None = typer.Option(None, "--block-size", help="Tokens per KV block."),
    scorer: str | None = typer.Option(None, "--scorer", help="block scorer: auto (hybrid on CPU, minmax on CUDA), mean, minmax, minmax-mass, mean-mass or hybrid."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", "-n", min=0),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0),
    seed: int = typer.Option(0, "--seed"),
    raw: bool = typer.Option(False, "--raw", help="Feed the prompt as is (no chat template)."),
    stats: bool = typer.Option(False, "--stats", help="Print run statistics (JSON) to stderr at the end."),
) -> None:
    """Generate text, streaming it to the terminal."""
    import json

    from m3analyst.engine import load_engine

    eng = load_engine(_settings(model, attention, top_k, block_size, scorer))
    text = prompt if raw else [{"role": "user", "content": prompt}]
    for piece in eng.generate(text, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, stream=True):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    res = eng.last_result
    if stats:
        err_console.print(json.dumps(res.stats.to_dict() | {"finish_reason": res.finish_reason}), highlight=False)


@engine_app.command("bench")
@handle_errors
def bench(
    context: str = typer.Option("2048,8192", "--context", help="Comma-separated context lengths (tokens)."),
    model: str | None = MODEL_OPT,
    attention: str = typer.Option("msa,dense", "--attention", help="Backends to time, comma-separated."),
    steps: int = typer.Option(32, "--steps", min=1, help="Decode steps timed per run."),
    scorer: str | None = typer.Option(None, "--scorer"),
    dtype: str | None = typer.Option(None, "--dtype", help="auto, float32, bfloat16 or int8 (weight-only int8 decode)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for prefill (default: all cores)."),
    decode_threads: int | None = typer.Option(None, "--decode-threads", min=1, help="CPU threads for decode steps."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Prefill seconds and decode tokens/s (with attention share) per context length and backend."""
    from m3analyst.engine import load_engine
    from m3analyst.engine.bench import run_bench
    from m3analyst.errors import UsageError

    try:
        contexts = [int(c) for c in context.split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--context must be comma-separated integers, got {context!r}") from None
    bad_len = [c for c in contexts if not MIN_BENCH_CONTEXT <= c <= MAX_BENCH_CONTEXT]
    if bad_len:
        raise UsageError(f"--context {bad_len[0]}: a context length must be {MIN_BENCH_CONTEXT} to {MAX_BENCH_CONTEXT:,} tokens")
    backends = [b.strip() for b in attention.split(",") if b.strip()]
    bad = [b for b in backends if b not in ("msa", "dense")]
    if not contexts:
        raise UsageError("--context needs at least one length, e.g. --context 2048,8192")
    if bad:
        raise UsageError(f"--attention takes msa and/or dense (got {attention!r})")
    settings = _settings(model, scorer=scorer, dtype=dtype)
    settings.threads, settings.decode_threads = threads, decode_threads
    eng = load_engine(settings)
    if max(contexts) >= eng.context_length:
        raise UsageError(f"--context {max(contexts):,}: the model's context limit is {eng.context_length:,} tokens")
    rows = [r.to_dict() for r in run_bench(eng, contexts, backends, steps)]
    if json_out:
        info = eng.info()
        emit_json({"model": eng.name, "dtype": str(eng.dtype), "decode_weights": info.get("decode_weights"),
                   "threads": info["threads"], "decode_threads": info["decode_threads"], "rows": rows}, None)
        return
    from rich.table import Table

    table = Table("backend", "context", "prefill s", "prefill tok/s", "decode tok/s", "attention share", "load")
    for r in rows:
        share = "-" if r["attention_share"] is None else f"{r['attention_share']:.1%}"
        table.add_row(r["backend"], f"{r['context']:,}", f"{r['prefill_s']:.2f}", f"{r['prefill_tok_s']:.0f}",
                      f"{r['decode_tok_s']:.1f}", share, f"{r['load']:.1f}")
    console.print(table)
