"""Whisper-style transcription over the OpenAI REST shape, sans-I/O: Groq and OpenAI.

`POST {base}/audio/transcriptions`, multipart (`file`, `model`, `language`, `response_format`),
Bearer auth, errors in the `{"error": {message, type, code}}` envelope. Groq's base is an origin (the
groq SDK appends `/openai/v1`); OpenAI's includes `/v1` (as the openai SDK's `base_url`).
Billable seconds: `duration` of verbose_json (Groq bills at least 10 s), or OpenAI `usage`.
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.chains.base import (
    AttemptError,
    ChainEndpoint,
    ChainProvider,
    ErrorClass,
    FilePart,
    HttpRequest,
    HttpResponse,
    Price,
    Usage,
    encode_multipart,
    error_message,
    retry_after_s,
)
from providers.chains.transcription import TranscriptionOptions, TranscriptionResult


class WhisperTranscriber(ChainProvider[TranscriptionOptions, TranscriptionResult]):
    api_prefix = ""  # appended to the base URL
    prices: dict[str, Price] = {}

    def upload_size(self, options: TranscriptionOptions) -> int:
        return len(options.audio) + 1024  # multipart framing and fields

    def response_format(self) -> str:
        return "verbose_json"

    def build(self, options: TranscriptionOptions, endpoint: ChainEndpoint) -> HttpRequest:
        fields: list[tuple[str, str | FilePart]] = [
            ("model", self.model), ("language", options.language.split("-")[0].lower()),
            ("response_format", self.response_format()),
            ("file", FilePart(options.filename, options.kind.mime, options.audio))]
        content_type, body = encode_multipart(fields)
        return HttpRequest(method="POST", url=f"{endpoint.base_url}{self.api_prefix}/audio/transcriptions",
                           headers=(("Authorization", f"Bearer {endpoint.api_key}"),
                                    ("Content-Type", content_type)), body=body)

    def health_request(self, endpoint: ChainEndpoint) -> HttpRequest:
        return HttpRequest(method="GET", url=f"{endpoint.base_url}{self.api_prefix}/models",
                           headers=(("Authorization", f"Bearer {endpoint.api_key}"),))

    def parse(self, response: HttpResponse) -> TranscriptionResult | AttemptError:
        if response.status != 200:
            message, code = error_message(response.body)
            error_class = self.classify(response)
            if code == "insufficient_quota":  # retrying a quota 429 is pointless: it is a billing problem
                error_class = ErrorClass.AUTH
            return AttemptError(error_class=error_class, status=response.status,
                                message=message or f"HTTP {response.status}", provider_code=code,
                                retry_after_s=retry_after_s(response.headers))
        try:
            data = orjson.loads(response.body)
            text = data["text"]
            if not isinstance(text, str):
                raise TypeError("text")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return AttemptError(error_class=ErrorClass.PROTOCOL, status=200,
                                message="the response is not a transcription result")
        duration = data.get("duration")
        duration_s = float(duration) if isinstance(duration, int | float) else None
        return TranscriptionResult(
            text=text.strip(), model=self.model, duration_s=duration_s, language=data.get("language"),
            words=_list(data.get("words")), segments=_segments(data.get("segments")),
            usage=_usage(data.get("usage"), duration_s))

    def usage(self, result: TranscriptionResult) -> Usage:
        return result.usage

    def price_for(self, model: str) -> Price:
        return self.prices.get(model, next(iter(self.prices.values())))


class GroqWhisper(WhisperTranscriber):
    name = "groq"
    key_env = "GROQ_API_KEY"
    api_prefix = "/openai/v1"
    max_upload_bytes = 25 * 1000**2  # free tier (dev tier: 100 MB; GROQ_MAX_UPLOAD_MB)
    prices = {"whisper-large-v3": Price(per_minute_usd=0.111 / 60, minimum_billed_s=10.0),
              "whisper-large-v3-turbo": Price(per_minute_usd=0.04 / 60, minimum_billed_s=10.0)}

    def default_model(self) -> str:
        return "whisper-large-v3"


class OpenAIWhisper(WhisperTranscriber):
    name = "openai"
    key_env = "OPENAI_API_KEY"
    max_upload_bytes = 26_214_400  # 25 MiB request body
    prices = {"whisper-1": Price(per_minute_usd=0.006),
              "gpt-4o-transcribe": Price(per_million_input_tokens_usd=2.5, per_million_output_tokens_usd=10.0),
              "gpt-4o-mini-transcribe": Price(per_million_input_tokens_usd=1.25,
                                              per_million_output_tokens_usd=5.0)}

    def default_model(self) -> str:
        return "whisper-1"

    def response_format(self) -> str:
        # gpt-4o-* transcription models answer json only; whisper-1 gives timings with verbose_json
        return "verbose_json" if self.model.startswith("whisper") else "json"


def _list(value: Any) -> list[dict[str, Any]] | None:
    return [v for v in value if isinstance(v, dict)] or None if isinstance(value, list) else None


def _segments(value: Any) -> list[dict[str, Any]] | None:
    items = _list(value)
    if items is None:
        return None
    return [{"start": s.get("start"), "end": s.get("end"), "text": str(s.get("text", "")).strip()}
            for s in items]


def _usage(value: Any, duration_s: float | None) -> Usage:
    if isinstance(value, dict) and value.get("type") == "tokens":
        return Usage(input_tokens=_count(value.get("input_tokens")),
                     output_tokens=_count(value.get("output_tokens")))
    if isinstance(value, dict) and isinstance(value.get("seconds"), int | float):
        return Usage(audio_seconds=float(value["seconds"]))
    return Usage(audio_seconds=duration_s)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and 0 <= value < 2**53 else 0
