"""HTTP edge of the vision and reasoning chains (docs/chat.md): the OpenAI-compatible
`POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models`, and the native `POST /api/v1/reason` and
`POST /api/v1/vision/analyze`.

Routing: a request whose messages hold an `image_url` part goes through the vision chain; otherwise
`model` `reasoning` or `auto` through the reasoning chain (`vision` without an image is refused).
Checks, each with a stable `code`, before any provider is contacted: draining (503), client token (401),
body size (413), media type (415), JSON and options (400). A stream falls back only before its first
chunk: the chain commits at the answering provider's 2xx status line, and we send nothing before it.
Nothing the caller sent is logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from aiohttp import web

from gateway.app_state import json_response, state
from gateway.auth import token_from_scope
from gateway.chains.http_api import (
    HttpProblem,
    error_response,
    origin_ok,
    outcome_headers,
    parse_form,
    read_capped,
)
from gateway.chains.runner import ChainOutcome, ChainStream
from gateway.chains.service import ChainService, new_request_id
from gateway.errors import ClientError, ProviderUnavailable, Unauthorized
from gateway.logs import log_event
from providers.chains.chat import DEFAULT_MAX_TOKENS, ChatDelta, ChatOptions, ChatResult, data_url

log = logging.getLogger("gateway.chains.chat")
ROUTES = {"reasoning": "reasoning", "auto": "reasoning", "vision": "vision"}
ALL_FAILED = {"reasoning": "every reasoning provider failed", "vision": "every vision provider failed"}


# -- intake -----------------------------------------------------------------------------------------
async def _intake(request: web.Request) -> bytes:
    if state(request).runtime.draining:
        raise HttpProblem(503, "draining", "the gateway is shutting down; retry on another instance")
    origin_ok(request)
    token, _ = token_from_scope(request.headers, request.query_string)
    state(request).client_auth.verify(token)
    service: ChainService = state(request).chains
    return await read_capped(request, service.settings.upload_limit_bytes)


def _json(body: bytes, request: web.Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HttpProblem(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HttpProblem(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpProblem(400, "bad_json", "the body must be a JSON object")
    return data


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise HttpProblem(400, "bad_option", f"{name} must be an integer")
    return value


def _float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HttpProblem(400, "bad_option", f"{name} must be a number")
    return float(value)


def _complexity(request: web.Request, value: Any) -> str:
    value = value if value is not None else request.headers.get("x-voice-gateway-complexity", "standard")
    if not isinstance(value, str):
        raise HttpProblem(400, "bad_option", "complexity must be simple, standard or complex")
    return value


async def _run(request: web.Request, chain: str, options: ChatOptions, request_id: str) -> ChainOutcome:
    log_event(log, logging.DEBUG, "chat.request", f"{chain} request", request_id=request_id, chain=chain,
              messages=len(options.messages), stream=options.stream, complexity=options.complexity)
    return await state(request).chains.chat(chain, options, request_id=request_id)


def _problem(err: Exception, request_id: str) -> web.StreamResponse:
    if isinstance(err, Unauthorized):
        return error_response(getattr(err, "status", 401), err.code, err.message, request_id, kind="authentication_error")
    if isinstance(err, HttpProblem):
        return error_response(err.status, err.code, err.message, request_id)
    assert isinstance(err, ClientError)
    return error_response(400, err.code, err.message, request_id)


def _failed(chain: str, outcome: ChainOutcome, request_id: str) -> web.StreamResponse:
    if outcome.only_bad_input:
        return error_response(400, "request_rejected", "every provider refused this request", request_id, outcome)
    return error_response(502, outcome.code or "", ALL_FAILED[chain], request_id, outcome, kind="provider_error")


def _gateway_fields(chain: str, outcome: ChainOutcome) -> dict[str, Any]:
    return {"chain": chain, "provider": outcome.provider, "fallback_used": outcome.fallback_used,
            "attempts": [a.to_dict() for a in outcome.attempts], "cost_usd": round(outcome.cost_usd, 8),
            "request_id": outcome.request_id, "cost_preservation": outcome.cost_preservation}


def _usage(result_usage: Any) -> dict[str, int]:
    inp, out = result_usage.input_tokens or 0, result_usage.output_tokens or 0
    return {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}


# -- OpenAI-compatible ------------------------------------------------------------------------------
async def chat_completions(request: web.Request) -> web.StreamResponse:
    request_id = new_request_id("reasoning")
    try:
        data = _json(await _intake(request), request)
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise HttpProblem(400, "bad_messages", "messages must be a list")
        options = ChatOptions(
            messages=tuple(m if isinstance(m, dict) else {} for m in messages),
            complexity=_complexity(request, data.get("complexity")),
            max_tokens=_int(data.get("max_completion_tokens", data.get("max_tokens")), "max_tokens",
                            DEFAULT_MAX_TOKENS),
            temperature=_float(data.get("temperature"), "temperature"), stream=bool(data.get("stream")))
        model = data.get("model")
        chain = "vision" if options.has_images else ROUTES.get(model) if isinstance(model, str) else None
        if chain is None:
            raise HttpProblem(404, "model_not_found", f"model must be one of {', '.join(ROUTES)} (GET /v1/models)")
        if chain == "vision" and not options.has_images:
            raise HttpProblem(400, "missing_image", "model vision needs an image_url part")
        request_id = new_request_id(chain)
        outcome = await _run(request, chain, options, request_id)
    except ClientError as err:
        return _problem(err, request_id)
    if not outcome.ok:
        return _failed(chain, outcome, request_id)
    headers = outcome_headers(outcome, request_id)
    created = int(time.time())
    if isinstance(outcome.result, ChainStream):
        include_usage = bool((data.get("stream_options") or {}).get("include_usage")) \
            if isinstance(data.get("stream_options"), dict) else False
        headers.pop("x-voice-gateway-cost-usd")  # known when the stream ends: in its last chunk
        return await stream_sse(request, _sse(chain, outcome, outcome.result, created, include_usage),
                                headers | {"Cache-Control": "no-cache"})
    result: ChatResult = outcome.result
    body = {"id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": created,
            "model": outcome.model or result.model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text, "refusal": None},
                         "logprobs": None, "finish_reason": result.finish_reason or "stop"}],
            "usage": _usage(result.usage), "voice_gateway": _gateway_fields(chain, outcome)}
    return json_response(body, headers=headers)


async def stream_sse(request: web.Request, events: AsyncGenerator[bytes, None], headers: dict[str, str]) -> web.StreamResponse:
    """Server-sent events: each chunk written as it comes. A client that goes away mid-stream closes
    the generator (and with it the provider's stream)."""
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "text/event-stream"
    await response.prepare(request)
    async with contextlib.aclosing(events):
        try:
            async for chunk in events:
                await response.write(chunk)
        except ConnectionError:  # the client went away (aiohttp's ClientConnectionResetError)
            return response
    await response.write_eof()
    return response


async def _sse(chain: str, outcome: ChainOutcome, stream: ChainStream, created: int,
               include_usage: bool) -> AsyncGenerator[bytes, None]:
    cid = f"chatcmpl-{outcome.request_id}"

    def chunk(delta: dict[str, Any], finish: str | None, *, choices: bool = True, **more: Any) -> bytes:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": outcome.model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices
                else [], **more}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    finish: str | None = None
    try:
        async for delta in stream.events():
            assert isinstance(delta, ChatDelta)
            if delta.text:
                yield chunk({"content": delta.text}, None)
            if delta.finish_reason:
                finish = delta.finish_reason
    except ProviderUnavailable as err:  # after the commit: no fallback, the client learns it in-band
        yield b"data: " + orjson.dumps({"error": {"message": err.message, "type": "provider_error",
                                                   "code": "stream_interrupted"}}) + b"\n\n"
        return
    # the stream has ended and is billed: its cost rides on the finish chunk (every chunk a client that
    # did not ask for usage sees has a choice, as OpenAI's do), and on the usage chunk when asked for
    fields = _gateway_fields(chain, outcome)
    yield chunk({}, finish or "stop", voice_gateway=fields)
    if include_usage and stream.usage is not None:
        yield chunk({}, None, choices=False, usage=_usage(stream.usage), voice_gateway=fields)
    yield b"data: [DONE]\n\n"


