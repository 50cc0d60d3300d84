"""HTTP edge of the transcription chain: `POST /api/v1/transcribe` and the OpenAI-compatible
`POST /v1/audio/transcriptions` (docs/chains.md).

Order of checks, each with a stable `code` and before any provider is contacted: client token (401),
body size (413 `payload_too_large`, counted while reading), media type (415), audio (400
`empty_audio`/`undecodable_audio`/`bad_option`). Nothing the caller sent is logged, only sizes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader

from gateway.app_state import json_response, state
from gateway.auth import check_origin, token_from_scope
from gateway.chains.runner import ChainOutcome
from gateway.chains.service import ChainService, new_request_id
from gateway.errors import ClientError, Unauthorized
from gateway.logs import log_event
from providers.chains.transcription import TranscriptionOptions, TranscriptionResult, sniff_audio

log = logging.getLogger("gateway.chains.http")
OPENAI_FORMATS = ("json", "text", "verbose_json")
RESPONSE_FORMAT = web.RequestKey("response_format", str)  # the OpenAI route's answer format, once read


class HttpProblem(ClientError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def _flag(value: str | None, default: bool, name: str) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise HttpProblem(400, "bad_option", f"{name} must be true or false")


def error_response(status: int, code: str, message: str, request_id: str, outcome: ChainOutcome | None = None,
                   kind: str = "invalid_request_error") -> web.Response:
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code},
                            "request_id": request_id}
    if outcome is not None:
        body["attempts"] = [a.to_dict() for a in outcome.attempts]
    # the Stainless SDKs (openai, groq) obey this over their status rules: the chain already retried
    headers = outcome_headers(outcome, request_id) | {"x-should-retry": "false"}
    return json_response(body, status=status, headers=headers)


def outcome_headers(outcome: ChainOutcome | None, request_id: str) -> dict[str, str]:
    return {"x-voice-gateway-provider": (outcome.provider if outcome and outcome.provider else "none"),
            "x-voice-gateway-fallback-used": "true" if outcome and outcome.fallback_used else "false",
            "x-voice-gateway-cost-usd": f"{outcome.cost_usd:.6f}" if outcome else "0.000000",
            # DAILY_BUDGET_USD used up: only the primary provider was asked (docs/costs.md)
            "x-voice-gateway-mode": "cost_preservation" if outcome and outcome.cost_preservation else "normal",
            "x-request-id": request_id}


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is over `limit` (declared or counted)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, "payload_too_large", f"the upload exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise HttpProblem(413, "payload_too_large", f"the upload exceeds {limit} bytes")
    return bytes(body)


MAX_FILES, MAX_FIELDS = 1, 32


async def parse_form(request: web.Request, body: bytes) -> dict[str, Any]:
    """A multipart/form-data body already read (and size-checked): file parts as bytes, the other
    fields as text. At most one file and 32 fields; anything unparsable is 400 `bad_multipart`."""
    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    stream.feed_data(body)
    stream.feed_eof()
    fields: dict[str, Any] = {}
    files = plain = 0
    try:
        reader = MultipartReader(request.headers, stream)
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ValueError("nested multipart")
            if part.filename is not None:
                files += 1
                value: bytes | str = bytes(await part.read())
            else:
                plain += 1
                value = await part.text()
            if files > MAX_FILES or plain > MAX_FIELDS:
                raise ValueError("too many parts")
            if part.name is not None:
                fields[part.name] = value
    except Exception as err:  # aiohttp raises ValueError, AssertionError, UnicodeDecodeError...
        raise HttpProblem(400, "bad_multipart", "the multipart body could not be parsed") from err
    return fields


async def _intake(request: web.Request, *, multipart_only: bool) -> tuple[bytes, dict[str, Any]]:
    """(audio, option fields). Draining, auth, size and media type, in that order."""
    if state(request).runtime.draining:  # SIGTERM: new work goes to another replica (design.md §3)
        raise HttpProblem(503, "draining", "the gateway is shutting down; retry on another instance")
    origin_ok(request)
    token, _ = token_from_scope(request.headers, request.query_string)
    state(request).client_auth.verify(token)
    service: ChainService = state(request).chains
    body = await read_capped(request, service.settings.upload_limit_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        fields = await parse_form(request, body)
        audio = fields.pop("file", None)
        if not isinstance(audio, bytes):
            raise HttpProblem(400, "missing_file", "the multipart body needs a `file` part")
        return audio, {**dict(request.query), **{k: v for k, v in fields.items() if isinstance(v, str)}}
    if multipart_only or not (ctype.startswith("audio/") or ctype == "application/octet-stream"):
        expected = ("multipart/form-data" if multipart_only
                    else "audio/*, application/octet-stream or multipart/form-data")
        raise HttpProblem(415, "unsupported_media_type", f"Content-Type must be {expected}")
    return body, dict(request.query)


def origin_ok(request: web.Request) -> None:
    check_origin(request.headers.get("origin"), frozenset(state(request).settings.allowed_origins),
                 host=request.headers.get("host"), public_bind=state(request).client_auth.public_bind)


def _options(audio: bytes, fields: dict[str, Any]) -> TranscriptionOptions:
    quality = fields.get("quality") or "standard"
    return TranscriptionOptions(
        audio=audio, kind=sniff_audio(audio), language=fields.get("language") or "en",
        punctuate=_flag(fields.get("punctuate"), True, "punctuate"),
        diarize=_flag(fields.get("diarize"), False, "diarize"), quality=quality)


async def _run(request: web.Request, *, openai_shape: bool) -> tuple[ChainOutcome | None, web.Response | None, str]:
    request_id = new_request_id()
    try:
        audio, fields = await _intake(request, multipart_only=openai_shape)
        if openai_shape and fields.get("response_format", "json") not in OPENAI_FORMATS:
            raise HttpProblem(400, "bad_option", f"response_format must be one of {', '.join(OPENAI_FORMATS)}")
        request[RESPONSE_FORMAT] = fields.get("response_format") or "json"
        options = _options(audio, fields)
        # DEBUG: the INFO line per request is chain.succeeded / chain.failed (a log line costs ~0.3 ms CPU)
        log_event(log, logging.DEBUG, "transcribe.request", "transcription request", request_id=request_id,
                  bytes=len(audio), format=options.kind.extension, api="openai" if openai_shape else "native")
        outcome = await state(request).chains.transcribe(options, request_id=request_id)
    except Unauthorized as err:
        return None, error_response(getattr(err, "status", 401), err.code, err.message, request_id,
                            kind="authentication_error"), request_id
    except HttpProblem as err:
        return None, error_response(err.status, err.code, err.message, request_id), request_id
    except ClientError as err:
        return None, error_response(400, err.code, err.message, request_id), request_id
    if outcome.ok:
        return outcome, None, request_id
    if outcome.only_bad_input:
        rejected = error_response(400, "audio_rejected", "every provider refused this audio", request_id, outcome)
        return outcome, rejected, request_id
    return outcome, error_response(502, outcome.code or "TRX-003", "every transcription provider failed", request_id,
                           outcome, kind="provider_error"), request_id


async def transcribe(request: web.Request) -> web.StreamResponse:
    outcome, problem, request_id = await _run(request, openai_shape=False)
    if problem is not None:
        return problem
    assert outcome is not None
    result: TranscriptionResult = outcome.result
    body: dict[str, Any] = {"text": result.text, "provider": outcome.provider, "model": outcome.model,
                            "fallback_used": outcome.fallback_used,
                            "attempts": [a.to_dict() for a in outcome.attempts],
                            "duration_s": result.duration_s,
                            "cost_usd": round(outcome.cost_usd, 8), "request_id": request_id,
                            "language": result.language, "cost_preservation": outcome.cost_preservation}
    if result.words:
        body["words"] = result.words
    if result.segments:
        body["segments"] = result.segments
    return json_response(body, headers=outcome_headers(outcome, request_id))


async def openai_transcriptions(request: web.Request) -> web.StreamResponse:
    outcome, problem, request_id = await _run(request, openai_shape=True)
    if problem is not None:
        return problem
    assert outcome is not None
    result: TranscriptionResult = outcome.result
    headers = outcome_headers(outcome, request_id)
    fmt = request[RESPONSE_FORMAT]
    if fmt == "text":
        return web.Response(text=result.text + "\n", headers=headers, content_type="text/plain")
    body: dict[str, Any] = {"text": result.text}
    if result.usage.audio_seconds is not None:
        body["usage"] = {"type": "duration", "seconds": round(result.usage.audio_seconds)}
    if fmt == "verbose_json":
        body = {"task": "transcribe", "language": result.language or "english",
                "duration": result.duration_s or 0.0, "text": result.text,
                "segments": [{"id": n, "seek": 0, "start": s.get("start") or 0.0, "end": s.get("end") or 0.0,
                              "text": s.get("text", ""), "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                              "compression_ratio": 0.0, "no_speech_prob": 0.0}
                             for n, s in enumerate(result.segments or [])],
                "words": [{"word": w.get("word") or "", "start": w.get("start") or 0.0,
                           "end": w.get("end") or 0.0} for w in result.words or []], **({"usage": body["usage"]} if "usage" in body else {})}
    return json_response(body, headers=headers)


routes = [
    web.post("/api/v1/transcribe", transcribe),
    web.post("/v1/audio/transcriptions", openai_transcriptions),
]
