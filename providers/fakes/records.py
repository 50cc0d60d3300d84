"""What a fake provider server records of one connection, for tests to assert on. Nothing secret
(keys, tokens) is ever recorded: credential headers and query parameters are left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Header and query names that carry credentials: never recorded.
SECRET_HEADERS = frozenset({"authorization", "x-goog-api-key", "sec-websocket-protocol", "cookie", "api-key",
                            "openai-api-key", "x-api-key"})
SECRET_QUERY = frozenset({"key", "access_token", "token", "api_key"})


@dataclass(slots=True)
class ConnectionRecord:
    number: int
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)  # secrets removed
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, secrets removed
    auth: str = ""  # how the client authenticated, e.g. "header:x-goog-api-key" (never the secret)
    refused: int | None = None  # HTTP status when the upgrade was refused
    messages: list[Any] = field(default_factory=list)  # every client text message, parsed JSON (or raw str)
    setup: dict[str, Any] | None = None  # Gemini setup / OpenAI last session.update / Deepgram query
    items: list[dict[str, Any]] = field(default_factory=list)  # conversation items / clientContent turns received
    audio: bytearray = field(default_factory=bytearray)  # input audio as PCM16 at `audio_rate_hz`
    audio_rate_hz: int = 16000
    audio_chunks: int = 0  # audio messages received
    digits: str = ""  # DTMF digits heard, in order (the recognizer's words)
    transcripts: list[str] = field(default_factory=list)  # finalized user utterances (text)
    faults_fired: list[str] = field(default_factory=list)  # kinds, in the order they fired
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific per-connection state
    replies: list[str] = field(default_factory=list)  # what the fake said in synthesized speech (text)
    close_code: int | None = None
    closed_by: Literal["client", "server", "fault", None] = None
