"""OpenAI-shaped chat completions, sans-I/O: MiniMax, OpenRouter and OpenAI (vision and reasoning chains).

`POST {base}/chat/completions` (MiniMax: `{origin}/v1/text/chatcompletion_v2`), Bearer auth, messages
in the OpenAI shape (image_url parts for vision), `stream: true` answers as SSE `data:` chunks ending in
`[DONE]`, with the usage in the last chunk (`stream_options.include_usage`). MiniMax may answer an
error as HTTP 200 with a non-zero `base_resp.status_code`: that code classifies it, not the status.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import orjson

from providers.chains.base import (
    AttemptError,
    ChainEndpoint,
    ChainProvider,
    ErrorClass,
    HttpRequest,
    HttpResponse,
    Usage,
    classify_status,
    error_message,
    retry_after_s,
)
from providers.chains.chat import ChatDelta, ChatOptions, ChatResult, chat_usage
from providers.chains.sse import SseDecoder

# MiniMax `base_resp.status_code` → class (its documented error codes)
MINIMAX_CODES: dict[int, ErrorClass] = {
    1000: ErrorClass.SERVER,  # unknown error
    1001: ErrorClass.TIMEOUT,  # request timeout
    1002: ErrorClass.RATE_LIMIT,  # RPM limit
    1004: ErrorClass.AUTH,  # authentication failed
    1008: ErrorClass.AUTH,  # insufficient balance (a billing problem: retrying is pointless)
    1013: ErrorClass.SERVER,  # internal service error
    1024: ErrorClass.SERVER,  # internal error
    1026: ErrorClass.BAD_INPUT,  # input flagged as sensitive
    1027: ErrorClass.LOW_QUALITY,  # output flagged as sensitive
    1033: ErrorClass.SERVER,  # system error
    1039: ErrorClass.RATE_LIMIT,  # TPM limit
    2013: ErrorClass.BAD_INPUT,  # invalid parameters
}


class OpenAIChat(ChainProvider[ChatOptions, ChatResult]):
    path: ClassVar[str] = "/chat/completions"
    streams = True
    default: ClassVar[str] = ""

    def default_model(self) -> str:
        return self.default

    def upload_size(self, options: ChatOptions) -> int:
        return options.upload_size()

    def headers(self, endpoint: ChainEndpoint) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {endpoint.api_key}"), ("Content-Type", "application/json"))

    def payload(self, options: ChatOptions) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": list(options.messages),
                                "max_tokens": options.max_tokens}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        return body

    def build(self, options: ChatOptions, endpoint: ChainEndpoint) -> HttpRequest:
        body = self.payload(options)
        if options.stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return HttpRequest(method="POST", url=f"{endpoint.base_url}{self.path}", headers=self.headers(endpoint),
                           body=orjson.dumps(body))

    def health_request(self, endpoint: ChainEndpoint) -> HttpRequest:
        return HttpRequest(method="GET", url=f"{endpoint.base_url}/models", headers=self.headers(endpoint)[:1])

    def parse(self, response: HttpResponse) -> ChatResult | AttemptError:
        if response.status != 200:
            message, code = error_message(response.body)
            error_class = self.classify(response)
            if code == "insufficient_quota":
                error_class = ErrorClass.AUTH
            return AttemptError(error_class=error_class, status=response.status,
                                message=message or f"HTTP {response.status}", provider_code=code,
                                retry_after_s=retry_after_s(response.headers))
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            return AttemptError(error_class=ErrorClass.PROTOCOL, status=200, message="the answer is not JSON")
        if (failed := self.body_error(data)) is not None:
            return failed
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            return AttemptError(error_class=ErrorClass.PROTOCOL, status=200,
                                message="the answer holds no choices[0].message")
        confidence = data.get("confidence", choice.get("confidence"))
        return ChatResult(text=text, model=str(data.get("model") or self.model),
                          finish_reason=choice.get("finish_reason"), refusal=bool(message.get("refusal")),
                          confidence=float(confidence) if isinstance(confidence, int | float) else None,
                          usage=chat_usage(data.get("usage")))

    def body_error(self, data: dict[str, Any]) -> AttemptError | None:
        """An error carried by a 200 body (MiniMax's base_resp; OpenRouter's mid-answer `error`)."""
        error = data.get("error")
        if isinstance(error, dict) and "choices" not in data:
            return _error_object(error)
        return None

    def usage(self, result: ChatResult) -> Usage:
        return result.usage

    def stream_decoder(self) -> OpenAIChatStream:
        return OpenAIChatStream()


class OpenAIChatStream:
    """SSE chat.completion.chunk events → ChatDelta; `usage` from the chunk that carries it."""

    def __init__(self) -> None:
        self._sse = SseDecoder()
        self.usage = Usage()
        self.error: AttemptError | None = None  # an error the stream carried in-band

    def feed(self, data: bytes) -> list[ChatDelta]:
        return self._deltas(self._sse.feed(data))

    def finish(self) -> list[ChatDelta]:
        return self._deltas(self._sse.finish())

    def _deltas(self, events: list[Any]) -> list[ChatDelta]:
        out: list[ChatDelta] = []
        for event in events:
            if event.data.strip() == "[DONE]":
                continue
            try:
                chunk = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            try:
                out += self._chunk(chunk)
            except (TypeError, AttributeError, ValueError):  # a malformed chunk is skipped, never raised
                continue
        return out

    def _chunk(self, chunk: dict[str, Any]) -> list[ChatDelta]:
        if self.error is None and (error := _in_band_error(chunk)) is not None:
            self.error = error
            return []
        if isinstance(chunk.get("usage"), dict):
            self.usage = chat_usage(chunk["usage"])
        out: list[ChatDelta] = []
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
            finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
            if (isinstance(text, str) and text) or finish:
                out.append(ChatDelta(text=text if isinstance(text, str) else "", finish_reason=finish))
        return out


def _in_band_error(chunk: dict[str, Any]) -> AttemptError | None:
    """MiniMax's base_resp or OpenRouter's `error` object inside a stream."""
    base = chunk.get("base_resp")
    if isinstance(base, dict) and (failed := _base_resp(base)) is not None:
        return failed
    error = chunk.get("error")
    return _error_object(error) if isinstance(error, dict) else None


def _error_object(error: dict[str, Any]) -> AttemptError:
    """OpenRouter's `{"code": <HTTP status>, "message"}` inside a 200 body or a stream."""
    code = error.get("code")
    status = code if isinstance(code, int) and not isinstance(code, bool) else 502
    return AttemptError(error_class=classify_status(status), status=200,
                        message=str(error.get("message", ""))[:200], provider_code=str(status))


