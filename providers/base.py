"""The adapter contract every providers/<name>.py implements.

An adapter is a sans-I/O translator for ONE provider connection: it turns our session config into a
URL, headers and setup messages; audio into wire frames; wire frames into `gateway.events`
ProviderEvents; close codes and handshake statuses into the error tree. It never awaits, never
touches a socket or a clock. The link runner (gateway/link.py) makes a fresh adapter per connection
attempt and owns everything with time or I/O in it.

A frame is `str` (sent as a WebSocket text frame) or `bytes` (binary frame).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from audio.formats import AudioFormat
from gateway.errors import ProviderError
from gateway.events import ConversationItem, ProviderEvent
from gateway.session_config import SessionConfig
from providers.common_wire import classify_handshake_status

Frame = str | bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where and how to reach a provider. `base_url` has docs/configuration.md meaning per provider
    (Gemini/Deepgram: an origin; OpenAI: includes `/v1`). ws(s):// or http(s):// (read as ws(s))."""

    base_url: str
    api_key: str
    model: str | None = None
    simulated: bool = False

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint(base_url={self.base_url!r}, model={self.model!r}, simulated={self.simulated})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRequest:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()

    def __repr__(self) -> str:  # URL may hold ?key=; headers hold secrets
        return f"ConnectRequest(url={redact_url(self.url)!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    audio_output: bool  # the provider speaks back
    transcripts: bool  # user transcripts
    assistant_transcripts: bool
    tools: bool

    def to_wire(self) -> dict[str, bool]:
        return {"audio_output": self.audio_output, "transcripts": self.transcripts,
                "assistant_transcripts": self.assistant_transcripts, "tools": self.tools}


def redact_url(url: str) -> str:
    """Mask query-string secrets (key, token, access_token, api_key)."""
    import re

    return re.sub(r"(?i)([?&](?:key|token|access_token|api_key|apikey)=)[^&#]*", r"\1***", url)


def ws_url(base_url: str) -> str:
    """http(s):// → ws(s)://; strip one trailing slash."""
    if base_url.startswith("https://"):
        base_url = "wss://" + base_url[len("https://"):]
    elif base_url.startswith("http://"):
        base_url = "ws://" + base_url[len("http://"):]
    return base_url.rstrip("/")


class ProviderAdapter(ABC):
    name: ClassVar[str]  # "gemini" | "openai" | "deepgram"
    breaker_name: ClassVar[str]  # "gemini_provider" | "openai_provider" | "deepgram_stt"
    capabilities: ClassVar[Capabilities]
    # Deepgram: no setup acknowledgement exists; the link is established at the upgrade.
    ready_on_upgrade: ClassVar[bool] = False
    # Seconds without audio after which keepalive_frame() must be sent (Deepgram: 5.0).
    keepalive_idle_s: ClassVar[float | None] = None
    # Seconds without any server event after which quiet_events() is asked to end the open turn
    # (GPT-Live sends no turn-end events). None: the protocol marks its turns.
    quiet_after_s: ClassVar[float | None] = None
    # A tool call issued by ANOTHER provider can be answered on this one after a switch (OpenAI:
    # the carried function_call item makes a later function_call_output valid). Gemini can't.
    carries_pending_tool_calls: ClassVar[bool] = False
    # Stall detection (docs/audit.md): after this long with nothing at all from the provider (no
    # message, no pong) the link pings; no pong within half of it again → the link is dead (1006)
    # and reconnects. A healthy server answers pings at once even while it has nothing to say.
    stall_ping_after_s: ClassVar[float] = 5.0

    def __init__(self, config: SessionConfig, endpoint: Endpoint) -> None:
        self.config = config
        self.endpoint = endpoint

    @property
    def model_name(self) -> str | None:
        """The model this connection asks for (logged on connection established)."""
        return str(self.config.options_for(self.name).get("model") or self.endpoint.model or "") or None

    # -- formats ----------------------------------------------------------------------------------
    @property
    @abstractmethod
    def input_format(self) -> AudioFormat:
        """The format audio must be in when handed to encode_audio() (chosen from the client's
        input format: e.g. OpenAI takes μ-law 8k natively, Deepgram any declared format)."""

    @property
    @abstractmethod
    def output_format(self) -> AudioFormat | None:
        """The format of ReplyAudio data, or None when the provider does not speak."""

    # -- opening ----------------------------------------------------------------------------------
    @abstractmethod
    def connect_request(self) -> ConnectRequest: ...

    @abstractmethod
    def open_frames(self, *, history: Sequence[ConversationItem], resume_handle: str | None) -> list[Frame]:
        """Frames to send right after the upgrade (Gemini: setup; OpenAI: session.update then the
        carried conversation items; Deepgram: nothing)."""

    def ready_frames(self, *, history: Sequence[ConversationItem], resumed: bool) -> list[Frame]:
        """Frames to send once SetupComplete has been parsed (Gemini: clientContent history when
        not resumed). Default: none."""
        return []

    # -- during the call ---------------------------------------------------------------------------
    @abstractmethod
    def audio_frame(self, data: bytes) -> Frame:
        """One input chunk, already in input_format, as a wire frame."""

    def commit_frames(self) -> list[Frame]:
        """End of the user's turn (client-side VAD)."""
        return []

    def text_frames(self, text: str) -> list[Frame]:
        return []

    def tool_result_frames(self, call_id: str, name: str, output: str) -> list[Frame]:
        return []

    def cancel_frames(self) -> list[Frame]:
        return []

    def truncate_frames(self, item_id: str, audio_end_ms: int) -> list[Frame]:
        """After barge-in: keep only what the caller heard (OpenAI conversation.item.truncate)."""
        return []

    def keepalive_frame(self) -> Frame | None:
        return None

    def quiet_events(self) -> list[ProviderEvent]:
        """Called by the link after `quiet_after_s` without a server event."""
        return []

    def quiet_needs_audio(self) -> bool:
        """The open turn is the caller's: silence from the provider means it has finished only once
        the provider has also had `quiet_after_s` more of our audio (audio that arrives in bursts —
        a caller's network hiccup, a starved client — must not cut a word in two)."""
        return False

    def close_frames(self) -> list[Frame]:
        """Graceful end (Deepgram CloseStream)."""
        return []

    @abstractmethod
    def parse(self, frame: Frame) -> list[ProviderEvent]:
        """One received frame → zero or more events, in order. Never raises on bad input: a frame
        that cannot be parsed becomes ProviderFailed(ProviderProtocolError)."""

    # -- failures -----------------------------------------------------------------------------------
    def classify_handshake(self, status: int, body: str = "") -> ProviderError:
        """HTTP status instead of 101: 401/403 (and other 4xx: bad parameters) → ProviderRejected;
        429/5xx → ProviderUnavailable. The same table for every provider (common_wire)."""
        return classify_handshake_status(self.name, status, body, self.endpoint.api_key)

    @abstractmethod
    def classify_close(self, code: int | None, reason: str) -> ProviderError | None:
        """A close we did not ask for. None means planned/normal (no failure, no backoff);
        ProviderRejected for auth/config (1007 bad key on Gemini, 3000 on OpenAI, ...)."""
