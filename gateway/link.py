"""The one provider link runner, for every provider (design.md §5, style.md).

A `ProviderLink` bridges one call to one provider. It owns the socket, the read loop, the reconnect
schedule, planned handovers, keepalives and the breaker calls; provider differences come only from
the sans-I/O adapter it is given. Invariants:
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
import enum
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from audio.convert import FormatConverter
from audio.formats import AudioChunk
from gateway import metrics
from gateway.breaker import BreakerTicket, CircuitBreaker
from gateway.clock import Clock
from gateway.errors import CircuitOpen, GatewayError, ProviderError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ClientEvent,
    ConnectionFailed,
    ConnectionReconnected,
    ConnectionReconnecting,
    ConversationItem,
    GoAway,
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
from gateway.logs import log_event
from gateway.provider_socket import (
    Closed,
    ConnectFailed,
    ConnectTimeout,
    HandshakeRefused,
    ProviderConnector,
    ProviderSocket,
)
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from providers.base import Frame, ProviderAdapter

log = logging.getLogger("gateway.link")
# returned by the read loop when a handover replaced the socket it was reading
_SWAPPED = ProviderUnavailable("socket replaced by a handover", breaker_failure=False)


class LinkState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    REPLAYING = "replaying"
    UP = "up"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


class LinkSink(Protocol):
    """What a link tells its call session."""

    async def on_provider_event(self, link: ProviderLink, event: ProviderEvent) -> None: ...

    async def on_client_event(self, link: ProviderLink, event: ClientEvent) -> None: ...

    async def on_link_lost(self, link: ProviderLink, reason: str, error: GatewayError | None) -> None:
        """The link gave up: reason is circuit_open | reconnect_failed | fatal_error."""


class ProviderLink:
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
        self._rng = rng
        self.state = LinkState.IDLE
        self.adapter: ProviderAdapter | None = None
        self._sock: ProviderSocket | None = None
        self._converter: FormatConverter | None = None
        self._resume_handle: str | None = None
        self._in_assistant_turn = False
        self._handover_reason: str | None = None
        self._handover_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._ticket: BreakerTicket | None = None
        self._established_at = 0.0
        self._last_audio_at = 0.0
        self._last_frame_at = 0.0
        self._closing = False
        self._fatal_error: ProviderError | None = None
        self._last_chunk_end_s = 0.0
        self.stream_origin_s = 0.0
        self.counters = {"chunks_sent": 0, "replayed": 0, "reconnects": 0, "handovers": 0}
        # per-frame counters: the labelled children, looked up once (labels() costs ~0.8 µs)
        self._chunks_sent = metrics.ai_provider_audio_chunks_sent.labels(provider)
        self._chunks_received = metrics.ai_provider_audio_chunks_received.labels(provider)

    # -- public API (used by the call session) ------------------------------------------------
    async def open(self) -> None:
        """First establishment: one breaker call, no retry loop (the session falls over to the next
        provider instead). Raises CircuitOpen or a ProviderError."""
        ticket = self.breaker.admit()
        self.state = LinkState.CONNECTING
        try:
            await self._establish(ticket)
        except ProviderRejected as e:
            self.state = LinkState.FAILED
            await self._note_rejected(e, attempts=1)
            raise
        except BaseException:
            self.state = LinkState.FAILED
            raise
        self._reader = asyncio.create_task(self._run(), name=f"link-{self.provider}-{self.session_id}")

    async def send_audio(self, chunk: AudioChunk) -> None:
        self._last_chunk_end_s = chunk.end_s
        if self.replay.append(chunk, link_up=self.state is LinkState.UP):
            metrics.voice_gateway_replay_dropped_chunks.labels(self.provider).inc()
        if self.state is LinkState.UP:
            await self._send_chunk(chunk)

    async def send_frames(self, frames: Sequence[Frame]) -> bool:
        """Control frames (commit, text, tool results, cancel, truncate). False when the link is down."""
        sock = self._sock
        if self.state is not LinkState.UP or sock is None:
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
        self.state = LinkState.CLOSED
        sock, adapter = self._sock, self.adapter
        if sock is not None:
            if graceful and adapter is not None:
                with contextlib.suppress(Exception):
                    for f in adapter.close_frames():
                        await sock.send(f)
            await sock.close()
        self._settle_ticket(failed=False)
        current = asyncio.current_task()
        for t in [self._reader, self._handover_task, *self._tasks]:
            if t is not None and t is not current and not t.done():
                t.cancel()

    @property
    def resume_handle(self) -> str | None:
        return self._resume_handle

    # -- establishment -------------------------------------------------------------------------
    async def _connect(self, ticket: BreakerTicket, *, history: bool
                       ) -> tuple[ProviderAdapter, ProviderSocket, list[ProviderEvent]]:
        """Upgrade + setup acknowledged, under the connect deadline. Settles `ticket` on failure.
        Returns the adapter, the socket and events parsed after the setup acknowledgement."""
        adapter = self._new_adapter()
        started = self._clock.now()
        sock: ProviderSocket | None = None
        try:
            async with asyncio.timeout(self.policy.connect_timeout_s):
                sock = await self._connector.connect(adapter.connect_request(),
                                                     timeout_s=self.policy.connect_timeout_s)
                resume = self._resume_handle
                items = self._history() if history or resume is None else ()
                for f in adapter.open_frames(history=items, resume_handle=resume):
                    await sock.send(f)
                after: list[ProviderEvent] = []
                if not adapter.ready_on_upgrade:
                    after = await self._await_setup(adapter, sock)
                for f in adapter.ready_frames(history=items, resumed=resume is not None):
                    await sock.send(f)
        except HandshakeRefused as e:
            err: ProviderError = adapter.classify_handshake(e.status, e.body)
        except (ConnectTimeout, TimeoutError):
            err = ProviderUnavailable("connect or setup timed out", provider=self.provider, error_type="timeout")
        except ConnectFailed as e:
            err = ProviderUnavailable(f"connection failed ({e})", provider=self.provider, error_type="network")
        except ProviderError as e:
            err = e
        except (ConnectionError, OSError, RuntimeError) as e:
            err = ProviderUnavailable(f"connection lost during setup ({type(e).__name__})",
                                      provider=self.provider, error_type="network")
        else:
            elapsed = self._clock.now() - started
            metrics.ai_provider_requests.labels(self.provider, "connect", "success").inc()
            metrics.ai_provider_latency_seconds.labels(self.provider, "connect").observe(elapsed)
            metrics.voice_gateway_provider_connect_seconds.labels(self.provider).observe(elapsed)
            log_event(log, logging.INFO, "connection.established", f"{self.provider} link established",
                      provider=self.provider, session_id=self.session_id, connect_s=round(elapsed, 4))
            return adapter, sock, after
        if sock is not None:
            await sock.close()
        err.provider = self.provider
        self._record_failure(err)
        if err.breaker_failure:
            ticket.failure(err.error_type)
        else:
            ticket.cancel()
        raise err

    async def _await_setup(self, adapter: ProviderAdapter, sock: ProviderSocket) -> list[ProviderEvent]:
        while True:
            frame = await sock.receive()
            if isinstance(frame, Closed):
                err = adapter.classify_close(frame.code, frame.reason) or ProviderUnavailable(
                    "closed during setup", error_type="network")
                raise err
            events = adapter.parse(frame)
            for i, ev in enumerate(events):
                if isinstance(ev, SetupComplete):
                    return events[i + 1:]
                if isinstance(ev, ProviderFailed) and ev.fatal_for_link:
                    raise ev.error
                if isinstance(ev, ProviderFailed) and isinstance(ev.error, ProviderRejected):
                    raise ev.error

    async def _establish(self, ticket: BreakerTicket, *, history: bool = True) -> int:
        """Connect, then make the new connection current and replay. Returns chunks replayed."""
        adapter, sock, after = await self._connect(ticket, history=history)
        return await self._activate(adapter, sock, after, ticket)

    async def _activate(self, adapter: ProviderAdapter, sock: ProviderSocket, after: list[ProviderEvent],
                        ticket: BreakerTicket) -> int:
        self._settle_ticket(failed=False)  # the previous connection's call, if still open
        self._ticket, self._established_at = ticket, self._clock.now()
        self.adapter, self._sock = adapter, sock
        # chunks in the replay buffer are in the call's input format; convert per connection
        self._converter = FormatConverter(adapter.config.input_format, adapter.input_format)
        self._in_assistant_turn = False
        self._spawn(self._settle_after_window(ticket))
        if adapter.keepalive_idle_s:
            self._spawn(self._keepalive(sock, adapter))
        if adapter.quiet_after_s:
            self._spawn(self._quiet_watch(sock, adapter))
        if self._rotate_after_s:
            self._spawn(self._rotate_later(sock))
        self.state = LinkState.REPLAYING
        replayed = await self._replay()
        self.state = LinkState.UP
        for ev in after:
            await self._handle(ev)
        return replayed

    async def _replay(self) -> int:
        """Send everything kept, oldest first, then whatever arrived meanwhile; then go live."""
        self.replay.new_connection()
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
                      provider=self.provider, session_id=self.session_id, replayed_count=n,
                      total_count=self.counters["replayed"])
        return n

    def _first_unsent(self) -> AudioChunk | None:
        return next(self.replay.unsent(), None)

    async def _send_chunk(self, chunk: AudioChunk) -> bool:
        sock, adapter, conv = self._sock, self.adapter, self._converter
        if sock is None or adapter is None or conv is None:
            return False
        data = conv.convert(chunk.data)
        try:
            if data:
                await sock.send(adapter.audio_frame(data))
        except (ConnectionError, RuntimeError, OSError):
            return False  # stays unsent in the replay buffer; the read loop sees the close
        self.replay.mark_sent(chunk)
        if adapter.keepalive_idle_s:  # only the keepalive timer reads it: no clock call per frame otherwise
            self._last_audio_at = self._clock.now()
        self.counters["chunks_sent"] += 1
        self._chunks_sent.inc()
        return True

    # -- breaker bookkeeping ------------------------------------------------------------------
    async def _settle_after_window(self, ticket: BreakerTicket) -> None:
        await self._clock.sleep(self.policy.early_failure_window_s)
        if self._ticket is ticket:
            self._settle_ticket(failed=False)

    def _settle_ticket(self, *, failed: bool, error_type: str = "server") -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is None:
            return
        if failed:
            ticket.failure(error_type)
        else:
            ticket.success()

    def _record_failure(self, err: ProviderError) -> None:
        metrics.ai_provider_errors.labels(self.provider, err.error_type).inc()
        metrics.ai_provider_requests.labels(self.provider, "connect", "failure").inc()
        level = logging.ERROR if isinstance(err, ProviderRejected) else logging.WARNING
        log_event(log, level, "connection.failed", f"{self.provider} link failed: {err.message}",
                  provider=self.provider, session_id=self.session_id, error_type=err.error_type,
                  retryable=err.retryable)

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
                    if self._handover_task is not None:
                        await asyncio.shield(self._handover_task)
                        if self._sock is not None and not self._sock.is_closed:
                            continue
                    if await self._handover_now("planned_close"):
                        continue
                    err = ProviderUnavailable("planned handover failed", error_type="network")
                if not await self._recover(err):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must not leave the call hanging silently
            log_event(log, logging.ERROR, "link.crashed", f"{self.provider} link crashed",
                      provider=self.provider, session_id=self.session_id)
            self.state = LinkState.FAILED
            await self._sink.on_link_lost(self, "fatal_error", GatewayError(type(e).__name__))

    async def _read_until_closed(self) -> ProviderError | None:
        sock, adapter = self._sock, self.adapter
        assert sock is not None and adapter is not None
        while True:
            frame = await sock.receive()
            if sock is not self._sock:  # swapped by a handover: drop what the old one says
                return _SWAPPED
            if isinstance(frame, Closed):
                return self._on_closed(sock, adapter, frame)
            t0 = time.perf_counter()  # time inside the gateway: parse, convert, send to the client
            if adapter.quiet_after_s:  # only the quiet watch reads it: no clock call per frame otherwise
                self._last_frame_at = self._clock.now()
            for ev in adapter.parse(frame):
                await self._handle(ev)
                if sock is not self._sock:
                    return _SWAPPED
            metrics.DOWNLINK_LATENCY.observe(time.perf_counter() - t0)

    def _on_closed(self, sock: ProviderSocket, adapter: ProviderAdapter, frame: Closed) -> ProviderError | None:
        if sock.closed_by_us:
            return None if self._closing else ProviderUnavailable("closed", breaker_failure=False)
        if sock is not self._sock:
            return _SWAPPED
        err = adapter.classify_close(frame.code, frame.reason)
        if err is None or self._handover_reason is not None:
            self._settle_ticket(failed=False)
            return None
        err.provider = self.provider
        early = self._clock.now() - self._established_at < self.policy.early_failure_window_s
        self._settle_ticket(failed=early and err.breaker_failure, error_type=err.error_type)
        metrics.ai_provider_errors.labels(self.provider, err.error_type).inc()
        log_event(log, logging.WARNING, "connection.lost", f"{self.provider} link closed unexpectedly",
                  provider=self.provider, session_id=self.session_id, close_code=frame.code,
                  error_type=err.error_type)
        return err

    async def _handle(self, ev: ProviderEvent) -> None:
        match ev:
            case ResumptionHandle(handle=h):
                self._resume_handle = h
                return
            case AudioAcknowledged(until_s=until):
                self.replay.ack_until(until)
                return
            case GoAway(time_left_s=left):
                self._request_handover("goaway", deadline_s=max(0.0, left - self._goaway_margin_s))
                return
            case SessionExpiring():
                self._request_handover("session_expired", deadline_s=0.0)
                return
            case SetupComplete():
                return
            case TurnStarted():
                self._in_assistant_turn = True
            case TurnCompleted(role="assistant") | TurnInterrupted():
                self._in_assistant_turn = False
                if self._handover_reason is not None and self._handover_task is None:
                    self._handover_task = asyncio.create_task(self._do_handover())
            case ReplyAudio():
                self._chunks_received.inc()
            case ProviderFailed(error=err, fatal_for_link=fatal):
                metrics.ai_provider_errors.labels(self.provider, err.error_type).inc()
                if fatal and self._sock is not None:
                    self._fatal_error = err
                    await self._sock.close(1000)
        await self._sink.on_provider_event(self, ev)

    # -- planned handovers ----------------------------------------------------------------------
    def _request_handover(self, reason: str, *, deadline_s: float) -> None:
        if self._handover_reason is not None:
            return
        self._handover_reason = reason
        metrics.voice_gateway_planned_handovers.labels(self.provider, reason).inc()
        log_event(log, logging.INFO, "handover.requested", f"planned handover ({reason})",
                  provider=self.provider, session_id=self.session_id, reason=reason, deadline_s=deadline_s)
        if not self._in_assistant_turn or deadline_s <= 0:
            self._handover_task = asyncio.create_task(self._do_handover())
        else:  # wait for a turn boundary, but not past the deadline
            self._spawn(self._handover_at_deadline(deadline_s))

    async def _handover_at_deadline(self, deadline_s: float) -> None:
        await self._clock.sleep(deadline_s)
        if self._handover_reason is not None and self._handover_task is None:
            self._handover_task = asyncio.create_task(self._do_handover())

    async def _handover_now(self, reason: str) -> bool:
        if self._handover_reason is None:
            self._handover_reason = reason
        self._handover_task = asyncio.create_task(self._do_handover())
        await asyncio.shield(self._handover_task)
        return self._sock is not None and not self._sock.is_closed and self.state is LinkState.UP

    async def _do_handover(self) -> None:
        """Make before break: the old connection keeps carrying live audio until the new one is
        set up; then the swap, the replay of unacknowledged audio, and the old one closes."""
        reason = self._handover_reason or "planned"
        old = self._sock
        try:
            ticket = self.breaker.admit()
            adapter, sock, after = await self._connect(ticket, history=True)
        except (CircuitOpen, ProviderError) as e:
            log_event(log, logging.WARNING, "handover.failed", f"planned handover failed: {e}",
                      provider=self.provider, session_id=self.session_id, reason=reason)
            self._handover_reason = None
            self._handover_task = None
            return
        self._handover_reason = None
        self._handover_task = None
        self.counters["handovers"] += 1
        replayed = await self._activate(adapter, sock, after, ticket)
        log_event(log, logging.INFO, "handover.completed", f"planned handover done ({reason})",
                  provider=self.provider, session_id=self.session_id, reason=reason, replayed_count=replayed)
        if old is not None:
            await old.close()

    async def _rotate_later(self, sock: ProviderSocket) -> None:
        assert self._rotate_after_s is not None
        await self._clock.sleep(self._rotate_after_s)
        if sock is self._sock and not self._closing:
            self._request_handover("rotation", deadline_s=60.0)

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
        the adapter finishes whatever turn was open."""
        quiet = adapter.quiet_after_s or 1.0
        self._last_frame_at = self._clock.now()
        while sock is self._sock and not self._closing:
            wait = self._last_frame_at + quiet - self._clock.now()
            if wait > 0:
                await self._clock.sleep(wait)
                continue
            self._last_frame_at = self._clock.now()
            for ev in adapter.quiet_events():
                await self._handle(ev)

    # -- reconnect ------------------------------------------------------------------------------
    async def _recover(self, err: ProviderError) -> bool:
        """Reconnect on the schedule. True when the link is up again."""
        fatal = self._fatal_error
        if fatal is not None:
            err, self._fatal_error = fatal, None
        if not err.retryable:
            return await self._give_up("fatal_error", err, attempts=0)
        self.state = LinkState.RECONNECTING
        metrics.voice_gateway_sessions_reconnecting.labels(self.provider).inc()
        try:
            return await self._reconnect_loop(err)
        finally:
            metrics.voice_gateway_sessions_reconnecting.labels(self.provider).dec()

    async def _reconnect_loop(self, cause: ProviderError) -> bool:
        down_since = self._clock.now()
        dropped_before = self.replay.dropped_total
        max_attempts = self.policy.max_attempts
        last: GatewayError = cause
        for attempt in range(1, max_attempts + 1):
            if not self.breaker.would_admit():  # design §5: OPEN → switch now, don't sleep first
                return await self._give_up("circuit_open", CircuitOpen(
                    f"Circuit breaker '{self.breaker.name}' is OPEN.",
                    retry_after_s=self.breaker.retry_after_s(), breaker=self.breaker.name), attempt - 1)
            delay = self.policy.delay_s(attempt, self._rng)
            buffered = len(self.replay)
            await self._sink.on_client_event(self, ConnectionReconnecting(
                provider=self.provider, attempt=attempt, max_attempts=max_attempts,
                backoff_delay=delay, buffered_audio_chunks=buffered))
            log_event(log, logging.WARNING, "reconnect.attempt",
                      f"reconnecting to {self.provider} (attempt {attempt}/{max_attempts}) in {delay:g}s",
                      provider=self.provider, session_id=self.session_id, attempt=attempt,
                      max_attempts=max_attempts, backoff_delay=delay, buffered_count=buffered)
            await self._clock.sleep(delay)
            if self._closing:
                return False
            try:
                ticket = self.breaker.admit()
            except CircuitOpen as e:
                return await self._give_up("circuit_open", e, attempt - 1)
            self.counters["reconnects"] += 1
            try:
                replayed = await self._establish(ticket, history=self._resume_handle is None)
            except ProviderRejected as e:
                metrics.ai_provider_reconnections.labels(self.provider, "false").inc()
                return await self._give_up("fatal_error", e, attempt)
            except ProviderError as e:
                metrics.ai_provider_reconnections.labels(self.provider, "false").inc()
                if e.fields.get("stale_handle"):
                    self._resume_handle = None
                last = e
                log_event(log, logging.WARNING, "reconnect.failed",
                          f"reconnect attempt {attempt}/{max_attempts} to {self.provider} failed",
                          provider=self.provider, session_id=self.session_id, attempt=attempt,
                          max_attempts=max_attempts, error_type=e.error_type)
                continue
            metrics.ai_provider_reconnections.labels(self.provider, "true").inc()
            dropped = self.replay.dropped_total - dropped_before
            duration = self._clock.now() - down_since
            await self._sink.on_client_event(self, ConnectionReconnected(
                provider=self.provider, attempts=attempt, duration=round(duration, 3),
                replayed_audio_chunks=replayed, dropped_audio_chunks=dropped))
            log_event(log, logging.INFO, "reconnect.succeeded",
                      f"reconnected to {self.provider} after {attempt} attempt(s)",
                      provider=self.provider, session_id=self.session_id, attempt=attempt,
                      max_attempts=max_attempts, replayed_count=replayed, dropped_count=dropped,
                      total_count=self.counters["replayed"], duration_s=round(duration, 3))
            return True
        return await self._give_up("reconnect_failed", last, max_attempts)

    async def _give_up(self, reason: str, err: GatewayError, attempts: int) -> bool:
        self.state = LinkState.FAILED
        if isinstance(err, ProviderRejected):
            await self._note_rejected(err, attempts=attempts)
        else:
            # the client hears the class of failure, not the provider's own words (design §4)
            await self._sink.on_client_event(self, ConnectionFailed(
                provider=self.provider, reason=f"{reason}: {err.error_type}", total_attempts=attempts))
        await self._sink.on_link_lost(self, reason, err)
        return False

    async def _note_rejected(self, err: ProviderRejected, *, attempts: int) -> None:
        """Auth/config rejection: fatal for the link, no retry loop (design.md §5). Auth forces the
        breaker OPEN so no new call tries the bad key until an operator resets it."""
        if err.error_type == "auth":
            self.breaker.force_open("auth")
            log_event(log, logging.ERROR, "provider.auth_failed",
                      f"{self.provider} rejected the configured credentials: check the "
                      f"{self.provider.upper()}_API_KEY setting; no retry until it is fixed and the circuit reset",
                      provider=self.provider, session_id=self.session_id)
            reason = f"auth: {self.provider} rejected the API key"
        else:
            log_event(log, logging.ERROR, "provider.config_rejected",
                      f"{self.provider} rejected the session configuration: {err.message}",
                      provider=self.provider, session_id=self.session_id)
            reason = f"config: {self.provider} rejected the session configuration"
        await self._sink.on_client_event(self, ConnectionFailed(
            provider=self.provider, reason=reason, total_attempts=attempts))

    def _spawn(self, coro) -> None:  # noqa: ANN001
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
