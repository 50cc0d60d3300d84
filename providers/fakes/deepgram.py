"""Fake Deepgram streaming speech-to-text server (`/v1/listen`, docs/providers/deepgram.md §1-4).

One connection = one stream: the query string is the whole configuration, binary frames are audio,
text frames are control messages, and the server only talks back in JSON `Results`/`SpeechStarted`/
`UtteranceEnd`/`Metadata`/`Error` (no reply audio, no tools). Transcripts come from the DTMF dialect
(providers/fakes/deepgram_wire.py: digits are one word, plain speech is the word "speech"), in
stream time, so results do not depend on how fast audio is sent. The idle timeout is wall time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from providers.fakes.common import ConnectionRecord, FakeServer, Fault
from providers.fakes.deepgram_messages import SPEECH_WORD, schema_error_message, with_words
from providers.fakes.deepgram_transcriber import ListenTranscriber
from providers.fakes.deepgram_wire import (
    DATA0000_REASON,
    INVALID_CREDENTIALS,
    NET0001_REASON,
    ListenQueryError,
    credential_from,
    parse_listen_query,
)

log = logging.getLogger("providers.fakes.deepgram")

LISTEN_PATH = "/v1/listen"
# Error bodies mimic Deepgram's JSON error shape; `dg-error` carries the same message (docs/providers/deepgram.md §1).
_ERROR_CODES = {400: "INVALID_QUERY_PARAMETER", 401: "INVALID_AUTH", 403: "INSUFFICIENT_PERMISSIONS",
                404: "NOT_FOUND", 429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR",
                503: "SERVICE_UNAVAILABLE"}
_ERROR_MESSAGES = {401: INVALID_CREDENTIALS, 403: "Insufficient permissions.",
                   429: "Too many requests. Please try again later.",
                   500: "Internal server error.", 503: "Service unavailable. Please try again later."}
# A malformed server message for the `malformed` fault: a Results frame cut short.
_MALFORMED_RESULTS = '{"type":"Results","channel_index":[0,1],"start":'


def _uuid4(rng: random.Random) -> str:
    """Deterministic given the server's seed (request ids, project id)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    """All query pairs, repeats kept (`keyterm` may be given many times)."""
    return parse_qsl(urlsplit(request.path).query, keep_blank_values=True)


