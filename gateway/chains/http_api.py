"""HTTP edge of the transcription chain: `POST /api/v1/transcribe` and the OpenAI-compatible
`POST /v1/audio/transcriptions` (docs/chains.md).

Order of checks, each with a stable `code` and before any provider is contacted: client token (401),
body size (413 `payload_too_large`, counted while reading), media type (415), audio (400
`empty_audio`/`undecodable_audio`/`bad_option`). Nothing the caller sent is logged, only sizes.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.auth import check_origin, token_from_scope
from gateway.chains.runner import ChainOutcome
from gateway.chains.service import ChainService, new_request_id
from gateway.errors import ClientError, Unauthorized
from gateway.logs import log_event
from providers.chains.transcription import TranscriptionOptions, TranscriptionResult, sniff_audio

log = logging.getLogger("gateway.chains.http")
OPENAI_FORMATS = ("json", "text", "verbose_json")


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


def _error(status: int, code: str, message: str, request_id: str, outcome: ChainOutcome | None = None,
           kind: str = "invalid_request_error") -> JSONResponse:
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code},
                            "request_id": request_id}
    if outcome is not None:
        body["attempts"] = [a.to_dict() for a in outcome.attempts]
    # the Stainless SDKs (openai, groq) obey this over their status rules: the chain already retried
    headers = _headers(outcome, request_id) | {"x-should-retry": "false"}
    return JSONResponse(body, status_code=status, headers=headers)


def _headers(outcome: ChainOutcome | None, request_id: str) -> dict[str, str]:
    return {"x-voice-gateway-provider": (outcome.provider if outcome and outcome.provider else "none"),
            "x-voice-gateway-fallback-used": "true" if outcome and outcome.fallback_used else "false",
            "x-voice-gateway-cost-usd": f"{outcome.cost_usd:.6f}" if outcome else "0.000000",
            "x-request-id": request_id}


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, "payload_too_large", f"the upload exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpProblem(413, "payload_too_large", f"the upload exceeds {limit} bytes")
    return bytes(body)


async def _form(request: Request, body: bytes) -> dict[str, Any]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive).form(max_files=1, max_fields=32)
    except Exception as err:  # starlette raises its own MultiPartException and HTTPException
        raise HttpProblem(400, "bad_multipart", "the multipart body could not be parsed") from err
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            fields[key] = await value.read()
        else:
            fields[key] = value
    return fields


async def _intake(request: Request, *, multipart_only: bool) -> tuple[bytes, dict[str, Any]]:
    """(audio, option fields). Draining, auth, size and media type, in that order."""
    if request.app.state.runtime.draining:  # SIGTERM: new work goes to another replica (design.md §3)
        raise HttpProblem(503, "draining", "the gateway is shutting down; retry on another instance")
    origin_ok(request)
    token, _ = token_from_scope(request.headers, request.scope.get("query_string", b""))
    request.app.state.client_auth.verify(token)
    service: ChainService = request.app.state.chains
    body = await _read_capped(request, service.settings.upload_limit_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        fields = await _form(request, body)
        audio = fields.pop("file", None)
        if not isinstance(audio, bytes):
            raise HttpProblem(400, "missing_file", "the multipart body needs a `file` part")
        return audio, {**dict(request.query_params), **{k: v for k, v in fields.items() if isinstance(v, str)}}
    if multipart_only or not (ctype.startswith("audio/") or ctype == "application/octet-stream"):
        expected = ("multipart/form-data" if multipart_only
                    else "audio/*, application/octet-stream or multipart/form-data")
        raise HttpProblem(415, "unsupported_media_type", f"Content-Type must be {expected}")
    return body, dict(request.query_params)


def origin_ok(request: Request) -> None:
    check_origin(request.headers.get("origin"), frozenset(request.app.state.settings.allowed_origins),
                 host=request.headers.get("host"), public_bind=request.app.state.client_auth.public_bind)


def _options(audio: bytes, fields: dict[str, Any]) -> TranscriptionOptions:
    quality = fields.get("quality") or "standard"
    return TranscriptionOptions(
        audio=audio, kind=sniff_audio(audio), language=fields.get("language") or "en",
        punctuate=_flag(fields.get("punctuate"), True, "punctuate"),
        diarize=_flag(fields.get("diarize"), False, "diarize"), quality=quality)


async def _run(request: Request, *, openai_shape: bool) -> tuple[ChainOutcome | None, Response | None, str]:
    request_id = new_request_id()
    try:
        audio, fields = await _intake(request, multipart_only=openai_shape)
        if openai_shape and fields.get("response_format", "json") not in OPENAI_FORMATS:
            raise HttpProblem(400, "bad_option", f"response_format must be one of {', '.join(OPENAI_FORMATS)}")
        request.state.response_format = fields.get("response_format") or "json"
        options = _options(audio, fields)
        # DEBUG: the INFO line per request is chain.succeeded / chain.failed (a log line costs ~0.3 ms CPU)
        log_event(log, logging.DEBUG, "transcribe.request", "transcription request", request_id=request_id,
                  bytes=len(audio), format=options.kind.extension, api="openai" if openai_shape else "native")
        outcome = await request.app.state.chains.transcribe(options, request_id=request_id)
    except Unauthorized as err:
        return None, _error(getattr(err, "status", 401), err.code, err.message, request_id,
                            kind="authentication_error"), request_id
    except HttpProblem as err:
        return None, _error(err.status, err.code, err.message, request_id), request_id
    except ClientError as err:
        return None, _error(400, err.code, err.message, request_id), request_id
    if outcome.ok:
        return outcome, None, request_id
    if outcome.only_bad_input:
        rejected = _error(400, "audio_rejected", "every provider refused this audio", request_id, outcome)
        return outcome, rejected, request_id
    return outcome, _error(502, outcome.code or "TRX-003", "every transcription provider failed", request_id,
                           outcome, kind="provider_error"), request_id


async def transcribe(request: Request) -> Response:
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
                            "language": result.language}
    if result.words:
        body["words"] = result.words
    if result.segments:
        body["segments"] = result.segments
    return JSONResponse(body, headers=_headers(outcome, request_id))


async def openai_transcriptions(request: Request) -> Response:
    outcome, problem, request_id = await _run(request, openai_shape=True)
    if problem is not None:
        return problem
    assert outcome is not None
    result: TranscriptionResult = outcome.result
    headers = _headers(outcome, request_id)
    fmt = request.state.response_format
    if fmt == "text":
        return PlainTextResponse(result.text + "\n", headers=headers)
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
    return JSONResponse(body, headers=headers)


routes = [
    Route("/api/v1/transcribe", transcribe, methods=["POST"]),
    Route("/v1/audio/transcriptions", openai_transcriptions, methods=["POST"]),
]
