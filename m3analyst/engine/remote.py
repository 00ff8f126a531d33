"""An OpenAI-compatible server as the engine (`--backend openai --base-url URL`): vLLM, SGLang, llama.cpp's
server, `m3analyst serve`, or a hosted model. Stdlib HTTP only (urllib), no new dependency.

`RemoteEngine` offers what the memo writer and `ask` use of `Engine`: count_tokens, render_chat, prefill ->
session.generate, generate, context_length, name. The whole prompt goes in one chat request per call (the server
keeps no prefix cache of ours). What it cannot give: block provenance (which prompt blocks the model read) and
token scores, so `block_hits` are zeros, `score` is 0 (passages then keep their lexical order), and the engine's
name says provenance is absent. Token counts are estimated from characters (CHARS_PER_TOKEN, on the safe side).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.request

import numpy as np

from m3analyst.errors import ModelError, UsageError

CHARS_PER_TOKEN = 3.0  # conservative: English BPE tokenizers average ~4 characters a token
DEFAULT_CONTEXT = 32768
_ROLE = re.compile(r"<<m3:(system|user|assistant)>>")


class RemoteEngine:
    device_type = "remote"

    def __init__(self, settings, base_url: str, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 600.0):
        if not re.match(r"^https?://", base_url or ""):
            raise UsageError(f"--base-url must be an http(s) URL, not {base_url!r}")
        self.settings, self.base_url, self.api_key, self.timeout_s = settings, base_url.rstrip("/"), api_key, timeout_s
        listed = self._request("GET", "/models").get("data") or []
        ids = [m.get("id") for m in listed if isinstance(m, dict)]
        if model is None and not ids:
            raise ModelError(f"{self.base_url}/models lists no model; pass --remote-model NAME")
        self.model = model or ids[0]
        meta = next((m for m in listed if isinstance(m, dict) and m.get("id") == self.model), {})
        ctx = meta.get("max_model_len") or meta.get("context_length") or meta.get("context_window")
        self.context_length = int(ctx) if isinstance(ctx, int) and ctx > 0 else DEFAULT_CONTEXT
        self.name = f"{self.model} via the OpenAI-compatible server at {self.base_url} (block provenance absent)"
        self.last_result = None

    # --- what the memo writer and ask use --------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def render_chat(self, messages: list[dict]) -> str:
        """The messages as marked-up text (split and re-joined by the callers, then parsed back by `messages_of`)."""
        return "".join(f"<<m3:{m['role']}>>{m['content']}" for m in messages)

    def prefill(self, prompt_text: str, reserve: int | None = None) -> "RemoteSession":
        return RemoteSession(self, prompt_text)

    def generate(self, prompt_or_messages, max_new_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, stop=None, stream: bool = False):
        if stream:
            raise UsageError("streaming is not available through the openai backend")
        messages = (prompt_or_messages if isinstance(prompt_or_messages, list)
                    else messages_of(prompt_or_messages))
        return self._chat(messages, max_new_tokens, temperature, seed, stop)

    def info(self) -> dict:
        return {"name": self.name, "backend": "openai", "base_url": self.base_url, "model": self.model,
                "context_length": self.context_length, "block_provenance": False}

    # --- HTTP ------------------------------------------------------------------------------------
    def _chat(self, messages, max_new_tokens, temperature, seed, stop):
        from m3analyst.engine.core import EngineStats, GenerationResult

        s = self.settings
        body = {"model": self.model, "messages": messages,
                "max_tokens": s.max_new_tokens if max_new_tokens is None else int(max_new_tokens),
                "temperature": s.temperature if temperature is None else float(temperature),
                "seed": s.seed if seed is None else int(seed)}
        if stop:
            body["stop"] = [stop] if isinstance(stop, str) else list(stop)
        t0 = time.perf_counter()
        reply = self._request("POST", "/chat/completions", body)
        elapsed = time.perf_counter() - t0
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"{self.base_url}: unexpected chat completion reply: {str(reply)[:200]}") from None
        usage = reply.get("usage") or {}
        n_prompt = int(usage.get("prompt_tokens") or self.count_tokens("".join(m["content"] for m in messages)))
        n_new = int(usage.get("completion_tokens") or 0)
        bs = self.settings.attention.block_size
        stats = EngineStats(prompt_tokens=n_prompt, new_tokens=n_new, decode_s=elapsed,
                            decode_tok_s=n_new / elapsed if elapsed > 0 else 0.0, backend="remote", block_size=bs,
                            block_hits=np.zeros(max(1, math.ceil(n_prompt / bs))))
        finish = {"length": "length", "stop": "stop"}.get(choice.get("finish_reason"), "eos")
        self.last_result = GenerationResult(text, [], stats, finish)
        return self.last_result

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            raise ModelError(f"{self.base_url}{path}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ModelError(f"{self.base_url}{path}: {getattr(e, 'reason', None) or e}") from None


class RemoteSession:
    """A 'prefilled' prefix kept as text: each generate sends prefix + suffix as one chat request."""

    def __init__(self, engine: RemoteEngine, prompt_text: str):
        self.engine, self.prompt_text = engine, prompt_text
        step = int(CHARS_PER_TOKEN)
        self.prefix_offsets = [(i, min(i + step, len(prompt_text))) for i in range(0, len(prompt_text), step)]
        self.prefix_ids = list(range(len(self.prefix_offsets)))  # estimated token positions, not real ids
        self.prefill_s = 0.0

    @property
    def n_tokens(self) -> int:
        return len(self.prefix_offsets)

    def generate(self, suffix_text: str = "", max_new_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None, stop=None, stream: bool = False, deadline: float | None = None):
        # deadline: not enforced here (one request; the server bounds its own generation)
        return self.engine.generate(self.prompt_text + suffix_text, max_new_tokens, temperature, seed, stop, stream)

    def score(self, continuation: str) -> float:
        return 0.0  # no token scores from a chat endpoint: callers keep their lexical order


def messages_of(text: str) -> list[dict]:
    """Parse render_chat's markup back into messages (plain text without markup: one user message)."""
    parts = _ROLE.split(text)
    if len(parts) == 1:
        return [{"role": "user", "content": text}]
    return [{"role": role, "content": content} for role, content in zip(parts[1::2], parts[2::2])]


def load_remote(settings) -> RemoteEngine:
    """The openai backend from settings: base_url, api_key_env (the key's variable), remote_model."""
    if not settings.base_url:
        raise UsageError("--backend openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1)")
    key = None
    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env, "")
        if not key:
            raise UsageError(f"--api-key-env {settings.api_key_env}: that environment variable is not set or empty")
    return RemoteEngine(settings, settings.base_url, key, settings.remote_model)
