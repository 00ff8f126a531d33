"""The legal domain's plugin (spec: domains/legal/spec.yaml): clause facts (`extract`), clause classification by
what a sentence does (`clauses`), the short-answer term sheet (`terms`) and the playbook's risk flags
(`findings`). Importing it registers the "legal" hooks."""

from m3analyst.domains.legal import extract, findings  # noqa: F401 - importing registers the hooks
