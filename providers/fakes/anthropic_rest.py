"""Fake Anthropic Messages API: `POST /v1/messages` (JSON or SSE stream) and `GET /v1/models`.

Auth `x-api-key` or `Authorization: Bearer` (else 401 `authentication_error`); `anthropic-version` is required (400 without it).
Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}` with Anthropic's types (429
`rate_limit_error`, 529 `overloaded_error`, ...). A stream is SSE with named events: message_start,
content_block_start, ping, content_block_delta (text_delta) …, content_block_stop, message_delta
(stop_reason, output usage), message_stop. Answers follow the chat dialect; `max_tokens` cuts the
answer (stop_reason `max_tokens`); a refusal directive answers stop_reason `refusal`.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from aiohttp import web

from providers.fakes import chat_dialect
from providers.fakes.rest_common import RequestRecord, RestFake

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 408: "timeout_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "api_error", 504: "timeout_error",
               529: "overloaded_error"}
MODELS = ("claude-3-haiku-20240307", "claude-3-5-haiku-latest", "claude-haiku-4-5", "claude-sonnet-4-5")


class FakeAnthropic(RestFake):
    provider = "anthropic"
    max_body_bytes = 32 * 1024 * 1024
    chunk_chars = 4

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", "/v1/messages", self._messages), ("GET", "/v1/models", self._models)]

    def credential(self, request: web.Request) -> str | None:
        """`x-api-key`, or `Authorization: Bearer` (newer anthropic SDKs send the key that way)."""
        return request.headers.get("x-api-key") or super().credential(request)

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        request_id = "req_" + secrets.token_hex(12)
        return web.Response(status=status, content_type="application/json", headers={"request-id": request_id},
                            body=orjson.dumps({"type": "error", "error": {
                                "type": ERROR_TYPES.get(status, "api_error"), "message": message},
                                "request_id": request_id}))

    async def _models(self, request: web.Request, record: RequestRecord) -> web.Response:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2024-03-07T00:00:00Z"} for m in MODELS]
        return web.json_response({"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})

    async def _messages(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        if not request.headers.get("anthropic-version"):
            return self.error_response(400, "anthropic-version: header is required")
        try:
            body = await request.json(loads=orjson.loads)
        except (ValueError, orjson.JSONDecodeError):
            return self.error_response(400, "There was an error parsing the body of your request.")
        if not isinstance(body, dict):
            return self.error_response(400, "body: Input should be an object")
        model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return self.error_response(400, "max_tokens: Field required")
        if not isinstance(messages, list) or not messages:
            return self.error_response(400, "messages: at least one message is required")
        if any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
            return self.error_response(400, 'messages: Unexpected role "system". Use the top-level `system` '
                                            "parameter for a system prompt.")
        if model not in MODELS:
            return self.error_response(404, f"model: {str(model)[:60]}")
        record.fields = {"model": model, "stream": str(bool(body.get("stream"))).lower()}
        system = body.get("system")
        text, input_tokens = chat_dialect.reply(
            ([{"role": "system", "content": system}] if isinstance(system, str) else []) + messages)
        kind, _ = chat_dialect.directives(messages)
        stop = "refusal" if kind == "refuse" else "end_turn"
        if chat_dialect.tokens(text) > max_tokens:
            text, stop = text[: max_tokens * 4], "max_tokens"
        record.transcript = text
        output_tokens = chat_dialect.tokens(text) if text else 0
        mid = "msg_" + secrets.token_hex(12)
        if body.get("stream"):
            return await self._stream(request, mid, model, text, stop, input_tokens, output_tokens)
        return web.json_response({
            "id": mid, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}] if text else [], "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}, dumps=_dumps)

    async def _stream(self, request: web.Request, mid: str, model: str, text: str, stop: str, input_tokens: int,
                      output_tokens: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")

        await send("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
        await send("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        await send("ping", {"type": "ping"})
        for i in range(0, len(text), self.chunk_chars):
            await send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": text[i:i + self.chunk_chars]}})
            await asyncio.sleep(0)
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": output_tokens}})
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