def _base_resp(base: dict[str, Any]) -> AttemptError | None:
    """MiniMax's `base_resp`: None when status_code is 0 (or missing)."""
    code = base.get("status_code")
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        return None
    return AttemptError(error_class=MINIMAX_CODES.get(code, ErrorClass.SERVER), status=200,
                        message=str(base.get("status_msg", ""))[:200], provider_code=str(code))


class MiniMaxChat(OpenAIChat):
    name = "minimax"
    key_env = "MINIMAX_API_KEY"
    path = "/v1/text/chatcompletion_v2"
    default = "minimax-m2.1-lightning"

    def health_request(self, endpoint: ChainEndpoint) -> HttpRequest:
        return HttpRequest(method="GET", url=f"{endpoint.base_url}/v1/models", headers=self.headers(endpoint)[:1])

    def body_error(self, data: dict[str, Any]) -> AttemptError | None:
        base = data.get("base_resp")
        failed = _base_resp(base) if isinstance(base, dict) else None
        if failed is None or not data.get("usage"):
            return failed
        return dataclasses.replace(failed, usage=chat_usage(data.get("usage")))  # billed although it failed


class MiniMaxVision(MiniMaxChat):
    default = "minimax-m2.1"


class OpenRouterChat(OpenAIChat):
    name = "openrouter"
    key_env = "OPENROUTER_API_KEY"
    default = "minimax/minimax-m2.1-lightning"
    referer: ClassVar[str] = "https://github.com/voice-gateway"
    title: ClassVar[str] = "voice-gateway"

    def headers(self, endpoint: ChainEndpoint) -> tuple[tuple[str, str], ...]:
        return (*super().headers(endpoint), ("HTTP-Referer", self.referer), ("X-Title", self.title))

    def payload(self, options: ChatOptions) -> dict[str, Any]:
        return super().payload(options) | {"usage": {"include": True}}


class OpenRouterVision(OpenRouterChat):
    default = "qwen3-vision-30b"


class OpenAIVision(OpenAIChat):
    name = "openai"
    key_env = "OPENAI_API_KEY"
    default = "gpt-4o"
    detail: ClassVar[str] = "high"

    def payload(self, options: ChatOptions) -> dict[str, Any]:
        body = super().payload(options)
        body["messages"] = [_with_detail(m, "high" if options.complexity == "complex" else "auto")
                            for m in options.messages]
        return body


def _with_detail(message: dict[str, Any], detail: str) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
            part = {**part, "image_url": {"detail": detail, **part["image_url"]}}
        parts.append(part)
    return {**message, "content": parts}