def _model(service: ChainService, route: str) -> dict[str, Any]:
    chain = ROUTES[route]
    return {"id": route, "object": "model", "created": 0, "owned_by": "voice-gateway", "chain": chain,
            "providers": list(service.orders[chain])}


def _client_ok(request: web.Request) -> web.StreamResponse | None:
    try:
        origin_ok(request)
        token, _ = token_from_scope(request.headers, request.query_string)
        state(request).client_auth.verify(token)
    except ClientError as err:
        return _problem(err, new_request_id("reasoning"))
    return None


async def list_models(request: web.Request) -> web.StreamResponse:
    if (denied := _client_ok(request)) is not None:
        return denied
    return json_response({"object": "list", "data": [_model(state(request).chains, r) for r in ROUTES]})


async def retrieve_model(request: web.Request) -> web.StreamResponse:
    if (denied := _client_ok(request)) is not None:
        return denied
    route = request.match_info["model"]
    if route not in ROUTES:
        return error_response(404, "model_not_found", f"model must be one of {', '.join(ROUTES)}", new_request_id("reasoning"))
    return json_response(_model(state(request).chains, route))


# -- native -----------------------------------------------------------------------------------------
def _native(chain: str, outcome: ChainOutcome, request_id: str) -> web.StreamResponse:
    if not outcome.ok:
        return _failed(chain, outcome, request_id)
    result: ChatResult = outcome.result
    body = {"text": result.text, "provider": outcome.provider, "model": outcome.model,
            "fallback_used": outcome.fallback_used, "attempts": [a.to_dict() for a in outcome.attempts],
            "usage": {"input_tokens": result.usage.input_tokens or 0,
                      "output_tokens": result.usage.output_tokens or 0},
            "cost_usd": round(outcome.cost_usd, 8), "request_id": request_id,
            "cost_preservation": outcome.cost_preservation}
    return json_response(body, headers=outcome_headers(outcome, request_id))


