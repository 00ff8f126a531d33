"""Requests and responses of the OpenAI-compatible API, checked by hand so every bad field gets a 4xx naming it.

Only the subset the engine implements: messages or prompt, max_tokens, temperature, seed, stop, stream.
Unknown fields are ignored (clients send many).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass


class RequestError(Exception):
    """A client error: HTTP `status` with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}


@dataclass
class GenRequest:
    chat: bool
    prompt: str | None  # completions
    messages: list[dict] | None  # chat
    max_tokens: int
    temperature: float
    seed: int
    stop: tuple[str, ...]
    stream: bool
    model: str | None


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(400, f"malformed JSON body: {e}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    return body


def parse_request(body: dict, chat: bool, default_max_tokens: int) -> GenRequest:
    messages = _messages(body.get("messages")) if chat else None
    prompt = None if chat else _prompt(body.get("prompt"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = default_max_tokens if max_tokens is None else _integer(max_tokens, "max_tokens", 0, 1 << 20)
    temperature = _number(body.get("temperature", 0.0), "temperature", 0.0, 2.0)
    seed = _integer(body.get("seed") if body.get("seed") is not None else 0, "seed", -(1 << 63), 1 << 63)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be true or false", "stream")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(400, "model must be a string", "model")
    return GenRequest(chat, prompt, messages, max_tokens, temperature, seed, _stop(body.get("stop")), stream, model)


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RequestError(400, "messages must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer"):
            raise RequestError(400, f"messages[{i}] needs a role of system, user, assistant or developer", "messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
                raise RequestError(400, f"messages[{i}].content: only text parts are supported", "messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(400, f"messages[{i}].content must be a string", "messages")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def _prompt(value) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise RequestError(400, "prompt must be a non-empty string (one prompt per request)", "prompt")
    return value


def _stop(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > 4 or not all(isinstance(s, str) and s for s in value):
        raise RequestError(400, "stop must be a string or a list of up to 4 non-empty strings", "stop")
    return tuple(value)


def _integer(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, f"{name} must be an integer from {low} to {high}", name)
    return value


def _number(value, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(400, f"{name} must be a number from {low} to {high}", name)
    return float(value)


def completion_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]


def response_body(req: GenRequest, rid: str, model: str, text: str, finish: str, prompt_tokens: int,
                  new_tokens: int) -> dict:
    finish = "length" if finish == "context" else finish if finish in ("length", "stop") else "stop"
    choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish} if req.chat
              else {"index": 0, "text": text, "logprobs": None, "finish_reason": finish})
    return {"id": rid, "object": "chat.completion" if req.chat else "text_completion", "created": int(time.time()),
            "model": model, "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": new_tokens,
                      "total_tokens": prompt_tokens + new_tokens}}


def chunk_body(req: GenRequest, rid: str, model: str, piece: str | None, finish: str | None = None) -> dict:
    if req.chat:
        delta = {} if piece is None else {"content": piece}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": finish}
    return {"id": rid, "object": "chat.completion.chunk" if req.chat else "text_completion", "created": int(time.time()),
            "model": model, "choices": [choice]}
