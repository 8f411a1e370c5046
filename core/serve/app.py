"""The HTTP face of the engine: an OpenAI-compatible FastAPI application.

Every failure a client can cause is answered with OpenAI's error object and a 4xx status (bad JSON
or fields 400, a wrong key 401, an unknown model 404, a full queue 429); nothing a request does can
stop the server. The request's ``model`` picks the adapter: the base model's name runs with every
adapter off, an adapter's name runs with that adapter alone.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from ..recipes import bridge
from . import protocol
from .engine import Engine, EngineClosed, Job, QueueFull


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass
class Served:
    """What the server offers: the engine, the names it answers to and its defaults."""

    engine: Engine
    base_name: str
    routes: dict[str, str | None]  # public model id -> adapter name inside the model (None: the base)
    api_key: str | None = None
    max_model_len: int = 2048
    default_max_tokens: int = 256
    default_temperature: float = 0.0
    default_top_p: float = 1.0
    system: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # other accepted ids (the --model path) -> public id

    def route(self, model: str) -> tuple[str, str | None]:
        public = self.aliases.get(model, model)
        if public not in self.routes:
            raise ApiError(404, f"model '{model}' does not exist; served: {', '.join(self.routes)}",
                           param="model", code="model_not_found")
        return public, self.routes[public]


def create_app(served: Served) -> FastAPI:
    app = FastAPI(title="swiftune", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=_lifespan(served.engine))

    async def authorized(request: Request) -> None:
        if served.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), served.api_key.encode()):
            raise ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(protocol.error_body(exc.status, exc.message, param=exc.param, code=exc.code), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, param = 400, *_describe(exc.errors())
        return JSONResponse(protocol.error_body(status, message, param=param), status)

    @app.exception_handler(404)
    async def _not_found(request: Request, _: Exception) -> JSONResponse:
        return JSONResponse(protocol.error_body(404, f"no route {request.method} {request.url.path}"), 404)

    @app.exception_handler(405)
    async def _bad_method(request: Request, _: Exception) -> JSONResponse:
        return JSONResponse(protocol.error_body(405, f"method {request.method} not allowed on {request.url.path}"), 405)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(protocol.error_body(500, f"internal error: {type(exc).__name__}: {exc}"), 500)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "waiting": served.engine.waiting}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> dict:
        cards = [protocol.model_card(name, None if adapter is None else served.base_name)
                 for name, adapter in served.routes.items()]
        return {"object": "list", "data": cards}

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat(body: protocol.ChatCompletionRequest, request: Request) -> Any:
        try:
            messages = _chat_messages(body, served.system)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        gen = served.engine.generator
        prompt = bridge.encode_prompt(messages, gen.tokenizer, gen.template)
        return await _answer(served, body, prompt, request, chat=True)

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def complete(body: protocol.CompletionRequest, request: Request) -> Any:
        prompt = served.engine.generator.tokenizer(body.prompt)["input_ids"]
        return await _answer(served, body, list(prompt), request, chat=False)

    return app


def _lifespan(engine: Engine):
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:  # the HTTP server has finished its in-flight requests; let the worker drain and stop
            await asyncio.to_thread(engine.close)

    return lifespan


def _describe(errors: list[dict]) -> tuple[str, str | None]:
    """One line for the first validation error, naming the field (OpenAI's ``param``)."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"malformed JSON body: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    if param is None and first.get("type") == "missing":
        return "request body is missing or not a JSON object", None
    return (f"{param}: {msg}" if param else msg), param


def _chat_messages(body: protocol.ChatCompletionRequest, system: str | None) -> list[dict]:
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
    if messages[-1]["role"] == "assistant":
        raise ValueError("the last message must not be the assistant's: there is nothing to answer")
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


async def _answer(served: Served, body: protocol.SamplingRequest, prompt: list[int], request: Request, *, chat: bool) -> Any:
    public, adapter = served.route(body.model)
    room = served.max_model_len - len(prompt)
    if room < 1:
        raise ApiError(400, f"the prompt has {len(prompt)} tokens; this server's limit is {served.max_model_len} "
                       "tokens for prompt and answer together", param="messages" if chat else "prompt",
                       code="context_length_exceeded")
    asked = body.new_tokens()
    if asked is not None and asked > room:
        raise ApiError(400, f"max_tokens={asked} and the prompt's {len(prompt)} tokens exceed this server's limit "
                       f"of {served.max_model_len} tokens", param="max_tokens", code="context_length_exceeded")
    loop = asyncio.get_running_loop()
    max_new = asked or min(served.default_max_tokens, room)
    job = Job(prompt=prompt, adapter=adapter, max_new_tokens=max_new, min_tokens=min(body.min_tokens, max_new),
              temperature=served.default_temperature if body.temperature is None else body.temperature,
              top_p=served.default_top_p if body.top_p is None else body.top_p, seed=body.seed,
              stops=body.stops(), stream=body.stream, loop=loop, events=asyncio.Queue())
    try:
        served.engine.submit(job)
    except QueueFull as exc:
        raise ApiError(429, str(exc), code="queue_full") from None
    except EngineClosed as exc:
        raise ApiError(503, str(exc), code="shutting_down") from None
    rid = protocol.new_id("chatcmpl" if chat else "cmpl")
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_sse(job, rid, public, chat, include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    _, text, finish, n_prompt, n_answer = await _wait_done(job, request)
    build = protocol.chat_response if chat else protocol.completion_response
    return build(rid, public, text, finish, n_prompt, n_answer)


async def _wait_done(job: Job, request: Request) -> tuple:
    """The job's final event; a client that goes away cancels its job (its slot is freed)."""
    try:
        while True:
            try:
                event = await asyncio.wait_for(job.events.get(), timeout=0.25)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    job.cancelled.set()
                    raise ApiError(499, "client closed the request") from None
                continue
            if event[0] == "done":
                return event
            if event[0] == "error":
                raise ApiError(500, f"generation failed: {event[1]}")
    except asyncio.CancelledError:
        job.cancelled.set()
        raise


async def _sse(job: Job, rid: str, model: str, chat: bool, include_usage: bool) -> AsyncIterator[str]:
    def line(body: dict) -> str:
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        if chat:
            yield line(protocol.chat_chunk(rid, model, {"role": "assistant", "content": ""}, None))
        while True:
            event = await job.events.get()
            if event[0] == "delta":
                delta = event[1]
                yield line(protocol.chat_chunk(rid, model, {"content": delta}, None) if chat
                           else protocol.completion_chunk(rid, model, delta, None))
            elif event[0] == "done":
                _, _, finish, n_prompt, n_answer = event
                yield line(protocol.chat_chunk(rid, model, {}, finish) if chat
                           else protocol.completion_chunk(rid, model, "", finish))
                if include_usage:  # OpenAI's shape: one more chunk, no choices, the usage
                    body = protocol.chat_chunk(rid, model, {}, None) if chat else protocol.completion_chunk(rid, model, "", None)
                    body.update(choices=[], usage=protocol.usage(n_prompt, n_answer))
                    yield line(body)
                break
            elif event[0] == "error":
                yield line(protocol.error_body(500, f"generation failed: {event[1]}"))
                break
        yield "data: [DONE]\n\n"
    finally:  # also when the client disconnects mid-stream: its row stops at the next token
        job.cancelled.set()
