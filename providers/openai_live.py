"""OpenAI GPT-Live (`gpt-live-1`) as a sans-I/O adapter; `openai.types.live` is the wire schema.

GPT-Live is full duplex and marks no turns: transcripts arrive as timed deltas on the session
timeline (milliseconds of the session), with no "done" event, and the model yields to the caller by
itself. Turns are therefore inferred from who is talking, by this table:

    state      input transcript delta          output audio/transcript      quiet (link timer)
    IDLE       → USER (user speech started)    → ASSISTANT (turn started)   stay
    USER       stay (partial transcript)       → ASSISTANT: user turn final  → IDLE: user turn final
    ASSISTANT  → USER: the reply ends;         stay                         → IDLE: reply completed
               interrupted if the caller spoke
               before the reply's last word

A user turn is final when the model answers (or delegates, or goes quiet); it then acknowledges the
input audio up to the end of its last transcript delta, so a replay resends only unfinished words.
Invariants: parse() never raises; nothing here reads a clock (the link calls quiet_events()).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import orjson

from audio.formats import AudioFormat
from gateway.errors import ProviderError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ConversationItem,
    ProviderEvent,
    ProviderFailed,
    ReplyAudio,
    SessionExpiring,
    SetupComplete,
    ToolCall,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UsageReported,
    UserSpeechStarted,
)
from gateway.session_config import SessionConfig
from providers import openai_live_wire as wire
from providers.base import Capabilities, ConnectRequest, Endpoint, Frame, ProviderAdapter, ws_url
from providers.common_wire import (
    b64decode_any,
    b64encode,
    close_message,
    decode_object,
    dumps,
    number,
    protocol_failure,
    scrub,
)

_APPEND_PREFIX = '{"type":"session.input_audio.append","audio":"'  # hot path, base64 needs no escaping
_APPEND_SUFFIX = '"}'
_AUTH_CODES = frozenset({"invalid_api_key", "unauthorized", "authentication_error"})
_RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota"})

Events = list[ProviderEvent]


class Turn(enum.Enum):
    IDLE = "idle"
    USER = "user"
    ASSISTANT = "assistant"


# Every move the table in the module docstring allows; _move() refuses anything else.
_ALLOWED: frozenset[tuple[Turn, Turn]] = frozenset({
    (Turn.IDLE, Turn.USER), (Turn.IDLE, Turn.ASSISTANT),
    (Turn.USER, Turn.ASSISTANT), (Turn.USER, Turn.IDLE),
    (Turn.ASSISTANT, Turn.USER), (Turn.ASSISTANT, Turn.IDLE),
})


class OpenAILiveAdapter(ProviderAdapter):
    name: ClassVar[str] = "openai_live"
    breaker_name: ClassVar[str] = "openai_live_provider"
    capabilities: ClassVar[Capabilities] = Capabilities(
        audio_output=True, transcripts=True, assistant_transcripts=True, tools=True)
    # No turn-end event exists: after this long without a server event the open turn is finished.
    quiet_after_s: ClassVar[float | None] = 0.8

    def __init__(self, config: SessionConfig, endpoint: Endpoint) -> None:
        super().__init__(config, endpoint)
        self._format = wire.provider_format(config.input_format)
        self._setup_done = False
        self._session_id = ""
        self._expiring = False  # session.closed(expired) seen: the close that follows is planned
        self._closing = False  # we sent session.close
        self.turn = Turn.IDLE
        self._user_text = ""
        self._last_user_text = ""  # the latest finished user turn (what a delegation is about)
        self._user_start_ms: float | None = None
        self._user_end_ms: float | None = None
        self._reply_text = ""
        self._reply_end_ms: float | None = None  # end of the reply's last transcript delta
        self._client_delegations: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any], Events], None]] = {
            "session.started": self._on_started,
            "session.closed": self._on_closed,
            "error": self._on_error,
            "session.input_transcript.delta": self._on_input_delta,
            "session.output_transcript.delta": self._on_output_delta,
            "session.output_audio.delta": self._on_audio_delta,
            "session.delegation.created": self._on_delegation,
            "response.event": self._on_response_event,
            "session.usage.updated": self._on_usage,
        }

    # -- formats ----------------------------------------------------------------------------------
    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        return self._format

    # -- opening ----------------------------------------------------------------------------------
    def connect_request(self) -> ConnectRequest:
        # The SDK's live client: {websocket_base_url}/live/sessions, bearer auth, no subprotocol, and
        # no model in the URL (it goes in session.start).
        return ConnectRequest(url=f"{ws_url(self.endpoint.base_url)}/live/sessions",
                              headers=(("Authorization", f"Bearer {self.endpoint.api_key}"),))

    def open_frames(self, *, history: Sequence[ConversationItem], resume_handle: str | None) -> list[Frame]:
        return [dumps(wire.session_start(self.config, fmt=self._format, endpoint_model=self.endpoint.model,
                                         history=history))]

    # -- during the call ---------------------------------------------------------------------------
    def audio_frame(self, data: bytes) -> Frame:
        return _APPEND_PREFIX + b64encode(data) + _APPEND_SUFFIX

    def text_frames(self, text: str) -> list[Frame]:
        return [dumps(wire.typed_turn(text))]

    def tool_result_frames(self, call_id: str, name: str, output: str) -> list[Frame]:
        if call_id in self._client_delegations:
            self._client_delegations.discard(call_id)
            return [dumps(wire.delegation_result(call_id, output))]
        return [dumps(m) for m in wire.function_output(call_id, output)]

    def close_frames(self) -> list[Frame]:
        self._closing = True
        return [dumps({"type": "session.close"})]

    # commit/cancel/truncate: GPT-Live has none of them (it finds turn ends itself, stops speaking
    # when interrupted and keeps no items); the base class's empty lists apply.

    # -- receiving ---------------------------------------------------------------------------------
    def parse(self, frame: Frame) -> list[ProviderEvent]:
        message = decode_object(frame)
        kind = message.get("type") if message is not None else None
        if message is None or not isinstance(kind, str):
            return [protocol_failure(self.name, "openai_live sent a frame that is not a typed JSON event")]
        handler = self._handlers.get(kind)
        events: Events = []
        if handler is None:
            return events  # acknowledgements and info: nothing to relay
        try:
            handler(message, events)
        except Exception as exc:  # the contract: parse() never raises
            events.append(protocol_failure(self.name, f"openai_live sent a malformed {scrub(kind, limit=60)} "
                                                      f"({type(exc).__name__})"))
        return events

    def quiet_needs_audio(self) -> bool:
        return self.turn is Turn.USER

    def quiet_events(self) -> list[ProviderEvent]:
        """The link saw no server event for `quiet_after_s`: whoever was talking has finished."""
        events: Events = []
        if self.turn is Turn.USER:
            self._finish_user(events)
            self._move(Turn.IDLE)
        elif self.turn is Turn.ASSISTANT:
            self._finish_reply(events, interrupted=False)
            self._move(Turn.IDLE)
        return events

    def _move(self, to: Turn) -> None:
        if (self.turn, to) not in _ALLOWED:
            raise ValueError(f"turn {self.turn.value} → {to.value} is not allowed")
        self.turn = to

    def _on_started(self, message: dict[str, Any], events: Events) -> None:
        session = message.get("session")
        session_id = session.get("id") if isinstance(session, dict) else None
        if not self._setup_done:
            self._setup_done = True
            self._session_id = session_id if isinstance(session_id, str) else ""
            events.append(SetupComplete(provider_session_id=self._session_id or None))

    def _on_usage(self, message: dict[str, Any], events: Events) -> None:
        usage = message.get("usage")
        seconds = number(usage.get("seconds")) if isinstance(usage, dict) else None
        if seconds is not None and seconds >= 0:
            events.append(UsageReported(billed_s=seconds, provider_session_id=self._session_id))

    def _on_closed(self, message: dict[str, Any], events: Events) -> None:
        reason = message.get("reason")
        events.extend(self.quiet_events())  # whatever was open ends with the session
        self._on_usage(message, events)  # the final cumulative usage
        if reason == "expired":
            # The session duration limit: a planned end, handed over to a fresh session.
            self._expiring = True
            events.append(SessionExpiring(reason="expired"))
        elif reason == "content":
            text = "openai_live closed the session: content filter"
            events.append(ProviderFailed(ProviderRejected(text, provider=self.name, error_type="protocol",
                                                          provider_code="content"), fatal_for_link=True))
        # connection_lost / remote_hangup: the socket close that follows is classified (reconnect).

    def _on_error(self, message: dict[str, Any], events: Events) -> None:
        error = message.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        label = scrub(code or error.get("type") or "unknown", limit=80)
        text = f"openai_live error {label}: {scrub(error.get('message'), self.endpoint.api_key)}"
        if code in _AUTH_CODES:
            events.append(ProviderFailed(ProviderRejected(text, provider=self.name, error_type="auth", provider_code=label),
                                         fatal_for_link=True))
        elif wire.SESSION_START_EVENT_ID in (error.get("client_event_id"), message.get("client_event_id")):
            # Our session.start was refused: the same configuration cannot succeed on a retry.
            events.append(ProviderFailed(ProviderRejected(text, provider=self.name, error_type="protocol", provider_code=label),
                                         fatal_for_link=True))
        elif code in _RATE_LIMIT_CODES:
            events.append(ProviderFailed(ProviderUnavailable(text, provider=self.name, error_type="rate_limit",
                                                             provider_code=label)))
        else:
            events.append(ProviderFailed(ProviderProtocolError(text, provider=self.name, error_type="protocol",
                                                               breaker_failure=False, provider_code=label)))

    def _on_input_delta(self, message: dict[str, Any], events: Events) -> None:
        delta = message.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        start_ms, end_ms = number(message.get("start_ms")), number(message.get("end_ms"))
        if self.turn is Turn.ASSISTANT:
            # The caller speaks: the reply is over. Interrupted when they started before its last word.
            cut = start_ms is not None and self._reply_end_ms is not None and start_ms < self._reply_end_ms
            self._finish_reply(events, interrupted=cut)
        if self.turn is not Turn.USER:
            self._move(Turn.USER)
            self._user_text, self._user_start_ms = "", start_ms
            events.append(UserSpeechStarted(at_s=None if start_ms is None else start_ms / 1000))
        self._user_text += delta
        if end_ms is not None:
            self._user_end_ms = end_ms
        events.append(Transcript(role="user", text=self._user_text.strip(), final=False,
                                 start_s=_seconds(self._user_start_ms), end_s=_seconds(self._user_end_ms)))

    def _begin_reply(self, events: Events) -> None:
        if self.turn is Turn.ASSISTANT:
            return
        if self.turn is Turn.USER:
            self._finish_user(events)
        self._move(Turn.ASSISTANT)
        self._reply_text, self._reply_end_ms = "", None
        events.append(TurnStarted(role="assistant"))

    def _on_output_delta(self, message: dict[str, Any], events: Events) -> None:
        delta = message.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        self._begin_reply(events)
        self._reply_text += delta
        end_ms = number(message.get("end_ms"))
        if end_ms is not None:
            self._reply_end_ms = end_ms
        events.append(Transcript(role="assistant", text=self._reply_text.strip(), final=False))

    def _on_audio_delta(self, message: dict[str, Any], events: Events) -> None:
        delta = message.get("delta")
        data = b64decode_any(delta) if isinstance(delta, str) else b""
        if data:
            self._begin_reply(events)
            events.append(ReplyAudio(data=data, fmt=self._format))

    def _on_delegation(self, message: dict[str, Any], events: Events) -> None:
        """The model hands work to a backend. The caller's request is complete; with client
        delegation (no tools configured) it is our work: surfaced as a tool call whose result the
        model then communicates."""
        request = self._user_text.strip() or self._last_user_text
        if self.turn is Turn.USER:
            self._finish_user(events)
            self._move(Turn.IDLE)
        delegation = message.get("delegation")
        delegation = delegation if isinstance(delegation, dict) else {}
        delegation_id = delegation.get("id")
        if delegation.get("target") == "client" and isinstance(delegation_id, str):
            self._client_delegations.add(delegation_id)
            events.append(ToolCall(call_id=delegation_id, name=wire.CLIENT_DELEGATION_TOOL,
                                   arguments={"request": request}))

    def _on_response_event(self, message: dict[str, Any], events: Events) -> None:
        """A Responses-delegation stream event; a finished function_call item is one of our tools."""
        inner = message.get("event")
        if not isinstance(inner, dict) or inner.get("type") != "response.output_item.done":
            return
        item = inner.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return
        raw = item.get("arguments")
        if not isinstance(raw, str):
            raw = ""
        try:
            arguments = orjson.loads(raw)
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            arguments = {"_raw": raw}  # the tool gets what the model wrote, to answer with an error
        events.append(ToolCall(call_id=str(item.get("call_id") or ""), name=str(item.get("name") or ""),
                               arguments=arguments))

    # -- turn bookkeeping -------------------------------------------------------------------------
    def _finish_user(self, events: Events) -> None:
        text = self._user_text.strip()
        if text:
            self._last_user_text = text
            events.append(Transcript(role="user", text=text, final=True, start_s=_seconds(self._user_start_ms),
                                     end_s=_seconds(self._user_end_ms)))
        # Consumed up to the end of its last word (session timeline = this connection's audio time).
        events.append(AudioAcknowledged(until_s=_seconds(self._user_end_ms)))
        self._user_text, self._user_start_ms = "", None

    def _finish_reply(self, events: Events, *, interrupted: bool) -> None:
        text = self._reply_text.strip()
        if text:
            events.append(Transcript(role="assistant", text=text, final=True))
        events.append(TurnInterrupted() if interrupted else TurnCompleted(role="assistant"))
        self._reply_text, self._reply_end_ms = "", None


    # -- failures -----------------------------------------------------------------------------------
    def classify_close(self, code: int | None, reason: str) -> ProviderError | None:
        message = close_message(self.name, code, reason, self.endpoint.api_key)
        if code in (1000, 1001) and (self._expiring or self._closing):
            return None  # after session.closed(expired) or our session.close: planned
        if code in (3000, 4001, 4003) or code == 1008 and "auth" in reason.lower():
            return ProviderRejected(message, provider=self.name, error_type="auth", provider_close_code=code)
        if code in (1000, 1001):
            return ProviderUnavailable(message, provider=self.name, error_type="network",
                                       breaker_failure=False, provider_close_code=code)
        if code == 1011:
            return ProviderUnavailable(message, provider=self.name, error_type="server", provider_close_code=code)
        if code is None or code == 1006:
            return ProviderUnavailable(message, provider=self.name, error_type="network", provider_close_code=code)
        return ProviderUnavailable(message, provider=self.name, error_type="protocol", provider_close_code=code)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000
