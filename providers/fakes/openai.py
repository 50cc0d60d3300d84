"""Fake OpenAI Realtime server (GA interface) speaking the DTMF dialect.

Wire reference: docs/providers/openai.md (section numbers below refer to it).
Invariants: every server event is a GA event that validates against the openai SDK's models; all timing
decisions (VAD, barge-in, "is the reply still playing") use input stream time, so a client streaming
faster than real time gets the same events; one connection is served by one `RealtimeConnection`, whose
state changes only under its lock (timers and faults run as separate tasks).

Per-connection state for tests lives in `record.extra`: "session" (effective GA session), "conversation"
(the ordered item list), "truncations", "responses" ([{id, status, reason, transcript}]).
"""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from providers.fakes.common import ConnectionRecord, FakeServer, Fault, header
from providers.fakes.openai_connection import RealtimeConnection


def _credentials(request: Request) -> tuple[str | None, str, bool]:
    """(key, how it was sent, beta shape requested) — §1: Bearer header or browser subprotocols."""
    offered = [p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",")]
    beta = "realtime=v1" in (header(request, "OpenAI-Beta") or "") or "openai-beta.realtime-v1" in offered
    auth = header(request, "Authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "header:authorization", beta
    for proto in offered:
        if proto.startswith("openai-insecure-api-key."):
            return proto.removeprefix("openai-insecure-api-key."), "subprotocol", beta
    return None, "none", beta


class FakeOpenAI(FakeServer):
    """`wss://api.openai.com/v1/realtime?model=...` on loopback.

    max_session_s: wall-time cap after which the session expires (§4: error `session_expired`, close 1001).
    reply_playback_factor: wall seconds a reply "plays" per second of reply audio when no input audio moves
      stream time forward (0 = replies complete as soon as their audio is sent)."""

    provider = "openai"

    def __init__(self, *, max_session_s: float | None = None, reply_playback_factor: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_session_s = max_session_s
        self.reply_playback_factor = reply_playback_factor
        self._live_sessions: dict[int, RealtimeConnection] = {}

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        if record.path.rstrip("/") != "/v1/realtime":
            return connection.respond(404, self.refusal_body(404))
        key, how, beta = _credentials(request)
        record.auth = how
        # §4: a bad key still gets the upgrade; the session then sends `error` and closes 3000.
        record.extra.update(key_ok=self.key_ok(key), beta=beta)
        return None

    def select_subprotocol(self, connection: ServerConnection, offered: Any) -> str | None:
        return "realtime" if "realtime" in offered else None

    def refusal_body(self, status: int) -> str:
        code, kind, message = {
            401: ("invalid_api_key", "invalid_request_error", "Incorrect API key provided."),
            403: ("model_not_found", "invalid_request_error", "You do not have access to this model."),
            404: ("not_found", "invalid_request_error", "Not found."),
            429: ("rate_limit_exceeded", "requests", "Rate limit reached for requests."),
            500: ("server_error", "server_error", "The server had an error while processing your request."),
            503: ("overloaded", "server_error", "The engine is currently overloaded, please try again later."),
        }.get(status, ("error", "server_error", "Error."))
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).decode()

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        session = RealtimeConnection(self, ws, record)
        self._live_sessions[record.number] = session
        try:
            await session.run()
        finally:
            self._live_sessions.pop(record.number, None)

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        session = self._live_sessions.get(record.number)
        if session is None:
            return
        if fault.kind == "expire":
            await session.expire()
        elif fault.kind == "malformed":
            await self.send(ws, '{"type": "response.output_audio.delta", "event_id": "event_')
        # `goaway` is Gemini-only: OpenAI has no such message, so the fault does nothing here.


