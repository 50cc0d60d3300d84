"""Anthropic Messages, sans-I/O: Claude Haiku, the reasoning chain's last resort.

`POST {origin}/v1/messages` with `x-api-key` and `anthropic-version`; the system prompt is a top-level
field, image parts become `image` blocks (base64 or url source). Errors are `{"type": "error", "error":
{"type", "message"}}` (529 `overloaded_error` is a server error). Streaming is SSE with named events
(message_start … content_block_delta … message_delta, message_stop); usage comes in message_start
(input) and message_delta (output).
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.chains.base import (
    AttemptError,
    ChainEndpoint,
    ChainProvider,
    ErrorClass,
    HttpRequest,
    HttpResponse,
    Usage,
    retry_after_s,
)
from providers.chains.chat import ChatDelta, ChatOptions, ChatResult, chat_usage, decode_data_url, text_of
from providers.chains.sse import SseDecoder

API_VERSION = "2023-06-01"
# Anthropic stop_reason → the OpenAI finish_reason the chat API speaks
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "refusal": "content_filter", "pause_turn": "stop"}


class AnthropicMessages(ChainProvider[ChatOptions, ChatResult]):
    name = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    streams = True

    def default_model(self) -> str:
        return "claude-3-haiku-20240307"

    def upload_size(self, options: ChatOptions) -> int:
        return options.upload_size()

    def headers(self, endpoint: ChainEndpoint) -> tuple[tuple[str, str], ...]:
        return (("x-api-key", endpoint.api_key), ("anthropic-version", API_VERSION),
                ("Content-Type", "application/json"))

    def build(self, options: ChatOptions, endpoint: ChainEndpoint) -> HttpRequest:
        system = "\n\n".join(text_of(m) for m in options.messages if m["role"] == "system")
        messages = [{"role": m["role"], "content": _blocks(m)} for m in options.messages if m["role"] != "system"]
        body: dict[str, Any] = {"model": self.model, "max_tokens": options.max_tokens, "messages": messages}
        if system:
            body["system"] = system
        if options.temperature is not None:
            body["temperature"] = min(options.temperature, 1.0)  # Anthropic's range is 0..1
        if options.stream:
            body["stream"] = True
        return HttpRequest(method="POST", url=f"{endpoint.base_url}/v1/messages", headers=self.headers(endpoint),
                           body=orjson.dumps(body))

    def health_request(self, endpoint: ChainEndpoint) -> HttpRequest:
        return HttpRequest(method="GET", url=f"{endpoint.base_url}/v1/models?limit=1",
                           headers=self.headers(endpoint)[:2])

    def classify(self, response: HttpResponse) -> ErrorClass:
        if response.status == 529:  # overloaded_error
            return ErrorClass.SERVER
        return super().classify(response)

    def parse(self, response: HttpResponse) -> ChatResult | AttemptError:
        if response.status != 200:
            kind, message = _error(response.body)
            error_class = self.classify(response)
            return AttemptError(error_class=error_class, status=response.status,
                                message=message or f"HTTP {response.status}", provider_code=kind,
                                retry_after_s=retry_after_s(response.headers))
        try:
            data = orjson.loads(response.body)
            blocks = data["content"]
            text = "".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return AttemptError(error_class=ErrorClass.PROTOCOL, status=200, message="the answer is not a message")
        raw_stop = data.get("stop_reason")
        stop = raw_stop if isinstance(raw_stop, str) else None  # a hostile body may put any JSON value here
        return ChatResult(text=text, model=str(data.get("model") or self.model),
                          finish_reason=FINISH_REASONS.get(stop, stop) if stop else None, refusal=stop == "refusal",
                          usage=chat_usage(data.get("usage")))

    def usage(self, result: ChatResult) -> Usage:
        return result.usage

    def stream_decoder(self) -> AnthropicStream:
        return AnthropicStream()


class AnthropicStream:
    def __init__(self) -> None:
        self._sse = SseDecoder()
        self._input = 0
        self._output = 0
        self.usage = Usage()
        self.error: AttemptError | None = None  # an `error` event (overloaded_error mid-stream, ...)

    def feed(self, data: bytes) -> list[ChatDelta]:
        return self._deltas(self._sse.feed(data))

    def finish(self) -> list[ChatDelta]:
        return self._deltas(self._sse.finish())

    def _deltas(self, events: list[Any]) -> list[ChatDelta]:
        out: list[ChatDelta] = []
        for event in events:
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            try:
                out += self._event(data)
            except (TypeError, AttributeError, ValueError):  # a malformed event is skipped, never raised
                continue
            self.usage = Usage(input_tokens=self._input, output_tokens=self._output)
        return out

    def _event(self, data: dict[str, Any]) -> list[ChatDelta]:
        """One event; a malformed one raises TypeError/AttributeError/ValueError (skipped by the caller)."""
        kind = data.get("type")
        if kind == "error" and self.error is None:
            error = data.get("error") or {}
            overloaded = error.get("type") in ("overloaded_error", "api_error")
            self.error = AttemptError(
                error_class=ErrorClass.SERVER if overloaded else ErrorClass.PROTOCOL, status=200,
                message=str(error.get("message", ""))[:200],
                provider_code=error.get("type") if isinstance(error.get("type"), str) else None)
        elif kind == "message_start":
            usage = chat_usage((data.get("message") or {}).get("usage"))
            self._input, self._output = usage.input_tokens or 0, usage.output_tokens or 0
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                return [ChatDelta(text=delta["text"])]
        elif kind == "message_delta":
            counts = data.get("usage") or {}
            output = counts.get("output_tokens")
            if isinstance(output, int) and not isinstance(output, bool) and 0 <= output < 2**53:
                self._output = output
            stop = (data.get("delta") or {}).get("stop_reason")
            if isinstance(stop, str) and stop:
                return [ChatDelta(finish_reason=FINISH_REASONS.get(stop, stop))]
        return []


def _blocks(message: dict[str, Any]) -> str | list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            url = part["image_url"]["url"]
            if url.startswith(("http://", "https://")):
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
            else:
                media_type, _ = decode_data_url(url)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type,
                                                           "data": url.partition(",")[2]}})
    return blocks


def _error(body: bytes) -> tuple[str | None, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None, ""
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None), (message[:200] if isinstance(message, str) else "")
