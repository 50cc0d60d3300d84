"""Planned handovers of one provider link: make before break (docs/architecture.md).

A provider announces the end of a connection (Gemini goAway, OpenAI session_expired) or reaches its
session cap (rotation). The link then opens a second connection while the first keeps carrying live
audio, swaps to it at an assistant turn boundary (or at the deadline), replays what the provider has
not acknowledged, and closes the old one. A handover is never a failure and never waits on the
backoff schedule; one that fails to connect leaves the link on its current connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from gateway import metrics
from gateway.breaker import BreakerTicket, CircuitBreaker
from gateway.clock import Clock
from gateway.errors import CircuitOpen, ProviderError, ProviderUnavailable
from gateway.events import ProviderEvent
from gateway.logs import log_event
from gateway.provider_socket import ProviderSocket
from gateway.states import LinkState
from providers.base import ProviderAdapter

log = logging.getLogger("gateway.link")
ROTATION_DEADLINE_S = 60.0  # a rotation waits this long at most for the assistant to finish


class HandoverLink(Protocol):
    """What handovers need of their link (gateway/link.py ProviderLink)."""

    provider: str
    session_id: str
    breaker: CircuitBreaker
    counters: dict[str, int]
    state: LinkState

    @property
    def sock(self) -> ProviderSocket | None: ...

    @property
    def closing(self) -> bool: ...

    @property
    def in_assistant_turn(self) -> bool: ...

    async def connect(self, ticket: BreakerTicket, *, history: bool
                      ) -> tuple[ProviderAdapter, ProviderSocket, list[ProviderEvent]]: ...

    async def activate(self, adapter: ProviderAdapter, sock: ProviderSocket, after: list[ProviderEvent],
                       ticket: BreakerTicket) -> int: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


class Handovers:
    """At most one planned handover at a time for one link."""

    def __init__(self, link: HandoverLink, clock: Clock) -> None:
        self._link = link
        self._clock = clock
        self.reason: str | None = None  # a handover is requested (and not finished)
        self.task: asyncio.Task[None] | None = None  # ... and running

    def request(self, reason: str, *, deadline_s: float) -> None:
        """Hand over now when no assistant turn is playing (or the deadline is 0), else at the turn's
        end, but not later than `deadline_s`."""
        if self.reason is not None:
            return
        link = self._link
        self.reason = reason
        metrics.voice_gateway_planned_handovers.labels(link.provider, reason).inc()
        log_event(log, logging.INFO, "handover.requested", f"planned handover ({reason})",
                  reason=reason, deadline_s=deadline_s)
        if not link.in_assistant_turn or deadline_s <= 0:
            self._start()
        else:
            link.spawn(self._at_deadline(deadline_s))

    def at_turn_boundary(self) -> None:
        """An assistant turn ended: a waiting handover goes now."""
        if self.reason is not None and self.task is None:
            self._start()

    async def now(self, reason: str) -> bool:
        """The provider closed the connection as planned: hand over at once. True when the link is
        up on a new connection."""
        if self.reason is None:
            self.reason = reason
        self._start()
        assert self.task is not None
        await asyncio.shield(self.task)
        sock = self._link.sock
        return sock is not None and not sock.is_closed and self._link.state is LinkState.UP

    async def finish_pending(self) -> bool:
        """Wait for a running handover. True when there was one and the link is on a live socket."""
        if self.task is None:
            return False
        await asyncio.shield(self.task)
        sock = self._link.sock
        return sock is not None and not sock.is_closed

    async def rotate_later(self, sock: ProviderSocket, after_s: float) -> None:
        """Before the provider's session cap: rotate the connection `sock` if it is still current."""
        await self._clock.sleep(after_s)
        if sock is self._link.sock and not self._link.closing:
            self.request("rotation", deadline_s=ROTATION_DEADLINE_S)

    def cancel(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task() and not self.task.done():
            self.task.cancel()

    def _start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _at_deadline(self, deadline_s: float) -> None:
        await self._clock.sleep(deadline_s)
        if self.reason is not None and self.task is None:
            self._start()

    async def _run(self) -> None:
        """Make before break: the old connection keeps carrying live audio until the new one is
        set up; then the swap, the replay of unacknowledged audio, and the old one closes."""
        link = self._link
        reason = self.reason or "planned"
        old = link.sock
        try:
            ticket = link.breaker.admit()
            adapter, sock, after = await link.connect(ticket, history=True)
        except (CircuitOpen, ProviderError) as e:
            log_event(log, logging.WARNING, "handover.failed", f"planned handover failed: {e}",
                      reason=reason)
            self.reason = self.task = None
            return
        self.reason = self.task = None
        link.counters["handovers"] += 1
        try:
            replayed = await link.activate(adapter, sock, after, ticket)
        except ProviderUnavailable:
            return  # the link was closed or gave up meanwhile; the new connection is closed too
        log_event(log, logging.INFO, "handover.completed", f"planned handover done ({reason})",
                  reason=reason, replayed_count=replayed)
        if old is not None:
            await old.close()
