"""Jinja2 templates for the HTML outputs (memo, batch dashboard): the packaged ones in templates/, each of which a
user may override by putting a file of the same name in a folder passed as `--template DIR`."""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError

from m3analyst.errors import InputError


def environment(template_dir: str | None = None) -> Environment:
    from m3analyst.resources import resource_dir

    loaders = [FileSystemLoader(str(resource_dir("templates")))]
    if template_dir:
        loaders.insert(0, FileSystemLoader(template_dir))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=True, trim_blocks=True, lstrip_blocks=True,
                      undefined=StrictUndefined)
    env.filters["pct"] = lambda v: f"{v * 100:.4f}".rstrip("0").rstrip(".") + "%"
    return env


def render(name: str, template_dir: str | Path | None = None, **context) -> str:
    """Render template `name` ("memo.html.j2", "dashboard.html.j2"); a broken user template is one clear error."""
    if template_dir is not None and not Path(template_dir).is_dir():
        raise InputError(Path(template_dir), "--template must be a folder of Jinja2 templates")
    try:
        return environment(None if template_dir is None else str(template_dir)).get_template(name).render(**context)
    except TemplateError as e:
        where = f"{template_dir}/{name}" if template_dir else name
        raise InputError(Path(where), f"template error: {e}") from None
