"""Typed events of the gateway's `/v1/voice` protocol (docs/protocol.md), as the client sees them.

`parse_event(dict)` turns one JSON event into its dataclass; a type this version does not know
becomes `UnknownEvent`, so a newer gateway never breaks an older client. Binary frames become
`AudioChunk`. Two events are the client's own, not the gateway's: `GatewayDisconnected` and
`GatewayReconnected` report the client's reconnects to the gateway itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event. `raw` is the JSON object as received (empty for client-side events)."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @property
    def session_id(self) -> str:
        return str(self.raw.get("session_id", ""))


@dataclass(frozen=True, slots=True)
class SessionStarted(Event):
    provider: str
    fallback: list[str]
    input_format: dict[str, Any]
    output_format: dict[str, Any]
    capabilities: dict[str, bool]


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    role: str  # "user" or "assistant"
    text: str
    final: bool
    provider: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True, slots=True)
class AudioChunk(Event):
    """Reply audio in the session's output format (a binary frame, or a JSON `audio.delta`)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class TurnStarted(Event):
    role: str
    provider: str


@dataclass(frozen=True, slots=True)
class TurnCompleted(Event):
    role: str
    provider: str


@dataclass(frozen=True, slots=True)
class TurnInterrupted(Event):
    """Barge-in: stop playing reply audio now (discard what is queued)."""

    provider: str


@dataclass(frozen=True, slots=True)
class ToolCall(Event):
    call_id: str
    name: str
    arguments: dict[str, Any]
    provider: str


@dataclass(frozen=True, slots=True)
class ConnectionReconnecting(Event):
    """The gateway lost its provider link and is reconnecting (the call goes on)."""

    provider: str
    attempt: int
    max_attempts: int
    backoff_delay: float
    buffered_audio_chunks: int


@dataclass(frozen=True, slots=True)
class ConnectionReconnected(Event):
    provider: str
    attempts: int
    duration: float
    replayed_audio_chunks: int
    dropped_audio_chunks: int


@dataclass(frozen=True, slots=True)
class ConnectionFailed(Event):
    provider: str
    reason: str
    total_attempts: int


@dataclass(frozen=True, slots=True)
class ProviderSwitched(Event):
    from_provider: str
    to_provider: str
    reason: str
    carried_turns: int
    capabilities: dict[str, bool]


@dataclass(frozen=True, slots=True)
class Error(Event):
    code: str
    message: str
    provider: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    reason: str
    totals: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    type: str


@dataclass(frozen=True, slots=True)
class GatewayDisconnected(Event):
    """Client-side: the WebSocket to the gateway dropped unexpectedly; reconnecting."""

    attempt: int
    delay_s: float


@dataclass(frozen=True, slots=True)
class GatewayReconnected(Event):
    """Client-side: a new WebSocket and a new call are up (the gateway's call state is not resumed;
    audio sent while disconnected, up to the client's buffer, is sent now)."""

    attempts: int
    resent_audio_chunks: int
    dropped_audio_chunks: int


def _audio(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_event(msg: dict[str, Any]) -> Event:
    """One JSON event from the gateway → its typed form (never raises on a well-formed object)."""
    import base64

    kind = str(msg.get("type", ""))
    p = str(msg.get("provider") or "")
    try:
        match kind:
            case "session.started":
                return SessionStarted(p, list(msg.get("fallback") or []), _audio(msg.get("audio.input")),
                                      _audio(msg.get("audio.output")), dict(msg.get("capabilities") or {}),
                                      raw=msg)
            case "transcript.partial" | "transcript.final":
                return Transcript(str(msg["role"]), str(msg["text"]), kind == "transcript.final", p,
                                  msg.get("start"), msg.get("end"), raw=msg)
            case "audio.delta":
                return AudioChunk(base64.b64decode(msg["audio"]), raw=msg)
            case "turn.started":
                return TurnStarted(str(msg.get("role", "assistant")), p, raw=msg)
            case "turn.completed":
                return TurnCompleted(str(msg.get("role", "assistant")), p, raw=msg)
            case "turn.interrupted":
                return TurnInterrupted(p, raw=msg)
            case "tool.call":
                return ToolCall(str(msg["call_id"]), str(msg["name"]), dict(msg.get("arguments") or {}), p, raw=msg)
            case "connection.reconnecting":
                return ConnectionReconnecting(p, int(msg["attempt"]), int(msg["max_attempts"]),
                                              float(msg["backoff_delay"]), int(msg["buffered_audio_chunks"]),
                                              raw=msg)
            case "connection.reconnected":
                return ConnectionReconnected(p, int(msg["attempts"]), float(msg["duration"]),
                                             int(msg["replayed_audio_chunks"]), int(msg["dropped_audio_chunks"]),
                                             raw=msg)
            case "connection.failed":
                return ConnectionFailed(p, str(msg["reason"]), int(msg["total_attempts"]), raw=msg)
            case "provider.switched":
                return ProviderSwitched(str(msg["from"]), str(msg["to"]), str(msg["reason"]),
                                        int(msg.get("carried_turns", 0)), dict(msg.get("capabilities") or {}),
                                        raw=msg)
            case "error":
                return Error(str(msg["code"]), str(msg.get("message", "")), msg.get("provider"),
                             msg.get("retry_after"), raw=msg)
            case "session.ended":
                return SessionEnded(str(msg["reason"]), dict(msg.get("totals") or {}), raw=msg)
    except (KeyError, TypeError, ValueError):
        pass  # a shape this version does not understand: hand it over untyped
    return UnknownEvent(kind, raw=msg)
