"""Fake OpenAI-shaped chat completion APIs: MiniMax, OpenRouter and OpenAI (chat beside its transcription).

`POST …/chat/completions` (MiniMax: `/v1/text/chatcompletion_v2`) answering `chat.completion` objects or,
with `stream: true`, SSE `chat.completion.chunk` events ending in `data: [DONE]` (usage in a last chunk
with empty choices when `stream_options.include_usage`, as OpenAI does; MiniMax and OpenRouter always).
Answers follow the chat dialect (providers/fakes/chat_dialect.py); `max_tokens` cuts the answer
(finish_reason `length`). Errors: OpenAI/OpenRouter `{"error": {...}}` with the HTTP status; MiniMax
answers HTTP 200 with `base_resp.status_code` (1002 rate limit, 1004 auth, 1001 timeout, 1013 server),
as the real API does. HTTP faults by request number as every REST fake (providers/fakes/rest_common.py).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web

from providers.fakes import chat_dialect
from providers.fakes.rest_common import RequestRecord, RestFake
from providers.fakes.whisper_rest import FakeOpenAIRest

# HTTP status of a fault → MiniMax's base_resp code
MINIMAX_STATUS_CODES = {400: 2013, 401: 1004, 402: 1008, 403: 1004, 408: 1001, 429: 1002, 500: 1013,
                        502: 1013, 503: 1013, 504: 1001}


class ChatCompletions:
    """The chat route of an OpenAI-shaped fake (mixed into a RestFake)."""

    chat_path: ClassVar[str] = "/v1/chat/completions"
    chat_models: ClassVar[tuple[str, ...]] = ()
    owner: ClassVar[str] = ""
    stream_comment: ClassVar[bytes | None] = None  # OpenRouter sends `: OPENROUTER PROCESSING` first
    always_stream_usage: ClassVar[bool] = False
    chunk_chars: ClassVar[int] = 4  # characters per streamed delta

    def chat_error(self, status: int, message: str, code: str | None = None) -> web.Response:
        kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error")
        return web.Response(status=status, content_type="application/json", body=orjson.dumps(
            {"error": {"message": message, "type": kind, "param": None, "code": code}}))

    def extra_body(self) -> dict[str, Any]:
        return {}

    async def _chat(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        try:
            body = await request.json(loads=orjson.loads)
        except (ValueError, orjson.JSONDecodeError):
            return self.chat_error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return self.chat_error(400, "'messages' is a required property", "missing_required_parameter")
        model = body.get("model")
        if not isinstance(model, str) or not model or (self.chat_models and model not in self.chat_models):
            return self.chat_error(404 if self.chat_models else 400,
                                   f"The model `{str(model)[:60]}` does not exist", "model_not_found")
        record.fields = {"model": model, "stream": str(bool(body.get("stream"))).lower()}
        text, input_tokens = chat_dialect.reply(body["messages"])
        _, confidence = chat_dialect.directives(body["messages"])
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 4096
        finish = "stop"
        if chat_dialect.tokens(text) > max_tokens:
            text, finish = text[: int(max_tokens) * 4], "length"
        record.transcript = text
        output_tokens = chat_dialect.tokens(text) if text else 0
        usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                 "total_tokens": input_tokens + output_tokens}
        cid = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())
        if body.get("stream"):
            include = self.always_stream_usage or bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, cid, created, model, text, finish, usage if include else None)
        answer: dict[str, Any] = {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": finish}],
            "usage": usage, **self.extra_body()}
        if confidence is not None:
            answer["confidence"] = confidence
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def _stream(self, request: web.Request, cid: str, created: int, model: str, text: str, finish: str,
                      usage: dict[str, int] | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        if self.stream_comment:
            await response.write(self.stream_comment + b"\n\n")

        def chunk(delta: dict[str, Any], finish_reason: str | None, choices: bool = True, **more: Any) -> bytes:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
                    if choices else [], **more}
            return b"data: " + orjson.dumps(body) + b"\n\n"

        await response.write(chunk({"role": "assistant", "content": ""}, None))
        for i in range(0, len(text), self.chunk_chars):
            await response.write(chunk({"content": text[i:i + self.chunk_chars]}, None))
            await asyncio.sleep(0)
        await response.write(chunk({}, finish))
        if usage is not None:
            await response.write(chunk({}, None, choices=False, usage=usage, **self.extra_body()))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _chat_models(self, request: web.Request, record: RequestRecord) -> web.Response:
        models = self.chat_models or ("any",)
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": self.owner} for m in models]
        return web.json_response({"object": "list", "data": data})


class FakeMiniMax(ChatCompletions, RestFake):
    provider = "minimax"
    chat_path = "/v1/text/chatcompletion_v2"
    owner = "minimax"
    always_stream_usage = True
    max_body_bytes = 20 * 1024 * 1024

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", self.chat_path, self._chat), ("GET", "/v1/models", self._chat_models)]

    def extra_body(self) -> dict[str, Any]:
        return {"input_sensitive": False, "output_sensitive": False,
                "base_resp": {"status_code": 0, "status_msg": ""}}

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        """MiniMax reports errors as HTTP 200 with a non-zero base_resp.status_code."""
        minimax_code = MINIMAX_STATUS_CODES.get(status, 1000)
        return web.json_response({"id": "", "choices": None, "created": int(time.time()), "model": "",
                                  "object": "chat.completion", "usage": None,
                                  "base_resp": {"status_code": minimax_code, "status_msg": message}})

    def chat_error(self, status: int, message: str, code: str | None = None) -> web.Response:
        return self.error_response(status, message, code)


class FakeOpenRouter(ChatCompletions, RestFake):
    provider = "openrouter"
    chat_path = "/api/v1/chat/completions"
    owner = "openrouter"
    stream_comment = b": OPENROUTER PROCESSING"
    always_stream_usage = True

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", self.chat_path, self._chat), ("GET", "/api/v1/models", self._chat_models)]

    def extra_body(self) -> dict[str, Any]:
        return {"provider": "FakeRouter"}

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        # OpenRouter: {"error": {"code": <http status>, "message", "metadata"}}
        return web.Response(status=status, content_type="application/json",
                            body=orjson.dumps({"error": {"code": status, "message": message, "metadata": {}}}))

    def chat_error(self, status: int, message: str, code: str | None = None) -> web.Response:
        return self.error_response(status, message, code)


class FakeOpenAIWithChat(ChatCompletions, FakeOpenAIRest):
    """The OpenAI REST fake: transcription (whisper_rest.py) plus chat completions (vision's last resort)."""

    chat_path = "/v1/chat/completions"
    owner = "openai"

    def routes(self) -> list[tuple[str, str, Any]]:
        return [*super().routes(), ("POST", self.chat_path, self._chat)]

    def chat_error(self, status: int, message: str, code: str | None = None) -> web.Response:
        return self.error_response(status, message, code)

