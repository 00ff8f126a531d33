"""Silence third-party progress bars (tqdm) while the engine reports its own progress on stderr.

transformers' GGUF loader draws "Converting and de-quantizing GGUF tensors" with tqdm whatever its own
progress-bar switch says; `no_third_party_bars()` makes every tqdm bar created inside it disabled.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def no_third_party_bars() -> Iterator[None]:
    try:
        from tqdm import std
    except ImportError:  # no tqdm, no bars
        yield
        return
    original = std.tqdm.__init__

    def disabled(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    std.tqdm.__init__ = disabled
    try:
        yield
    finally:
        std.tqdm.__init__ = original
