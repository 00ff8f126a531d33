"""Evaluation: eval-set schema (`schema`), loaders for public sets (`loaders`), value normalisation
(`normalize`), scorers (`scorers`), the runner (`runner`) and report renderers (`report`).

Submodules are imported where used (no package-level imports), so `python -m
m3analyst.evaluation.schema FILE` validates a file without side effects.
"""
