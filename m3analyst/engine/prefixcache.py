"""A fixed prompt prefix's KV cache kept on disk: computed once per model and prompt, then loaded (milliseconds)
instead of prefilled again (the rephrasing prompt's ~430 tokens take 20 s on a busy 2-core CPU with the 0.5B model).

Entries live in `$M3ANALYST_HOME/prefixes/<key>.pt`, the key a sha256 of the prefix text, the model's converted
folder and its files' sizes and times, the dtypes, the attention settings and the torch / transformers versions;
they are files this program wrote into its own cache folder (pickled `MSACache`), read back only from there.

    sess = prefill_cached(engine, prefix_text, reserve=256)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from m3analyst.resources import home_dir

FOLDER = "prefixes"


def _key(engine, text: str) -> str | None:
    import torch
    import transformers

    path = getattr(engine, "path", None)
    if path is None or not Path(path).is_dir():
        return None
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(path).iterdir() if p.is_file())
    ident = {"path": str(path), "files": files, "dtype": str(engine.dtype), "device": str(engine.device),
             "prefill": str(getattr(engine.prefill_model, "dtype", None)), "attention": engine.attention_settings().model_dump(),
             "torch": torch.__version__, "transformers": transformers.__version__, "text": text}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _file(key: str) -> Path:
    return home_dir() / FOLDER / f"{key}.pt"


def is_cached(engine, text: str) -> bool:
    key = _key(engine, text)
    return key is not None and _file(key).is_file()


def prefill_cached(engine, text: str, reserve: int | None = None):
    """engine.prefill(text, reserve), from the disk cache when this model has prefilled this text before."""
    import torch

    from m3analyst.engine.session import PrefillSession

    key = _key(engine, text)
    if key is not None and _file(key).is_file():
        try:
            d = torch.load(_file(key), weights_only=False, map_location=engine.device)
            return PrefillSession(engine, text, d["ids"], d["offsets"], d["cache"], d["logits"], 0.0)
        except Exception:  # noqa: BLE001 - a damaged entry: compute it again
            _file(key).unlink(missing_ok=True)
    sess = engine.prefill(text, reserve=reserve)
    if key is not None:
        _save(key, sess)
    return sess


def _save(key: str, sess) -> None:
    import torch

    target = _file(key)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"ids": sess.prefix_ids, "offsets": sess.prefix_offsets, "cache": sess.cache,
                    "logits": sess.last_logits}, tmp)
        os.replace(tmp, target)
    except OSError:  # a read-only home: prefill again next time
        tmp.unlink(missing_ok=True)
