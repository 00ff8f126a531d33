"""The command line's settings: every flag that sets a field is mapped here, once.

    @handle_errors
    @with_settings(*ENGINE_FLAGS)
    def generate(prompt: str = typer.Argument(...), *, settings: Settings) -> None: ...

`with_settings(*names)` adds the named flags of `FLAGS` and `--set SECTION.FIELD=VALUE` (repeatable) to a
command, builds the effective settings (files < environment < flags < --set; m3analyst/settings.py), runs the
command inside `settings.use(...)` and passes them as `settings`. Help texts come from the fields' descriptions,
so the flags cannot drift from the settings they set. Bad values are one-line usage errors.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import typer

from m3analyst import settings as settings_mod
from m3analyst.errors import UsageError
from m3analyst.settings import Settings


@dataclass(frozen=True)
class Flag:
    decls: tuple[str, ...]  # "--top-k", ...
    targets: tuple[str, ...]  # dotted fields the value sets: "engine.attention.top_k"
    type: type
    help: str = ""  # default: the first target's field description


FLAGS: dict[str, Flag] = {
    "model": Flag(("--model",), ("engine.model",), str,
                  "auto (default: the machine's choice), registry name, HF model directory or .gguf path; 'none' = no "
                  "model (extractive memos)."),
    "attention": Flag(("--attention",), ("engine.attention.backend",), str),
    "top_k": Flag(("--top-k",), ("engine.attention.top_k",), int),
    "block_size": Flag(("--block-size",), ("engine.attention.block_size",), int),
    "scorer": Flag(("--scorer",), ("engine.attention.scorer",), str),
    "device": Flag(("--device",), ("engine.device",), str),
    "dtype": Flag(("--dtype",), ("engine.dtype",), str),
    "threads": Flag(("--threads",), ("engine.threads",), int),
    "decode_threads": Flag(("--decode-threads",), ("engine.decode_threads",), int),
    "max_new_tokens": Flag(("--max-new-tokens", "-n"), ("engine.max_new_tokens",), int),
    # The memo commands' --max-new-tokens: the generation budget per memo heading (both fields).
    "heading_tokens": Flag(("--max-new-tokens", "-n"), ("engine.max_new_tokens", "memo.heading_tokens"), int,
                           "Generation budget per memo heading."),
    "temperature": Flag(("--temperature",), ("engine.temperature",), float),
    "seed": Flag(("--seed",), ("engine.seed",), int),
    "budget": Flag(("--budget",), ("memo.budget",), int),
    "time_budget": Flag(("--time-budget",), ("engine.time_budget",), float),
    "backend": Flag(("--backend",), ("engine.backend",), str),
    "base_url": Flag(("--base-url",), ("engine.base_url",), str),
    "api_key_env": Flag(("--api-key-env",), ("engine.api_key_env",), str),
    "remote_model": Flag(("--remote-model",), ("engine.remote_model",), str),
}

ENGINE_FLAGS = ("model", "attention", "top_k", "block_size", "scorer", "device", "dtype", "threads",
                "decode_threads", "max_new_tokens", "temperature", "seed", "time_budget", "backend", "base_url",
                "api_key_env", "remote_model")
MEMO_FLAGS = tuple(n for n in ENGINE_FLAGS if n != "max_new_tokens") + ("heading_tokens", "budget")
SET_HELP = ("Any setting as SECTION.FIELD=VALUE (repeatable), e.g. engine.attention.top_k=64, memo.budget=2048; "
            "over flags, environment (M3ANALYST_SECTION__FIELD) and config files.")


def _field_help(dotted: str) -> str:
    model: Any = Settings
    *sections, name = dotted.split(".")
    for s in sections:
        model = model.model_fields[s].annotation
    return model.model_fields[name].description or ""


def overrides(values: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Flag values (None = not given) and --set assignments -> one nested dict of settings overrides."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is not None:
            for target in FLAGS[name].targets:
                out = _put(out, target.split("."), value)
    for a in assignments:
        out = settings_mod.merge(out, settings_mod.assignment(a))
    return out


def spelled(values: dict[str, Any], assignments: list[str]) -> dict[str, str]:
    """Dotted field -> the flag or --set that gave it, as the user wrote it (for error messages)."""
    names = {t: FLAGS[n].decls[0] for n, v in values.items() if v is not None for t in FLAGS[n].targets}
    return names | {a.partition("=")[0].strip(): f"--set {a.partition('=')[0].strip()}" for a in assignments}


def _put(tree: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return tree


def _parameters(names: tuple[str, ...]) -> list[inspect.Parameter]:
    params = []
    for name in names:
        flag = FLAGS[name]
        opt = typer.Option(None, *flag.decls, help=flag.help or _field_help(flag.targets[0]), show_default=False)
        params.append(inspect.Parameter(f"_opt_{name}", inspect.Parameter.KEYWORD_ONLY, default=opt,
                                        annotation=Optional[flag.type]))
    set_opt = typer.Option([], "--set", "--config", metavar="SECTION.FIELD=VALUE", help=SET_HELP)
    params.append(inspect.Parameter("_opt_set", inspect.Parameter.KEYWORD_ONLY, default=set_opt,
                                    annotation=list[str]))
    return params


def with_settings(*names: str) -> Callable[[Callable], Callable]:
    """Decorate a command taking `settings: Settings`: adds the named FLAGS and --set, builds the settings."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        kept = [p for p in sig.parameters.values() if p.name != "settings"]
        added = _parameters(names)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values = {n: kwargs.pop(f"_opt_{n}", None) for n in names}
            for n, v in values.items():  # an empty value is a mistake, never "the default"
                if isinstance(v, str) and not v.strip():
                    raise UsageError(f"{FLAGS[n].decls[0]} is empty: give a value (see --help)")
            assignments = list(kwargs.pop("_opt_set", None) or [])
            s = settings_mod.load(overrides(values, assignments), spelled(values, assignments))
            with settings_mod.use(s):
                return fn(*args, settings=s, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=kept + added)
        wrapper.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != "settings"} | {
            p.name: p.annotation for p in added}
        return wrapper

    return decorate
