"""Opening one provider connection, and settling the breaker call it was (docs/architecture.md).

`open_connection` is one establishment: the upgrade, the adapter's opening frames and, unless the
protocol has none, the setup acknowledgement, all under the connect deadline. Every failure becomes
a ProviderError naming the provider, is counted and logged once, and resolves the breaker ticket
(a failure, or a cancel for what is not the provider's fault). `BreakerCall` settles a successful
establishment once the connection has lived the early-failure window: an abnormal close sooner is
that call failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from gateway import metrics
from gateway.breaker import BreakerTicket
from gateway.clock import Clock
from gateway.errors import ProviderError, ProviderRejected, ProviderUnavailable
from gateway.events import ConversationItem, ProviderEvent, ProviderFailed, SetupComplete
from gateway.logs import log_event
from gateway.provider_socket import (
    Closed,
    ConnectFailed,
    ConnectTimeout,
    HandshakeRefused,
    ProviderConnector,
    ProviderSocket,
)
from providers.base import ProviderAdapter

log = logging.getLogger("gateway.link")


async def open_connection(adapter: ProviderAdapter, *, connector: ProviderConnector, ticket: BreakerTicket,
                          timeout_s: float, clock: Clock, resume_handle: str | None,
                          history: Sequence[ConversationItem], retry_count: int = 0
                          ) -> tuple[ProviderSocket, list[ProviderEvent]]:
    """Upgrade + setup acknowledged, under the deadline. Settles `ticket` on failure (and raises
    the ProviderError). Returns the socket and the events parsed after the acknowledgement.
    `retry_count`: the reconnect attempt this is (0: a first establishment), for the log lines.
    The socket pings after `adapter.stall_ping_after_s` without anything from the provider and is
    dead (1006) without a pong within half as long again: stall detection (docs/audit.md)."""
    provider = adapter.name
    started = clock.now()
    sock: ProviderSocket | None = None
    try:
        async with asyncio.timeout(timeout_s):
            sock = await connector.connect(adapter.connect_request(), timeout_s=timeout_s,
                                           heartbeat_s=adapter.stall_ping_after_s)
            for f in adapter.open_frames(history=history, resume_handle=resume_handle):
                await sock.send(f)
            after: list[ProviderEvent] = []
            if not adapter.ready_on_upgrade:
                after = await _await_setup(adapter, sock)
            for f in adapter.ready_frames(history=history, resumed=resume_handle is not None):
                await sock.send(f)
    except HandshakeRefused as e:
        err: ProviderError = adapter.classify_handshake(e.status, e.body)
        if e.retry_after_s is not None:
            err.retry_after_s = e.retry_after_s  # the next attempt waits at least this long
        if e.status == 429:
            _rate_limited(provider, e.retry_after_s, retry_count)
    except (ConnectTimeout, TimeoutError):
        err = ProviderUnavailable("connect or setup timed out", provider=provider, error_type="timeout")
    except ConnectFailed as e:
        err = ProviderUnavailable(f"connection failed ({e})", provider=provider, error_type="network")
    except ProviderError as e:
        err = e
    except (ConnectionError, OSError, RuntimeError) as e:
        err = ProviderUnavailable(f"connection lost during setup ({type(e).__name__})",
                                  provider=provider, error_type="network")
    else:
        elapsed = clock.now() - started
        metrics.ai_provider_requests.labels(provider, "connect", "success").inc()
        metrics.ai_provider_latency_seconds.labels(provider, "connect").observe(elapsed)
        metrics.voice_gateway_provider_connect_seconds.labels(provider).observe(elapsed)
        log_event(log, logging.INFO, "connection.established", f"{provider} link established",
                  connect_s=round(elapsed, 4), model=adapter.model_name, retry_count=retry_count)
        return sock, after
    if sock is not None:
        await sock.close()
    _record_failure(provider, err, retry_count)
    if err.breaker_failure:
        ticket.failure(err.error_type)
    else:
        ticket.cancel()
    raise err


async def _await_setup(adapter: ProviderAdapter, sock: ProviderSocket) -> list[ProviderEvent]:
    while True:
        frame = await sock.receive()
        if isinstance(frame, Closed):
            raise adapter.classify_close(frame.code, frame.reason) or ProviderUnavailable(
                "closed during setup", provider=adapter.name, error_type="network")
        events = adapter.parse(frame)
        for i, ev in enumerate(events):
            if isinstance(ev, SetupComplete):
                return events[i + 1:]
            if isinstance(ev, ProviderFailed) and (ev.fatal_for_link or isinstance(ev.error, ProviderRejected)):
                raise ev.error


def _rate_limited(provider: str, retry_after_s: float | None, retry_count: int) -> None:
    """The audit's "Rate limit hit" line: WARNING, with when the provider lets us back in (a wall-clock
    time for people reading logs; the retry itself waits on the injected clock)."""
    wait = retry_after_s if retry_after_s is not None else 0.0
    reset = datetime.fromtimestamp(time.time() + wait, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    log_event(log, logging.WARNING, "rate_limit.hit", f"{provider} rate limit hit; retry after {wait:g}s",
              reset_time=reset, retry_after_s=wait, retry_count=retry_count)


def _record_failure(provider: str, err: ProviderError, retry_count: int) -> None:
    metrics.ai_provider_errors.labels(provider, err.error_type).inc()
    metrics.ai_provider_requests.labels(provider, "connect", "failure").inc()
    # A rejection (bad key, bad config) gets its one ERROR line from note_rejected (reconnect.py),
    # which says what to fix; this line records the attempt.
    log_event(log, logging.WARNING, "connection.failed", f"{provider} link failed: {err.message}",
              error_type=err.error_type, retryable=err.retryable, retry_count=retry_count)


class BreakerCall:
    """The breaker call of the current connection, open until settled (once)."""

    def __init__(self, clock: Clock, early_failure_window_s: float) -> None:
        self._clock = clock
        self._window_s = early_failure_window_s
        self._ticket: BreakerTicket | None = None
        self._started_at = 0.0

    def begin(self, ticket: BreakerTicket) -> None:
        """A new connection is current: the previous one's call (if still open) succeeded."""
        self.settle(failed=False)
        self._ticket, self._started_at = ticket, self._clock.now()

    def early(self) -> bool:
        """The current connection has not yet lived the early-failure window."""
        return self._clock.now() - self._started_at < self._window_s

    async def settle_after_window(self, ticket: BreakerTicket) -> None:
        await self._clock.sleep(self._window_s)
        if self._ticket is ticket:
            self.settle(failed=False)

    def settle(self, *, failed: bool, error_type: str = "server") -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is None:
            return
        if failed:
            ticket.failure(error_type)
        else:
            ticket.success()
