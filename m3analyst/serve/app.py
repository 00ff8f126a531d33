"""The OpenAI-compatible app: /v1/models, /v1/chat/completions and /v1/completions (streaming as server-sent events).

One engine, loaded once, runs one generation at a time on a worker thread (the engine is not re-entrant); up to
`max_queue` further requests wait, and more are refused with 503 at once. A prompt over `max_prompt_tokens` (or one
that leaves no room for max_tokens in the context) gets 400; malformed JSON or fields 400; a body over
`max_body_bytes` 413; a wrong or missing API key 401 (compared in constant time).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import FastAPI, Request  # module level: FastAPI resolves the handlers' annotations here
from fastapi.responses import JSONResponse, StreamingResponse

from m3analyst.serve.protocol import (GenRequest, RequestError, chunk_body, completion_id, parse_json, parse_request,
                                      response_body)


@dataclass
class ServeLimits:
    max_queue: int = 16  # requests waiting behind the running one
    max_prompt_tokens: int | None = None  # None: the model's context minus max_tokens
    max_body_bytes: int = 4 << 20
    default_max_tokens: int = 256


class Generator:
    """The engine behind a one-thread executor with bounded admission."""

    def __init__(self, engine, limits: ServeLimits):
        self.engine, self.limits = engine, limits
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="m3-engine")
        self.lock = threading.Lock()
        self.waiting = 0

    def admit(self) -> None:
        with self.lock:
            if self.waiting > self.limits.max_queue:  # the running request + max_queue waiting
                raise RequestError(503, f"server busy: {self.limits.max_queue} requests already waiting; retry later",
                                   kind="server_busy")
            self.waiting += 1

    def release(self) -> None:
        with self.lock:
            self.waiting -= 1

    def check_prompt(self, req: GenRequest) -> tuple[str, int]:
        text = self.engine.render_chat(req.messages) if req.chat else req.prompt
        n = self.engine.count_tokens(text)
        room = self.engine.context_length - req.max_tokens - 1
        limit = min(room, self.limits.max_prompt_tokens or room)
        if n > limit:
            raise RequestError(400, f"prompt too long: {n:,} tokens; this server accepts at most {max(limit, 0):,} "
                               f"with max_tokens={req.max_tokens} (model context {self.engine.context_length:,})",
                               "messages" if req.chat else "prompt", kind="context_length_exceeded")
        return text, n

    def run(self, text: str, req: GenRequest, on_piece=None):
        """Generate on the worker thread; on_piece(str) per streamed piece. Returns the engine's GenerationResult."""
        def work():
            kwargs = dict(max_new_tokens=req.max_tokens, temperature=req.temperature, seed=req.seed, stop=req.stop)
            if on_piece is None:
                return self.engine.generate(text, **kwargs)
            for piece in self.engine.generate(text, stream=True, **kwargs):
                on_piece(piece)
            return self.engine.last_result

        return self.pool.submit(work)


def create_app(engine, model_name: str, limits: ServeLimits | None = None, api_key: str | None = None):
    gen = Generator(engine, limits or ServeLimits())
    app = FastAPI(title="m3analyst engine", docs_url=None, redoc_url=None, openapi_url=None)

    def error(e: RequestError) -> JSONResponse:
        headers = {"Retry-After": "1"} if e.status == 503 else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise RequestError(401, "missing or wrong API key (Authorization: Bearer KEY)", kind="authentication_error")

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            authorize(request)
        except RequestError as e:
            return error(e)
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "m3analyst",
                                            "max_model_len": engine.context_length}]}

    async def handle(request: Request, chat: bool):
        try:
            authorize(request)
            size = request.headers.get("content-length")
            if size and size.isdigit() and int(size) > gen.limits.max_body_bytes:
                raise RequestError(413, f"request body over {gen.limits.max_body_bytes:,} bytes")
            raw = await request.body()
            if len(raw) > gen.limits.max_body_bytes:
                raise RequestError(413, f"request body over {gen.limits.max_body_bytes:,} bytes")
            req = parse_request(parse_json(raw), chat, gen.limits.default_max_tokens)
            text, n_prompt = gen.check_prompt(req)
            gen.admit()
        except RequestError as e:
            return error(e)
        rid = completion_id(chat)
        if req.stream:
            return StreamingResponse(_stream(gen, req, text, rid, model_name), media_type="text/event-stream")
        try:
            result = await asyncio.wrap_future(gen.run(text, req))
        finally:
            gen.release()
        return response_body(req, rid, model_name, result.text, result.finish_reason, n_prompt, result.stats.new_tokens)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, chat=False)

    app.state.generator = gen
    return app


async def _stream(gen: Generator, req: GenRequest, text: str, rid: str, model_name: str):
    """Server-sent events: a chunk per generated piece, a last chunk with finish_reason, then [DONE]."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    try:
        future = gen.run(text, req, on_piece=lambda p: loop.call_soon_threadsafe(pieces.put_nowait, p))
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(pieces.put_nowait, None))
        if req.chat:
            first = chunk_body(req, rid, model_name, "")
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            yield _event(first)
        while (piece := await pieces.get()) is not None:
            yield _event(chunk_body(req, rid, model_name, piece))
        result = future.result()
        finish = "length" if result.finish_reason in ("length", "context") else "stop"
        yield _event(chunk_body(req, rid, model_name, None, finish))
        yield "data: [DONE]\n\n"
    finally:
        gen.release()


def _event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def serve_forever(app, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5)

