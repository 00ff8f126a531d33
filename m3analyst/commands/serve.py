"""`m3analyst serve`: the embedded engine as an OpenAI-compatible HTTP server (pip install -e ".[serve]")."""

from __future__ import annotations

import os

import typer

from m3analyst.commands.common import err_console, handle_errors
from m3analyst.commands.options import with_settings
from m3analyst.errors import UsageError
from m3analyst.settings import Settings

SERVE_FLAGS = ("model", "attention", "top_k", "block_size", "device", "dtype", "threads", "decode_threads",
               "max_new_tokens", "time_budget")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@handle_errors
@with_settings(*SERVE_FLAGS)
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default loopback only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Require 'Authorization: Bearer KEY', KEY "
                                           "read from this environment variable."),
    max_queue: int = typer.Option(16, "--max-queue", help="Requests that may wait behind the running one (more: 503)."),
    max_prompt_tokens: int | None = typer.Option(None, "--max-prompt-tokens", help="Longest prompt accepted "
                                                 "(default: the model's context minus max_tokens)."),
    *,
    settings: Settings,
) -> None:
    """Serve /v1/chat/completions, /v1/completions (streaming) and /v1/models for the embedded engine."""
    try:
        from m3analyst.serve.app import ServeLimits, create_app, serve_forever
    except ImportError:  # pragma: no cover - depends on the install
        raise UsageError('serve needs the [serve] extra: pip install -e ".[serve]" (fastapi, uvicorn)') from None
    key = _api_key(api_key_env)
    if not 0 < port < 65536 or max_queue < 0 or (max_prompt_tokens is not None and max_prompt_tokens < 1):
        raise UsageError("--port must be 1-65535, --max-queue >= 0 and --max-prompt-tokens >= 1")
    from m3analyst.engine import load_engine

    engine = load_engine(settings.engine.model_copy(update={"backend": "local"}))
    name = getattr(getattr(engine, "selection", None), "model", None) or engine.name
    limits = ServeLimits(max_queue=max_queue, max_prompt_tokens=max_prompt_tokens,
                         default_max_tokens=settings.engine.max_new_tokens)
    app = create_app(engine, name, limits, key)
    where = f"http://{host}:{port}/v1"
    err_console.print(f"serving {engine.name} as {name} at {where} (context {engine.context_length:,} tokens"
                      f"{', API key required' if key else ''}); Ctrl-C stops", highlight=False, markup=False)
    serve_forever(app, host, port)


def _api_key(env: str | None) -> str | None:
    if env is None:
        return None
    key = os.environ.get(env, "")
    if not key:
        raise UsageError(f"--api-key-env {env}: that environment variable is not set or empty")
    return key