def _text(value: Any, name: str, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise HttpProblem(400, "bad_option", f"{name} must be a non-empty string" if required
                          else f"{name} must be a string")
    return value


async def reason(request: web.Request) -> web.StreamResponse:
    request_id = new_request_id("reasoning")
    try:
        data = _json(await _intake(request), request)
        prompt = _text(data.get("prompt"), "prompt", required=True)
        context = _text(data.get("context"), "context", required=False)
        messages = ([{"role": "system", "content": context}] if context else []) + [{"role": "user", "content": prompt}]
        options = ChatOptions(messages=tuple(messages), complexity=_complexity(request, data.get("complexity")),
                              max_tokens=_int(data.get("max_tokens"), "max_tokens", DEFAULT_MAX_TOKENS))
        outcome = await _run(request, "reasoning", options, request_id)
    except ClientError as err:
        return _problem(err, request_id)
    return _native("reasoning", outcome, request_id)


async def vision_analyze(request: web.Request) -> web.StreamResponse:
    request_id = new_request_id("vision")
    try:
        body = await _intake(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            fields = await parse_form(request, body)
            image = fields.get("image")
            if not isinstance(image, bytes):
                raise HttpProblem(400, "missing_image", "the multipart body needs an `image` part")
            url = data_url(image)
        else:
            fields = _json(body, request)
            url = _image_url(fields.get("image"))
        prompt = _text(fields.get("prompt") or "Describe this image.", "prompt", required=True)
        options = ChatOptions(
            messages=({"role": "user", "content": [{"type": "text", "text": prompt},
                                                   {"type": "image_url", "image_url": {"url": url}}]},),
            complexity=_complexity(request, fields.get("complexity")))
        outcome = await _run(request, "vision", options, request_id)
    except ClientError as err:
        return _problem(err, request_id)
    return _native("vision", outcome, request_id)


def _image_url(value: Any) -> str:
    """A data URL, an http(s) URL, or bare base64 (sniffed)."""
    if not isinstance(value, str) or not value:
        raise HttpProblem(400, "missing_image", "image must be a base64 string, a data: URL or an http(s) URL")
    if value.startswith(("data:", "http://", "https://")):
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HttpProblem(400, "bad_image", "image is not valid base64") from None
    return data_url(raw)


routes = [
    web.post("/v1/chat/completions", chat_completions),
    web.get("/v1/models", list_models),
    web.get("/v1/models/{model}", retrieve_model),
    web.post("/api/v1/reason", reason),
    web.post("/api/v1/vision/analyze", vision_analyze),
]
