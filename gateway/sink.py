"""The seam between a call session and its client: what the session may ask of a client connection.

Each client protocol (gateway/clients/native.py, gateway/clients/telephony.py) implements
`ClientSink`. The session never asks which protocol it talks to: a sink declares what it needs
(`exact_frames`) and answers in types (`Heard`), so a new client kind is a new sink, not a new branch.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class Heard:
    """At a barge-in: how much of the reply `item_id` the caller heard, out of what was sent."""

    item_id: str
    heard_ms: int
    sent_ms: int

    @property
    def cut_short(self) -> bool:
        """The caller did not hear all of what was sent."""
        return 0 < self.sent_ms and self.heard_ms < self.sent_ms


class ClientSink(Protocol):
    """How a session talks back to its client."""

    # The client sends reply audio in exact fixed-size frames (telephony: 20 ms), so the session
    # primes its reply resampler to give whole frames from the first chunk on.
    exact_frames: ClassVar[bool]

    async def send_json(self, payload: dict[str, Any]) -> None:
        """One event of the client protocol, already in wire form."""

    async def send_audio(self, data: bytes, item_id: str | None = None) -> None:
        """Reply audio in the session's output format (`item_id`: the provider's reply item)."""

    def send_audio_now(self, data: bytes, item_id: str | None = None) -> Awaitable[None] | None:
        """As send_audio, without a coroutine when nothing has to wait (the reply path runs in
        aiohttp's parser callback: gateway/ws_direct.py); else returns what to await."""

    async def turn_completed(self) -> None:
        """The assistant finished its turn: send what is held back (telephony: the last partial
        frame, then a mark)."""

    async def flush_audio(self) -> Heard | None:
        """Barge-in: drop queued playback now. What the caller heard of the reply that was playing,
        when the client can tell (telephony, from its playback marks); else None."""

    async def hang_up(self) -> None:
        """The gateway ends the call (operator hang-up): close the client's connection."""
