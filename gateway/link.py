"""The one provider link runner, for every provider (docs/architecture.md, docs/architecture.md).

A `ProviderLink` bridges one call to one provider. It owns the socket, the read loop, the reconnect
schedule, planned handovers, keepalives and the breaker calls; provider differences come only from
the sans-I/O adapter it is given. Establishing, replaying and timing one connection is in
gateway/link_connection.py (a base class of `ProviderLink`). Invariants:
- every input chunk goes through the call's ReplayBuffer first; a chunk leaves it only when the
  provider acknowledged it, so audio sent while the link is down, or lost in a dying connection,
  is replayed in order on the next connection before live audio resumes;
- one establishment (upgrade + setup acknowledged, under a deadline) is one breaker call; its
  result is settled once the link has lived `early_failure_window_s` (an abnormal close sooner is
  that call failing);
- planned handovers (Gemini goAway, OpenAI rotation) are make-before-break, never a failure and
  never on the backoff schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, Protocol

from audio.convert import FormatConverter
from audio.formats import AudioChunk
from gateway import metrics
from gateway.breaker import CircuitBreaker
from gateway.clock import Clock
from gateway.connect import BreakerCall
from gateway.errors import GatewayError, ProviderError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ClientEvent,
    ConversationItem,
    GoAway,
    LinkLostReason,
    ProviderEvent,
    ProviderFailed,
    ReplyAudio,
    ResumptionHandle,
    SessionExpiring,
    SetupComplete,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
)
from gateway.handover import Handovers
from gateway.link_connection import LinkConnection
from gateway.logs import log_context, log_event
from gateway.provider_socket import Closed, ProviderConnector, ProviderSocket
from gateway.reconnect import Reconnector
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from gateway.states import LINK_MOVES, LinkState
from providers.base import Frame, ProviderAdapter

log = logging.getLogger("gateway.link")
# returned by the read loop when a handover replaced the socket it was reading
_SWAPPED = ProviderUnavailable("socket replaced by a handover", breaker_failure=False)


class _Stop:
    """Awaited, says True: what a frame handler returns to end the read (gateway/ws_direct.py)."""

    def __await__(self) -> Generator[None, None, bool]:
        return True
        yield  # a generator: `await _STOP` completes at once with True


_STOP: Any = _Stop()
# enum members as module constants: on Python 3.11 `Enum.MEMBER` is a ~0.13 µs lookup, and these
# are read per frame
_UP = LinkState.UP


class LinkSink(Protocol):
    """What a link tells its call session."""

    async def on_provider_event(self, link: ProviderLink, event: ProviderEvent) -> None: ...

    def on_reply_audio_now(self, link: ProviderLink, event: ReplyAudio) -> Awaitable[None] | None:
        """As on_provider_event for reply audio, without a coroutine: returns None, or what to await."""

    async def on_client_event(self, link: ProviderLink, event: ClientEvent) -> None: ...

    async def on_link_lost(self, link: ProviderLink, reason: LinkLostReason, error: GatewayError | None) -> None:
        """The link gave up: reason is circuit_open | reconnect_failed | fatal_error."""


# ProviderLink's attributes as slots: they are read per frame both ways, and past 30 attributes an
# instance dict has keys of its own, across which Python 3.11 cannot specialise method lookups (one
# link per call). The mixin has no slots: an instance still has a dict, for anything else.
_LINK_SLOTS = (
    "provider", "_new_adapter", "breaker", "_connector", "_clock", "policy", "replay", "_sink", "_history",
    "session_id", "_rotate_after_s", "_goaway_margin_s", "state", "adapter", "_sock", "_converter",
    "_resume_handle", "_in_assistant_turn", "_handovers", "_reconnector", "_tasks", "_reader", "_call",
    "_last_audio_at", "_stamp_audio", "_last_frame_at", "_audio_at_last_frame_s", "_closing", "_fatal_error",
    "_last_chunk_end_s", "retry_count", "stream_origin_s", "counters", "_chunks_sent", "_chunks_received")


class ProviderLink(LinkConnection):
    __slots__ = _LINK_SLOTS

    def __init__(
        self, *, provider: str, adapter_factory: Callable[[], ProviderAdapter], breaker: CircuitBreaker,
        connector: ProviderConnector, clock: Clock, policy: ReconnectPolicy, replay: ReplayBuffer,
        sink: LinkSink, history: Callable[[], Sequence[ConversationItem]], session_id: str = "",
        rotate_after_s: float | None = None, goaway_margin_s: float = 1.0, rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self._new_adapter = adapter_factory
        self.breaker = breaker
        self._connector = connector
        self._clock = clock
        self.policy = policy
        self.replay = replay
        self._sink = sink
        self._history = history
        self.session_id = session_id
        self._rotate_after_s = rotate_after_s
        self._goaway_margin_s = goaway_margin_s
        self.state = LinkState.IDLE
        self.adapter: ProviderAdapter | None = None
        self._sock: ProviderSocket | None = None
        self._converter: FormatConverter | None = None
        self._resume_handle: str | None = None
        self._in_assistant_turn = False
        self._handovers = Handovers(self, clock)
        self._reconnector = Reconnector(self, clock, rng)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._call = BreakerCall(clock, policy.early_failure_window_s)
        self._last_audio_at = 0.0
        self._stamp_audio = False
        self._last_frame_at = 0.0
        self._audio_at_last_frame_s = 0.0
        self._closing = False
        self._fatal_error: ProviderError | None = None
        self._last_chunk_end_s = 0.0
        self.retry_count = 0  # the reconnect attempt in progress (0: the first establishment)
        self.stream_origin_s = 0.0
        self.counters = {"chunks_sent": 0, "replayed": 0, "reconnects": 0, "handovers": 0}
        # per-frame counters: tallies of the labelled children (gateway/metrics.py), looked up once
        self._chunks_sent = metrics.chunks_sent(provider)
        self._chunks_received = metrics.chunks_received(provider)

    # -- public API (used by the call session) ------------------------------------------------
    async def open(self) -> None:
        """First establishment: one breaker call, no retry loop (the session falls over to the next
        provider instead). Raises CircuitOpen or a ProviderError."""
        # every log line of this link names its session and provider: set here, inherited by the
        # link's tasks (created inside this block) and so by its handovers and reconnects
        with log_context(session_id=self.session_id, provider=self.provider):
            ticket = self.breaker.admit()
            self.move(LinkState.CONNECTING)
            try:
                await self.establish(ticket)
            except ProviderRejected as e:
                self._fail()
                await self._reconnector.note_rejected(e, attempts=1)
                raise
            except BaseException:
                self._fail()
                raise
            self._reader = asyncio.create_task(self._run(), name=f"link-{self.provider}-{self.session_id}")

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Live audio, already kept in the call's replay buffer by its one writer (the session):
        sent now when the link is up, else replayed from the buffer when it is up again."""
        pending = self.send_audio_now(chunk)
        if pending is not None:
            await pending

    def send_audio_now(self, chunk: AudioChunk) -> Awaitable[None] | None:
        """As send_audio, without a coroutine when nothing has to wait (the frame path runs in
        aiohttp's parser callback: gateway/ws_direct.py); else returns what to await."""
        self._last_chunk_end_s = chunk.end_s
        if self.state is _UP:
            if self.replay.behind():  # audio kept while a switch away from us failed: it goes first
                return self._send_unsent()
            sock, adapter, conv = self._sock, self.adapter, self._converter
            if sock is None or adapter is None or conv is None:
                return None
            # the same format both sides (μ-law passthrough): no call; else convert (a callable
            # attribute, called through a local: `conv.convert(…)` is not specialised on 3.11)
            data = chunk.data
            if not conv.identity:
                convert = conv.convert
                data = convert(data)
            if data:
                try:
                    drain = sock.send_now(adapter.audio_frame(data))
                except (ConnectionError, RuntimeError, OSError):
                    return None  # stays unsent in the replay buffer; the read loop sees the close
                if drain is not None:
                    return self._sent_after(drain, chunk)
            self._sent(chunk)
        elif log.isEnabledFor(logging.DEBUG):
            log_event(log, logging.DEBUG, "audio.buffering", f"buffering audio for {self.provider}",
                      provider=self.provider, session_id=self.session_id, buffer_size=len(self.replay),
                      is_reconnecting=self.state is LinkState.RECONNECTING)
        return None

    async def _sent_after(self, drain: Awaitable[None], chunk: AudioChunk) -> None:
        """The frame is written; the send buffer was full: the chunk counts as sent once it drained."""
        try:
            await drain
        except (ConnectionError, RuntimeError, OSError):
            return  # stays unsent in the replay buffer; the read loop sees the close
        self._sent(chunk)

    async def _send_unsent(self) -> None:
        for kept in list(self.replay.unsent()):
            if not await self._send_chunk(kept):
                break

    async def send_frames(self, frames: Sequence[Frame]) -> bool:
        """Control frames (commit, text, tool results, cancel, truncate). False when the link is down."""
        sock = self._sock
        if self.state is not _UP or sock is None:
            return False
        try:
            for f in frames:
                await sock.send(f)
        except (ConnectionError, RuntimeError, OSError):
            return False
        return True

    async def close(self, *, graceful: bool = True) -> None:
        """We end the link (call over, or switched away): not a failure."""
        self._closing = True
        self.move(LinkState.CLOSED)
        sock, adapter = self._sock, self.adapter
        if sock is not None:
            if graceful and adapter is not None:
                with contextlib.suppress(Exception):
                    for f in adapter.close_frames():
                        await sock.send(f)
            await sock.close()
        self._call.settle(failed=False)
        current = asyncio.current_task()
        self._handovers.cancel()
        for t in [self._reader, *self._tasks]:
            if t is not None and t is not current and not t.done():
                t.cancel()

    @property
    def resume_handle(self) -> str | None:
        return self._resume_handle

    # -- for the link's helpers (gateway/handover.py, gateway/reconnect.py) ---------------------------
    @property
    def sock(self) -> ProviderSocket | None:
        return self._sock

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def in_assistant_turn(self) -> bool:
        return self._in_assistant_turn

    def forget_resume_handle(self) -> None:
        self._resume_handle = None

    async def tell_client(self, event: ClientEvent) -> None:
        await self._sink.on_client_event(self, event)

    async def lost(self, reason: LinkLostReason, err: GatewayError) -> None:
        await self._sink.on_link_lost(self, reason, err)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- state ---------------------------------------------------------------------------------------
    def move(self, to: LinkState) -> None:
        """The one setter of `state`: checked against LINK_MOVES, logged with the session id, counted."""
        self.state = LINK_MOVES.move(self.state, to, session_id=self.session_id, provider=self.provider)

    def _fail(self) -> None:
        """FAILED, unless we closed the link meanwhile (then it stays CLOSED)."""
        if not self._closing:
            self.move(LinkState.FAILED)

    @property
    def _ended(self) -> bool:
        return self._closing or self.state is LinkState.FAILED

    # -- the read loop -------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while not self._closing:
                err = await self._read_until_closed()
                if self._closing:
                    return
                if err is _SWAPPED:  # a handover replaced the socket: read the new one
                    continue
                if err is None:  # planned close: hand over without backoff
                    if await self._handovers.finish_pending() or await self._handovers.now("planned_close"):
                        continue
                    err = ProviderUnavailable("planned handover failed", provider=self.provider, error_type="network")
                fatal, self._fatal_error = self._fatal_error, None  # the error that made us close it
                if not await self._reconnector.recover(fatal or err):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must not leave the call hanging silently
            log_event(log, logging.ERROR, "link.crashed", f"{self.provider} link crashed")
            self._fail()
            await self._sink.on_link_lost(self, "fatal_error", GatewayError(type(e).__name__))

    async def _read_until_closed(self) -> ProviderError | None:
        sock, adapter, sink = self._sock, self.adapter, self._sink
        assert sock is not None and adapter is not None
        # looked up once per connection, not per frame
        parse, on_audio, received = adapter.parse, sink.on_reply_audio_now, self._chunks_received
        perf_counter, observe, quiet = time.perf_counter, metrics.DOWNLINK_LATENCY.observe, adapter.quiet_after_s

        def on_frame(frame: Frame) -> Awaitable[bool] | None:
            """One provider frame, in aiohttp's parser callback (gateway/ws_direct.py): reply audio
            goes straight to the session; any other event, or a send that must wait, continues in
            `_finish_frame`, in order. True (awaited): a handover replaced the socket."""
            if sock is not self._sock:  # swapped by a handover: drop what the old one says
                return _STOP
            t0 = perf_counter()  # time inside the gateway: parse, convert, send to the client
            if quiet:  # only the quiet watch reads it: no clock call per frame otherwise
                self._last_frame_at = self._clock.now()
                self._audio_at_last_frame_s = self._last_chunk_end_s
            events = parse(frame)
            for i, ev in enumerate(events):
                if type(ev) is not ReplyAudio:
                    return self._finish_frame(sock, events, i, None, t0)
                received.n += 1  # 50 a second: straight to the session, past _handle's match
                pending = on_audio(self, ev)
                if pending is not None:
                    return self._finish_frame(sock, events, i + 1, pending, t0)
                if sock is not self._sock:
                    return _STOP
            observe(perf_counter() - t0)
            return None

        closed = await sock.read(on_frame)
        if sock is not self._sock or closed is None:  # None: a handover replaced the socket
            return _SWAPPED
        return self._on_closed(sock, adapter, closed)

    async def _finish_frame(self, sock: ProviderSocket, events: Sequence[ProviderEvent], start: int,
                            pending: Awaitable[None] | None, t0: float) -> bool:
        """The rest of a provider frame's events, from `start`, after `pending`."""
        if pending is not None:
            await pending
        if sock is not self._sock:
            return True
        for ev in events[start:]:
            if type(ev) is ReplyAudio:
                self._chunks_received.n += 1
                await self._sink.on_provider_event(self, ev)
            else:
                await self._handle(ev)
            if sock is not self._sock:
                return True
        metrics.DOWNLINK_LATENCY.observe(time.perf_counter() - t0)
        return False

    def _on_closed(self, sock: ProviderSocket, adapter: ProviderAdapter, frame: Closed) -> ProviderError | None:
        if sock.closed_by_us:
            return None if self._closing else ProviderUnavailable("closed", provider=self.provider, breaker_failure=False)
        if sock is not self._sock:
            return _SWAPPED
        err = adapter.classify_close(frame.code, frame.reason)
        if err is None or self._handovers.reason is not None:
            self._call.settle(failed=False)
            return None
        self._call.settle(failed=self._call.early() and err.breaker_failure, error_type=err.error_type)
        metrics.ai_provider_errors.labels(self.provider, err.error_type).inc()
        log_event(log, logging.WARNING, "connection.lost", f"{self.provider} link closed unexpectedly",
                  close_code=frame.code,
                  error_type=err.error_type)
        return err

    async def _handle(self, ev: ProviderEvent) -> None:
        match ev:
            case ResumptionHandle(handle=h):
                self._resume_handle = h
                return
            case AudioAcknowledged(until_s=until):
                # only in the stream of the connection the buffer is on: after a switch replayed it
                # to another link, this link's stream times no longer name those chunks
                if self.replay.owner is self:
                    self.replay.ack_until(until)
                return
            case GoAway(time_left_s=left):
                self._handovers.request("goaway", deadline_s=max(0.0, left - self._goaway_margin_s))
                return
            case SessionExpiring():
                self._handovers.request("session_expired", deadline_s=0.0)
                return
            case SetupComplete():
                return
            case TurnStarted():
                self._in_assistant_turn = True
            case TurnCompleted(role="assistant") | TurnInterrupted():
                self._in_assistant_turn = False
                self._handovers.at_turn_boundary()
            case ReplyAudio():
                self._chunks_received.n += 1
            case ProviderFailed(error=err, fatal_for_link=fatal):
                metrics.ai_provider_errors.labels(self.provider, err.error_type).inc()
                log_event(log, logging.ERROR if fatal else logging.WARNING, "provider.error",
                          f"{self.provider} sent an error or a frame we could not read: {err.message}",
                          provider=self.provider, session_id=self.session_id, error_type=err.error_type,
                          code=err.code, fatal=fatal)
                if fatal and self._sock is not None:
                    self._fatal_error = err
                    await self._sock.close(1000)
        await self._sink.on_provider_event(self, ev)

