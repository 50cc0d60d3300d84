"""One connection of a provider link (gateway/link.py): a fresh adapter and socket under a breaker
ticket, making it the current one, replaying the call's buffered audio in order before live audio
resumes, and the per-connection timers (the keepalive frame after `keepalive_idle_s` without audio,
the quiet watch that ends a turn for protocols without turn-end events).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from audio.convert import FormatConverter
from audio.formats import AudioChunk
from gateway import metrics
from gateway.breaker import BreakerTicket
from gateway.clock import Clock
from gateway.connect import BreakerCall, open_connection
from gateway.errors import ProviderUnavailable
from gateway.events import ConversationItem, ProviderEvent
from gateway.handover import Handovers
from gateway.logs import log_event
from gateway.provider_socket import ProviderConnector, ProviderSocket
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from gateway.states import LinkState
from providers.base import ProviderAdapter

log = logging.getLogger("gateway.link")  # the link's logger: its records keep their name
# the caller's turn ends without more of our audio after this many quiet periods (they stopped sending)
QUIET_AUDIO_CAP = 5


class LinkConnection:
    """Connections for `ProviderLink` (which inherits this; the state lives there)."""

    provider: str
    policy: ReconnectPolicy
    replay: ReplayBuffer
    adapter: ProviderAdapter | None
    retry_count: int
    stream_origin_s: float
    counters: dict[str, int]
    _new_adapter: Callable[[], ProviderAdapter]
    _connector: ProviderConnector
    _clock: Clock
    _history: Callable[[], Sequence[ConversationItem]]
    _rotate_after_s: float | None
    _sock: ProviderSocket | None
    _converter: FormatConverter | None
    _resume_handle: str | None
    _in_assistant_turn: bool
    _handovers: Handovers
    _call: BreakerCall
    _last_audio_at: float
    _stamp_audio: bool  # this connection's adapter has a keepalive: each send stamps _last_audio_at
    _last_frame_at: float
    _audio_at_last_frame_s: float  # call time of the audio sent when the last frame arrived
    _closing: bool
    _last_chunk_end_s: float
    _chunks_sent: metrics.Tally

    if TYPE_CHECKING:  # provided by ProviderLink
        @property
        def _ended(self) -> bool: ...
        def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...
        def move(self, to: LinkState) -> None: ...
        async def _handle(self, ev: ProviderEvent) -> None: ...

    # -- establishment -------------------------------------------------------------------------
    async def connect(self, ticket: BreakerTicket, *, history: bool
                      ) -> tuple[ProviderAdapter, ProviderSocket, list[ProviderEvent]]:
        """A fresh adapter and connection (gateway/connect.py). Settles `ticket` on failure."""
        adapter = self._new_adapter()
        resume = self._resume_handle
        sock, after = await open_connection(
            adapter, connector=self._connector, ticket=ticket, timeout_s=self.policy.connect_timeout_s,
            clock=self._clock, resume_handle=resume, history=self._history() if history or resume is None else (),
            retry_count=self.retry_count)
        return adapter, sock, after

    async def establish(self, ticket: BreakerTicket, *, history: bool = True) -> int:
        """Connect, then make the new connection current and replay. Returns chunks replayed."""
        adapter, sock, after = await self.connect(ticket, history=history)
        return await self.activate(adapter, sock, after, ticket)

    async def activate(self, adapter: ProviderAdapter, sock: ProviderSocket, after: list[ProviderEvent],
                        ticket: BreakerTicket) -> int:
        if self._ended:  # closed or given up while this connection was being set up: not a failure
            ticket.success()
            await sock.close()
            raise ProviderUnavailable("link closed during setup", provider=self.provider, breaker_failure=False)
        self._call.begin(ticket)
        self.adapter, self._sock = adapter, sock
        self._stamp_audio = bool(adapter.keepalive_idle_s)  # read per chunk sent: not the class attribute
        # chunks in the replay buffer are in the call's input format; convert per connection
        self._converter = FormatConverter(adapter.config.input_format, adapter.input_format)
        self._in_assistant_turn = False
        self.spawn(self._call.settle_after_window(ticket))
        if adapter.keepalive_idle_s:
            self.spawn(self._keepalive(sock, adapter))
        if adapter.quiet_after_s:
            self.spawn(self._quiet_watch(sock, adapter))
        if self._rotate_after_s:
            self.spawn(self._handovers.rotate_later(sock, self._rotate_after_s))
        self.move(LinkState.REPLAYING)
        replayed = await self._replay()
        if self._ended:
            return replayed
        self.move(LinkState.UP)
        for ev in after:
            await self._handle(ev)
        return replayed

    async def _replay(self) -> int:
        """Send everything kept, oldest first, then whatever arrived meanwhile; then go live."""
        lost = self.replay.at_risk  # sent on the connection we leave, evicted, not acknowledged there
        self.replay.new_connection(owner=self)
        if lost:
            metrics.voice_gateway_replay_dropped_chunks.labels(self.provider).inc(lost)
            log_event(log, logging.WARNING, "audio.lost", f"{lost} sent chunks were never acknowledged by the "
                      "connection this call left and can no longer be replayed", dropped_count=lost)
        first = self._first_unsent()
        # provider stream time 0 on this connection = this much call time (for transcript times)
        self.stream_origin_s = first.offset_s if first is not None else self._last_chunk_end_s
        n = 0
        while (chunk := self._first_unsent()) is not None:
            if not await self._send_chunk(chunk):
                break
            n += 1
        if n:
            self.counters["replayed"] += n
            metrics.voice_gateway_replayed_chunks.labels(self.provider).inc(n)
            log_event(log, logging.INFO, "audio.replayed", f"replayed {n} buffered chunks",
                      replayed_count=n,
                      total_count=self.counters["replayed"])
        return n

    def _first_unsent(self) -> AudioChunk | None:
        return next(self.replay.unsent(), None)

    async def _send_chunk(self, chunk: AudioChunk) -> bool:
        # ProviderLink.send_audio_now has this inlined for the live frame: change both together
        sock, adapter, conv = self._sock, self.adapter, self._converter
        if sock is None or adapter is None or conv is None:
            return False
        data = conv.convert(chunk.data)
        try:
            if data:
                await sock.send(adapter.audio_frame(data))
        except (ConnectionError, RuntimeError, OSError):
            return False  # stays unsent in the replay buffer; the read loop sees the close
        self._sent(chunk)
        return True

    def _sent(self, chunk: AudioChunk) -> None:
        """A chunk is on the wire: it leaves the replay buffer's unsent part, and counts."""
        self.replay.mark_sent(chunk)
        if self._stamp_audio:
            self._last_audio_at = self._clock.now()  # only the keepalive timer reads it
        self.counters["chunks_sent"] += 1
        self._chunks_sent.n += 1


    # -- keepalive ------------------------------------------------------------------------------
    async def _keepalive(self, sock: ProviderSocket, adapter: ProviderAdapter) -> None:
        idle = adapter.keepalive_idle_s or 5.0
        frame = adapter.keepalive_frame()
        if frame is None:
            return
        self._last_audio_at = self._clock.now()
        while sock is self._sock and not self._closing:
            wait = self._last_audio_at + idle - self._clock.now()
            if wait > 0:
                await self._clock.sleep(wait)
                continue
            with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                await sock.send(frame)
            self._last_audio_at = self._clock.now()

    async def _quiet_watch(self, sock: ProviderSocket, adapter: ProviderAdapter) -> None:
        """Protocols without turn-end events (GPT-Live): after `quiet_after_s` with no server event,
        the adapter finishes whatever turn was open. The caller's turn also needs `quiet_after_s` of
        our audio sent since the provider last spoke (else a caller whose audio stalls for a moment
        has a word cut in two), unless no audio came for QUIET_AUDIO_CAP times as long."""
        quiet = adapter.quiet_after_s or 1.0
        self._last_frame_at = self._clock.now()
        self._audio_at_last_frame_s = self._last_chunk_end_s
        while sock is self._sock and not self._closing:
            now = self._clock.now()
            wait = self._last_frame_at + quiet - now
            if wait <= 0 and adapter.quiet_needs_audio() \
                    and self._last_chunk_end_s - self._audio_at_last_frame_s < quiet - 1e-9:
                wait = min(quiet / 4, self._last_frame_at + quiet * QUIET_AUDIO_CAP - now)
            if wait > 0:
                await self._clock.sleep(wait)
                continue
            self._last_frame_at = self._clock.now()
            self._audio_at_last_frame_s = self._last_chunk_end_s
            for ev in adapter.quiet_events():
                await self._handle(ev)
