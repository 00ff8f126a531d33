"""Thin Typer commands, one module per area. They parse, call into the package, and render.

Modules here must not import torch/transformers at import time: `m3analyst --help` stays fast.
"""