def _header_safe(text: str, limit: int = 256) -> str:
    """Error texts echo client input; a header value must stay printable ASCII on one line."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:limit]


def _subprotocols(request: Request) -> list[str]:
    offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
    return [p.strip() for p in offered.split(",") if p.strip()]


class FakeDeepgram(FakeServer):
    """`/v1/listen` on loopback. Beyond the base's arguments:

    - `idle_timeout_s`: wall seconds without any audio or text frame before `Metadata` + close 1011
      NET-0001 (the real service: ~10 s).
    - `silence_final_every_s`: in silence, an empty final `Results` this often (stream time) so the
      audio is acknowledged as it is by the real service; None disables it.

    Per-connection state lives in `record.extra`: `request_id` (also the `dg-request-id` header),
    `params` (the parsed ListenParams), `transcriber`."""

    provider = "deepgram"

    def __init__(self, *, idle_timeout_s: float = 10.0, silence_final_every_s: float | None = 2.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.idle_timeout_s = idle_timeout_s
        self.silence_final_every_s = silence_final_every_s
        self.project_id = _uuid4(self.rng)

    # -- handshake --------------------------------------------------------------------------------
    def _request_id(self, record: ConnectionRecord) -> str:
        if "request_id" not in record.extra:
            record.extra["request_id"] = _uuid4(self.rng)
        return record.extra["request_id"]

    def _reject(self, connection: ServerConnection, record: ConnectionRecord, status: int, message: str) -> Response:
        record.extra["dg_error"] = message
        body = {"err_code": _ERROR_CODES.get(status, "ERROR"), "err_msg": message,
                "request_id": self._request_id(record)}
        return connection.respond(status, json.dumps(body))

    def refusal_body(self, status: int) -> str:
        message = _ERROR_MESSAGES.get(status, HTTPStatus(status).phrase)
        return json.dumps({"err_code": _ERROR_CODES.get(status, "ERROR"), "err_msg": message})

    def select_subprotocol(self, connection: ServerConnection, offered: Iterable[str]) -> str | None:
        # Browsers abort unless one offered subprotocol is echoed; the key itself is never echoed.
        offered = list(offered)
        return next((marker for marker in ("token", "bearer") if marker in offered), None)

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        self._request_id(record)
        if record.path != LISTEN_PATH:
            return self._reject(connection, record, 404, f"No such endpoint: {record.path}")
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        offered = _subprotocols(request)
        key = credential_from(headers, offered)
        if not self.key_ok(key):
            return self._reject(connection, record, 401, INVALID_CREDENTIALS)
        scheme = headers.get("authorization", "").split(" ", 1)[0].lower()
        record.auth = f"header:authorization-{scheme}" if scheme in ("token", "bearer") else "subprotocol"
        try:
            params = parse_listen_query(record.query, keyterms=tuple(
                v for k, v in _query_pairs(request) if k == "keyterm"))
        except ListenQueryError as exc:
            return self._reject(connection, record, 400, str(exc))
        record.extra["params"] = params
        record.setup = dict(record.query)
        return None

    def decorate_response(self, connection: ServerConnection, request: Request, response: Response,
                          record: ConnectionRecord) -> None:
        response.headers["dg-request-id"] = self._request_id(record)
        if response.status_code == 101:
            response.headers["dg-project-id"] = self.project_id
            return
        body = response.body.decode("utf-8", "replace")
        if body.startswith("{"):
            del response.headers["Content-Type"]  # Headers.__setitem__ appends: replace, don't duplicate
            response.headers["Content-Type"] = "application/json"
        message = record.extra.get("dg_error")
        if message is None:
            message = _ERROR_MESSAGES.get(response.status_code, body.strip() or response.reason_phrase)
        response.headers["dg-error"] = _header_safe(message)

    # -- the stream -------------------------------------------------------------------------------
    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        transcriber = ListenTranscriber(record.extra["params"], request_id=self._request_id(record),
                                        silence_final_every_s=self.silence_final_every_s)
        record.extra["transcriber"] = transcriber
        record.audio_rate_hz = transcriber.decoder.sample_rate_hz
        await self.session_ready(ws, record)
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    frame = await ws.recv()
            except TimeoutError:  # docs/providers/deepgram.md §4: NET-0001, Metadata first
                await self._planned_close(ws, record, closed_by="server")
                return
            if isinstance(frame, bytes):
                if not await self._on_audio(ws, record, transcriber, frame):
                    return
            elif not await self._on_text(ws, record, transcriber, frame):
                return

    async def _on_audio(self, ws: ServerConnection, record: ConnectionRecord, transcriber: ListenTranscriber,
                        frame: bytes) -> bool:
        if not frame:  # the legacy end-of-stream signal (docs/providers/deepgram.md §1 Framing): like CloseStream
            await self._close_stream(ws, record, transcriber)
            return False
        record.audio_chunks += 1
        try:
            pcm, messages = transcriber.feed_audio(frame)
        except ValueError:  # docs/providers/deepgram.md §4: DATA-0000
            record.closed_by = "server"
            await ws.close(1008, DATA0000_REASON)
            return False
        record.audio += pcm
        record.audio_rate_hz = transcriber.decoder.sample_rate_hz
        await self._send_all(ws, record, messages)
        await self.fault_tick(ws, record, audio_bytes=len(pcm))
        return True

    async def _on_text(self, ws: ServerConnection, record: ConnectionRecord, transcriber: ListenTranscriber,
                       text: str) -> bool:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        record.messages.append(message if message is not None else text)
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "KeepAlive":
            pass  # only resets the idle timer, which receiving any frame did
        elif kind == "Finalize":
            await self._send_all(ws, record, transcriber.finalize())
        elif kind == "CloseStream":
            await self._close_stream(ws, record, transcriber)
            return False
        elif kind == "Configure":
            await self._send_all(ws, record, [self._configure_reply(record, message, text)])
        else:
            description = ("Unable to parse the text message as JSON." if message is None
                           else f"Unknown or missing message type: {kind!r}.")
            await self._send_all(ws, record, [schema_error_message(text, description)])
        await self.fault_tick(ws, record)
        return True

    def _configure_reply(self, record: ConnectionRecord, message: dict[str, Any], text: str) -> dict[str, Any]:
        """docs/providers/deepgram.md §2.1: keyterm updates only work on Nova-3 models; a badly shaped Configure is
        a SchemaError like any other unusable message."""
        request_id = self._request_id(record)
        keyterms, features = message.get("keyterms"), message.get("features")
        if not (keyterms is None or (isinstance(keyterms, list) and all(isinstance(k, str) for k in keyterms))):
            return schema_error_message(text, "Configure: 'keyterms' must be a list of strings or null.")
        if not (features is None or (isinstance(features, dict) and all(isinstance(v, bool) for v in features.values()))):
            return schema_error_message(text, "Configure: 'features' must map feature names to booleans.")
        if keyterms is not None and not record.extra["params"].model.startswith("nova-3"):
            return {"type": "ConfigureFailure", "request_id": request_id, "code": "CONFIGURE_KEYTERMS_NOT_SUPPORTED",
                    "description": "Mid-stream keyterm updates are only supported by Nova-3 models."}
        reply: dict[str, Any] = {"type": "ConfigureSuccess", "request_id": request_id}
        if keyterms is not None:
            reply["keyterms"] = list(keyterms)
        return reply

    async def _close_stream(self, ws: ServerConnection, record: ConnectionRecord,
                            transcriber: ListenTranscriber) -> None:
        """docs/providers/deepgram.md §2.1: remaining final Results, then Metadata, then close 1000."""
        await self._send_all(ws, record, transcriber.close_stream())
        record.closed_by = "client"
        await ws.close(1000)

    async def _planned_close(self, ws: ServerConnection, record: ConnectionRecord, *, closed_by: str) -> None:
        """The NET-0001 close: Metadata, then 1011 with the verbatim reason (docs/providers/deepgram.md §4)."""
        transcriber: ListenTranscriber = record.extra["transcriber"]
        await self._send_all(ws, record, [transcriber.metadata()])
        record.closed_by = closed_by  # type: ignore[assignment]
        await ws.close(1011, NET0001_REASON)

    async def _send_all(self, ws: ServerConnection, record: ConnectionRecord, messages: list[dict[str, Any]]) -> None:
        transcriber: ListenTranscriber = record.extra["transcriber"]
        for message in messages:
            if message["type"] == "Results" and message["is_final"]:
                transcript = message["channel"]["alternatives"][0]["transcript"]
                if transcript == SPEECH_WORD and transcriber.speech_audio:
                    heard = await self.hear(record, transcriber.speech_audio.popleft(),
                                            transcriber.decoder.sample_rate_hz)
                    if heard:  # no engine (None) or nothing heard (""): the word "speech" stays
                        message = with_words(message, heard, punctuate=transcriber.params.punctuate
                                             or transcriber.params.smart_format)
                        await self.send(ws, orjson.dumps(message).decode())
                        continue
                if transcript:
                    record.transcripts.append(transcript)
                    if transcript != SPEECH_WORD:
                        record.digits += transcript
            await self.send(ws, orjson.dumps(message).decode())

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        """malformed → a truncated Results frame; expire → the planned NET-0001 close; goaway has no
        Deepgram equivalent and is ignored."""
        if fault.kind == "malformed":
            await self.send(ws, _MALFORMED_RESULTS)
        elif fault.kind == "expire":
            await self._planned_close(ws, record, closed_by="fault")
        else:
            log.info("fake deepgram conn %d: fault %s has no Deepgram form; ignored", record.number, fault.kind)

