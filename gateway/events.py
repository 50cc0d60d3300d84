"""The one event vocabulary.

Two closed sets of frozen, slotted dataclasses:
- `ProviderEvent`: what a sans-I/O adapter (providers/<name>.py) turns wire messages into. Only these
  leave providers/.
- `ClientEvent`: what the gateway tells a client (docs/protocol.md). `to_wire()` adds `type`,
  `session_id` and `ts`; field names are the public contract.
Conversation items (the record carried across switches) live here too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from audio.formats import AudioFormat
from gateway.errors import GatewayError, ProviderError

Role = Literal["user", "assistant"]


# == conversation record ========================================================================
@dataclass(frozen=True, slots=True)
class UserTurn:
    text: str


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    text: str


@dataclass(frozen=True, slots=True)
class ToolInvocation:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    name: str
    output: str


ConversationItem = UserTurn | AssistantTurn | ToolInvocation | ToolOutput


# == provider → gateway ==========================================================================
@dataclass(frozen=True, slots=True)
class SetupComplete:
    """The provider accepted our setup; the link is established (a breaker success)."""

    provider_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    role: Role
    text: str
    final: bool
    start_s: float | None = None  # seconds of provider-stream audio, when the protocol says
    end_s: float | None = None


@dataclass(slots=True)
class ReplyAudio:
    """Immutable like every event here, but not `frozen`: one is made per reply frame, and a frozen
    dataclass's __init__ costs 0.5 µs against 0.2 (it sets each field through object.__setattr__)."""

    data: bytes
    fmt: AudioFormat
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserSpeechStarted:
    at_s: float | None = None


@dataclass(frozen=True, slots=True)
class TurnStarted:
    role: Role = "assistant"
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    role: Role = "assistant"


@dataclass(frozen=True, slots=True)
class TurnInterrupted:
    """Barge-in: the client must flush playback now."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallCancelled:
    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResumptionHandle:
    handle: str


@dataclass(frozen=True, slots=True)
class GoAway:
    """Planned close (Gemini goAway): reconnect with the newest handle before time_left_s."""

    time_left_s: float


@dataclass(frozen=True, slots=True)
class SessionExpiring:
    """Planned close (OpenAI session_expired): rotate to a new session, carry the conversation."""

    reason: str = "session_expired"


@dataclass(frozen=True, slots=True)
class AudioAcknowledged:
    """The provider has consumed input audio up to `until_s` of provider-stream time
    (None: everything sent so far, e.g. a finalized user turn on Gemini)."""

    until_s: float | None = None


@dataclass(frozen=True, slots=True)
class UsageReported:
    """Billed usage of the current provider session so far, cumulative (GPT-Live bills by duration)."""

    billed_s: float
    provider_session_id: str = ""


@dataclass(frozen=True, slots=True)
class ProviderFailed:
    """An in-band error. `error.retryable` tells the link whether to reconnect."""

    error: ProviderError
    fatal_for_link: bool = False  # True: the provider will close / the link is unusable


ProviderEvent = (
    SetupComplete | Transcript | ReplyAudio | UserSpeechStarted | TurnStarted | TurnCompleted
    | TurnInterrupted | ToolCall | ToolCallCancelled | ResumptionHandle | GoAway | SessionExpiring
    | AudioAcknowledged | ProviderFailed | UsageReported
)


# == gateway → client (docs/protocol.md) ==============================================================
@dataclass(frozen=True, slots=True, kw_only=True)
class ClientEvent:
    TYPE: ClassVar[str] = ""

    def to_wire(self, session_id: str, ts: float) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.wire_type(), "session_id": session_id, "ts": round(ts, 6)}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("_") or (v is None and f.metadata.get("omit_none")):
                continue
            out[f.metadata.get("wire", f.name)] = v
        return out

    def wire_type(self) -> str:
        return self.TYPE


def _wire(name: str) -> Any:
    return field(metadata={"wire": name})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(ClientEvent):
    TYPE: ClassVar[str] = "session.started"
    provider: str
    fallback: list[str]
    audio_input: dict[str, Any] = _wire("audio.input")
    audio_output: dict[str, Any] = _wire("audio.output")
    capabilities: dict[str, bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptEvent(ClientEvent):
    provider: str
    role: str
    text: str
    final: bool = field(metadata={"wire": "_final"}, default=False)
    start: float | None = None
    end: float | None = None

    def wire_type(self) -> str:
        return "transcript.final" if self.final else "transcript.partial"

    def to_wire(self, session_id: str, ts: float) -> dict[str, Any]:
        out = ClientEvent.to_wire(self, session_id, ts)
        out.pop("_final", None)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioDelta(ClientEvent):
    TYPE: ClassVar[str] = "audio.delta"
    provider: str
    audio: str  # base64 in audio.output format


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEvent(ClientEvent):
    provider: str
    kind: Literal["started", "completed", "interrupted"] = field(metadata={"wire": "_kind"})
    role: str = "assistant"

    def wire_type(self) -> str:
        return f"turn.{self.kind}"

    def to_wire(self, session_id: str, ts: float) -> dict[str, Any]:
        out = ClientEvent.to_wire(self, session_id, ts)
        out.pop("_kind", None)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallEvent(ClientEvent):
    TYPE: ClassVar[str] = "tool.call"
    provider: str
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionReconnecting(ClientEvent):
    TYPE: ClassVar[str] = "connection.reconnecting"
    provider: str
    attempt: int
    max_attempts: int
    backoff_delay: float
    buffered_audio_chunks: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionReconnected(ClientEvent):
    TYPE: ClassVar[str] = "connection.reconnected"
    provider: str
    attempts: int
    duration: float
    replayed_audio_chunks: int
    dropped_audio_chunks: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionFailed(ClientEvent):
    TYPE: ClassVar[str] = "connection.failed"
    provider: str
    reason: str
    total_attempts: int


# Why a call moved to another provider: a lost link (the first three), or a request.
SwitchReason = Literal["circuit_open", "reconnect_failed", "fatal_error", "operator", "client", "return_to_primary"]
LinkLostReason = Literal["circuit_open", "reconnect_failed", "fatal_error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSwitched(ClientEvent):
    TYPE: ClassVar[str] = "provider.switched"
    from_provider: str = _wire("from")
    to_provider: str = _wire("to")
    provider: str  # the new one
    reason: SwitchReason
    carried_turns: int
    capabilities: dict[str, bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorEvent(ClientEvent):
    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    provider: str | None = field(default=None, metadata={"omit_none": True})
    retry_after: float | None = field(default=None, metadata={"omit_none": True})

    @classmethod
    def from_error(cls, err: GatewayError) -> ErrorEvent:
        """The `error` event a client sees for a gateway error: its stable code and its message."""
        return cls(code=err.code, message=err.message)


@dataclass(frozen=True, slots=True, kw_only=True)
class WarningEvent(ClientEvent):
    """Something the client asked for was not applied (e.g. an unknown provider option); the call
    goes on."""

    TYPE: ClassVar[str] = "warning"
    code: str
    message: str
    provider: str | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded(ClientEvent):
    TYPE: ClassVar[str] = "session.ended"
    reason: str
    totals: dict[str, Any]
