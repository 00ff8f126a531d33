"""The bio domain's plugin (spec: domains/bio/spec.yaml): study facts and PICO (`extract`), effect estimates and
their direction (`effects`), and the result and risk-of-bias findings (`findings`). Importing it registers the
"bio" hooks."""

from m3analyst.domains.bio import extract, findings  # noqa: F401 - importing registers the hooks
