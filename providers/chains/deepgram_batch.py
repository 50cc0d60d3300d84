"""Deepgram pre-recorded transcription, sans-I/O (`POST {origin}/v1/listen`, raw audio body).

Auth `Authorization: Token K`. Errors are flat JSON (`err_code`, `err_msg`); a 504 is Deepgram's
10-minute processing cap, so it is not retried (PROCESSING_CAP). Billable seconds: `metadata.duration`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from providers.chains.base import (
    AttemptError,
    ChainEndpoint,
    ChainProvider,
    ErrorClass,
    HttpRequest,
    HttpResponse,
    Price,
    Usage,
    classify_status,
    error_message,
    retry_after_s,
)
from providers.chains.transcription import TranscriptionOptions, TranscriptionResult

MODELS = {"standard": "nova-2", "high": "nova-3"}
PRICES = {"nova-2": Price(per_minute_usd=0.0058), "nova-3": Price(per_minute_usd=0.0077)}


class DeepgramBatch(ChainProvider[TranscriptionOptions, TranscriptionResult]):
    name = "deepgram"
    key_env = "DEEPGRAM_API_KEY"
    max_upload_bytes = 2 * 1000**3  # 2 GB per file

    def default_model(self) -> str:
        return ""  # chosen per request from `quality` unless the operator pinned one

    def model_for(self, options: TranscriptionOptions) -> str:
        return self.model or MODELS[options.quality]

    def upload_size(self, options: TranscriptionOptions) -> int:
        return len(options.audio)

    def build(self, options: TranscriptionOptions, endpoint: ChainEndpoint) -> HttpRequest:
        query = {"model": self.model_for(options), "punctuate": _flag(options.punctuate),
                 "language": options.language}
        if options.diarize:
            query["diarize"] = "true"
        return HttpRequest(
            method="POST", url=f"{endpoint.base_url}/v1/listen?{urlencode(query)}",
            headers=(("Authorization", f"Token {endpoint.api_key}"), ("Content-Type", options.kind.mime)),
            body=options.audio)

    def health_request(self, endpoint: ChainEndpoint) -> HttpRequest:
        return HttpRequest(method="GET", url=f"{endpoint.base_url}/v1/projects",
                           headers=(("Authorization", f"Token {endpoint.api_key}"),))

    def classify(self, response: HttpResponse) -> ErrorClass:
        return ErrorClass.PROCESSING_CAP if response.status == 504 else classify_status(response.status)

    def parse(self, response: HttpResponse) -> TranscriptionResult | AttemptError:
        if response.status != 200:
            message, code = error_message(response.body)
            return AttemptError(error_class=self.classify(response), status=response.status,
                                message=message or f"HTTP {response.status}", provider_code=code,
                                retry_after_s=retry_after_s(response.headers))
        try:
            data = orjson.loads(response.body)
            metadata = data.get("metadata") or {}
            alternative = data["results"]["channels"][0]["alternatives"][0]
            text = alternative["transcript"]
            if not isinstance(text, str):
                raise TypeError("transcript")
        except (orjson.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError):
            return AttemptError(error_class=ErrorClass.PROTOCOL, status=200,
                                message="the response is not a Deepgram transcription result")
        duration = metadata.get("duration")
        return TranscriptionResult(
            text=text, model=_model_name(metadata) or self.model or "",
            duration_s=float(duration) if isinstance(duration, int | float) else None,
            language=data["results"]["channels"][0].get("detected_language"),
            words=[_word(w) for w in alternative.get("words") or [] if isinstance(w, dict)] or None,
            usage=Usage(audio_seconds=float(duration) if isinstance(duration, int | float) else None))

    def usage(self, result: TranscriptionResult) -> Usage:
        return result.usage

    def price_for(self, model: str) -> Price:
        return next((p for name, p in PRICES.items() if name in model), PRICES["nova-2"])


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _model_name(metadata: dict[str, Any]) -> str | None:
    info = metadata.get("model_info")
    if isinstance(info, dict):
        for entry in info.values():
            if isinstance(entry, dict) and isinstance(entry.get("arch"), str):
                return str(entry["arch"])
    return None


def _word(w: dict[str, Any]) -> dict[str, Any]:
    out = {"word": w.get("punctuated_word") or w.get("word"), "start": w.get("start"), "end": w.get("end")}
    if "confidence" in w:
        out["confidence"] = w["confidence"]
    if "speaker" in w:
        out["speaker"] = w["speaker"]
    return out
