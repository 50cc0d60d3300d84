"""Fake OpenAI GPT-Live server (`{base}/v1/live/sessions`) speaking the DTMF dialect.

Schema: the `openai` SDK's `openai.types.live`; every server event validates against the SDK model of
its type (tests/fakes/test_sdk_openai_live.py). Invariants: the session timeline is input stream time
(milliseconds of input audio received), so results never depend on how fast a client sends; one
connection is served by one `LiveConnection`, whose state changes only under its lock.

The dialect: DTMF digits in the input are words (`session.input_transcript.delta` per digit, timed);
after an utterance the fake model speaks the digits back as tones (`session.output_audio.delta` with a
timed `session.output_transcript.delta` per digit); plain speech is echoed. `#` at the end of an
utterance delegates: to the Responses backend's first function tool when the session configured one
(the call comes out as `response.event`s; `response.item.create` + `response.create` then speak the
call's digits), or to the client when the session asked for client delegation explicitly
(`session.delegation.created`, answered by `session.commentary.append`, whose keypad characters are
spoken); with no delegation configured `#` is just a word, as in the other fakes. A typed turn
(`session.instructions.append`) is answered by its keypad characters. Caller speech that starts before
the reply's last tone cuts the reply in the conversation record (record.extra["conversation"]).
"""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from providers.fakes.common import ConnectionRecord, FakeServer, Fault, header
from providers.fakes.openai_live_connection import LiveConnection


class FakeOpenAILive(FakeServer):
    """max_session_s: stream seconds after which the session expires (`session.closed` reason
    `expired`); usage_every_s: stream seconds between `session.usage.updated` events."""

    provider = "openai_live"

    def __init__(self, *, max_session_s: float | None = None, usage_every_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_session_s = max_session_s
        self.usage_every_s = usage_every_s
        self._sessions: dict[int, LiveConnection] = {}

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        if record.path.rstrip("/") != "/v1/live/sessions":
            return connection.respond(404, self.refusal_body(404))
        auth = header(request, "Authorization") or ""
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        record.auth = "header:authorization" if key else "none"
        if not self.key_ok(key):  # [unsure] a bad key refused at the upgrade, like the REST endpoints
            return connection.respond(401, self.refusal_body(401))
        return None

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
        session = LiveConnection(self, ws, record)
        self._sessions[record.number] = session
        try:
            await session.run()
        finally:
            self._sessions.pop(record.number, None)

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        session = self._sessions.get(record.number)
        if fault.kind == "expire" and session is not None:
            async with session.lock:
                await session.close_session("expired")
        elif fault.kind == "malformed":
            await self.send(ws, '{"type": "session.output_audio.delta", "delta": ')
        # `goaway` is Gemini-only: GPT-Live has no such message.
