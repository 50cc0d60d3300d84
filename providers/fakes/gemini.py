"""Fake Gemini Live server (BidiGenerateContent over WebSocket) speaking the DTMF dialect.

Wire reference: docs/providers/gemini.md (its fake-server checklist is implemented here and
in gemini_wire.py). Behaviour, per connection:
- Handshake: any `{version}` on the BidiGenerateContent / ...Constrained path (else HTTP 404); a key from
  `?key=`, `x-goog-api-key`, `?access_token=` or `Authorization: Token|Bearer`. No credential at all →
  HTTP 403 (Google's "unregistered callers" error). A wrong key is let through the upgrade and closed with
  1007 `API key not valid. Please pass a valid API key.` right after `setup` arrives (docs/providers/gemini.md §4).
- `setup` first (else 1007); unknown model → 1008 with the documented reason; `setupComplete` is the
  first server message (pretty-printed, binary frame, like the real server). With `sessionResumption`
  the server sends `sessionResumptionUpdate {newHandle, resumable: true}` once after setupComplete and
  after every turnComplete. Handles are shared by all connections of one server instance; resuming with
  one restores the conversation as it was when the handle was issued (`record.extra["restored_turns"]`);
  an unknown handle → 1008 `BidiGenerateContent session not found`.
- Audio in (`audio/pcm;rate=N`, either base64 alphabet) feeds a DialectRecognizer at the first chunk's
  rate. Each recognised digit is sent as an `inputTranscription` fragment (with `inputAudioTranscription`
  in setup); the utterance end sends `{"text": "", "finished": true}` so concatenated fragments stay the
  utterance text. The model then answers: DTMF → the same digits as 24 kHz DTMF tones; plain speech →
  the speech itself (parrot), both in `reply_chunk_ms` inlineData chunks sent as fast as produced, with
  `outputTranscription` (the digits), `generationComplete`, `turnComplete` + `usageMetadata`.
- Typed turns (`clientContent` with turnComplete, `realtimeInput.text`) are answered by speaking back
  their digits, `*` and `#` ("0" when there are none). clientContent turns are recorded in `record.items`.
- Tools: digits ending in `#` with at least one declared function → `toolCall` of the first function with
  `{"digits": <digits without #>}`; the reply (those digits) follows the matching `toolResponse`.
- Barge-in ("still playing" is decided in STREAM time): a reply counts as playing from the input stream
  time it started at (end of the user's utterance + the end-of-speech silence, or the stream time when a
  typed turn / tool response arrived) until the client has sent as much further input audio as the
  reply lasts. New user speech that starts in that window (and is not disabled by `activityHandling:
  NO_INTERRUPTION`) cuts the reply: unsent chunks are dropped, a pending tool call gets
  `toolCallCancellation`, then `interrupted: true` and `turnComplete` are sent.
- `max_connection_s` (wall time): `goAway {timeLeft}` `goaway_time_left_s` before it, then a close with
  1008 and the reason seen in the field (reachy_mini_conversation_app#357). Faults: `goaway` sends goAway
  with the fault's time_left and closes after it; `expire` is the same with no time left; `malformed`
  sends a truncated JSON binary frame.
- Bad client input: invalid JSON / unknown field / bad base64 / non-PCM audio / malformed tool response →
  close 1007 with a protobuf-style reason, like the real server (no in-band error messages exist).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from providers.fakes.common import ConnectionRecord, FakeServer, Fault
from providers.fakes.gemini_session import GeminiSession
from providers.fakes.gemini_wire import MISSING_KEY_BODY, PATH_RE, frame

_STATUS_NAMES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(status: int, message: str) -> str:
    """Google's JSON error body for an HTTP refusal."""
    return frame({"error": {"code": status, "message": message,
                            "status": _STATUS_NAMES.get(status, "UNKNOWN")}}, pretty=True).decode()


class FakeGemini(FakeServer):
    provider = "gemini"

    def __init__(self, *, max_connection_s: float | None = None, goaway_time_left_s: float = 10.0,
                 end_silence_ms: int = 300, reply_chunk_ms: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_connection_s = max_connection_s
        self.goaway_time_left_s = goaway_time_left_s
        self.end_silence_ms = end_silence_ms
        self.reply_chunk_ms = reply_chunk_ms
        self.resumption_snapshots: dict[str, list[dict[str, Any]]] = {}  # handle → conversation
        self._sessions: dict[int, GeminiSession] = {}

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        match = PATH_RE.match(record.path)
        if match is None:
            return connection.respond(404, google_error(404, "Method not found."))
        record.extra.update(version=match["version"], method=match["method"])
        query = dict(parse_qsl(urlsplit(request.path).query))
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        for source, key in (("query:key", query.get("key")), ("header:x-goog-api-key", request.headers.get(
                "x-goog-api-key")), ("query:access_token", query.get("access_token")),
                ("header:authorization", token if scheme.lower() in ("token", "bearer") else None)):
            if key:
                record.auth = source
                record.extra["key_ok"] = self.key_ok(key)
                return None
        return connection.respond(403, google_error(403, MISSING_KEY_BODY))

    def refusal_body(self, status: int) -> str:
        messages = {429: "Resource has been exhausted (e.g. check quota).", 500: "Internal error encountered.",
                    503: "The service is currently unavailable.", 401: "Request had invalid authentication "
                    "credentials.", 403: "The caller does not have permission"}
        return google_error(status, messages.get(status, "Error"))

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        session = GeminiSession(self, ws, record)
        self._sessions[record.number] = session
        try:
            await session.run()
        finally:
            self._sessions.pop(record.number, None)

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        session = self._sessions.get(record.number)
        if fault.kind == "malformed":
            await self.send(ws, b'{"serverContent": {"modelTurn": {"parts": [{"inlineDa')
        elif session is not None and fault.kind in ("goaway", "expire"):
            await session.go_away(fault.time_left if fault.kind == "goaway" else 0.0)


