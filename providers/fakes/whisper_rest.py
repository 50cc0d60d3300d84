"""Fake Groq and OpenAI transcription REST APIs (the OpenAI shape): `POST …/audio/transcriptions`
(multipart) and `GET …/models`.

Groq lives under `/openai/v1`, OpenAI under `/v1`. Bearer auth, else 401 in the `{"error": {...}}`
envelope; bodies over the provider's cap get its 413; json / verbose_json / text (OpenAI whisper-1 also
srt/vtt; gpt-4o-* json only). Transcripts follow the DTMF dialect. Rate-limit headers on every answer.
"""

from __future__ import annotations

import random
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web

from providers.fakes.rest_common import RequestRecord, RestFake
from providers.fakes.transcribe_dialect import FileTranscript, UndecodableAudio, transcribe_file

AUDIO_EXTENSIONS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm")


class FakeWhisperRest(RestFake):
    prefix: ClassVar[str] = ""
    models: ClassVar[dict[str, tuple[str, ...]]] = {}  # model → response formats it accepts
    owner: ClassVar[str] = ""

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", f"{self.prefix}/audio/transcriptions", self._transcribe),
                ("GET", f"{self.prefix}/models", self._models)]

    @property
    def transcriptions_path(self) -> str:
        return f"{self.prefix}/audio/transcriptions"

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error")
        response = web.Response(status=status, content_type="application/json", body=orjson.dumps(
            {"error": {"message": message, "type": kind, "param": None, "code": code}}))
        self._decorate(response)
        return response

    def _decorate(self, response: web.Response) -> None:
        response.headers.update({"x-ratelimit-limit-requests": "20", "x-ratelimit-remaining-requests": "19",
                                 "x-ratelimit-reset-requests": "3s",
                                 "x-request-id": f"req_{random.getrandbits(64):016x}"})

    async def _models(self, request: web.Request, record: RequestRecord) -> web.Response:
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": self.owner} for m in self.models]
        response = web.json_response({"object": "list", "data": data})
        self._decorate(response)
        return response

    async def _transcribe(self, request: web.Request, record: RequestRecord) -> web.Response:
        if (request.content_length or 0) > self.max_body_bytes:
            return self.too_large()
        if request.content_type != "multipart/form-data":
            return self.error_response(400, "Content-Type must be multipart/form-data")
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return self.too_large()
        except ValueError:
            return self.error_response(400, "could not parse multipart form")
        upload = form.get("file")
        record.fields = {k: str(v) for k, v in form.items() if k != "file" and isinstance(v, str)}
        if upload is None or isinstance(upload, str):
            return self.error_response(400, "file is required", "missing_required_parameter")
        audio = upload.file.read()
        record.body_bytes = len(audio)
        if len(audio) > self.max_body_bytes:
            return self.too_large()
        model = record.fields.get("model", "")
        if model not in self.models:
            return self.error_response(404 if self.provider == "groq" else 400,
                                       f"The model `{model[:60]}` does not exist", "model_not_found")
        fmt = record.fields.get("response_format", "json")
        if fmt not in self.models[model]:
            return self.error_response(400, f"response_format '{fmt[:20]}' is not compatible with {model}",
                                       "unsupported_value")
        if (upload.filename or "").rsplit(".", 1)[-1].lower() not in AUDIO_EXTENSIONS:
            return self.error_response(400, f"Invalid file format. Supported formats: {AUDIO_EXTENSIONS}")
        try:
            transcript = transcribe_file(audio)
        except UndecodableAudio:
            return self.error_response(400, "Audio file might be corrupted or unsupported", "invalid_value")
        record.transcript = transcript.text
        response = self._render(transcript, model, fmt)
        self._decorate(response)
        return response

    def _render(self, t: FileTranscript, model: str, fmt: str) -> web.Response:
        if fmt == "text":
            return web.Response(text=t.text + "\n", content_type="text/plain")
        if fmt in ("srt", "vtt"):
            lines = ["WEBVTT", ""] if fmt == "vtt" else []
            for n, w in enumerate(t.words, 1):
                lines += [str(n), f"{_stamp(w.start_s, fmt)} --> {_stamp(w.end_s, fmt)}", w.text, ""]
            return web.Response(text="\n".join(lines), content_type="text/plain")
        body: dict[str, Any] = {"text": t.text}
        if fmt == "verbose_json":
            body = {"task": "transcribe", "language": "english", "duration": round(t.duration_s, 3),
                    "text": t.text, "segments": [
                        {"id": n, "seek": 0, "start": w.start_s, "end": w.end_s, "text": " " + w.text,
                         "tokens": [50364], "temperature": 0.0, "avg_logprob": -0.1,
                         "compression_ratio": 1.0, "no_speech_prob": 0.01} for n, w in enumerate(t.words)],
                    "words": [{"word": w.text, "start": w.start_s, "end": w.end_s} for w in t.words]}
        body.update(self.extra_fields(t, model, fmt))
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def extra_fields(self, t: FileTranscript, model: str, fmt: str) -> dict[str, Any]:
        return {}


def _stamp(seconds: float, fmt: str) -> str:
    ms = int(round(seconds * 1000))
    sep = "," if fmt == "srt" else "."
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


class FakeGroq(FakeWhisperRest):
    provider = "groq"
    prefix = "/openai/v1"
    owner = "OpenAI"
    max_body_bytes = 25 * 1000**2
    models = {m: ("json", "verbose_json", "text") for m in ("whisper-large-v3", "whisper-large-v3-turbo")}

    def extra_fields(self, t: FileTranscript, model: str, fmt: str) -> dict[str, Any]:
        return {"x_groq": {"id": f"req_{int(time.time() * 1000):x}"}}


class FakeOpenAIRest(FakeWhisperRest):
    provider = "openai"
    prefix = "/v1"
    owner = "openai"
    max_body_bytes = 26_214_400
    models = {"whisper-1": ("json", "text", "srt", "verbose_json", "vtt"),
              "gpt-4o-transcribe": ("json",), "gpt-4o-mini-transcribe": ("json",), "gpt-transcribe": ("json",)}

    def extra_fields(self, t: FileTranscript, model: str, fmt: str) -> dict[str, Any]:
        if model.startswith("whisper"):
            return {"usage": {"type": "duration", "seconds": max(1, round(t.duration_s))}}
        audio_tokens = max(1, round(t.duration_s * 10))
        output_tokens = max(1, len(t.text) // 3)
        return {"usage": {"type": "tokens", "input_tokens": audio_tokens, "output_tokens": output_tokens,
                          "total_tokens": audio_tokens + output_tokens,
                          "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}}}
