"""Failover: which provider a call is on, and moving it to another (docs/architecture.md).

`Failover` owns the call's current link and the session state (STARTING, ACTIVE, SWITCHING,
WAITING, ENDED; gateway/states.py). It opens links through a factory and asks the breakers, so it
is tested without sockets (tests/test_failover.py). Invariants:
- a link is opened only after its provider's breaker admits the call (`link.open()` asks it);
  candidates are tried in chain order: the requested provider, then the call's fallback list,
  each once, only providers with an endpoint;
- the current link changes before the new one is opened, so live audio buffers for it; a failed
  candidate puts the previous link back;
- a call with no usable provider stays open in WAITING and resumes on the first breaker of its
  chain that admits a call (open timeout on the injected clock, operator reset): no polling;
- the call counts in `ai_provider_active_sessions` for exactly one provider, or none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

from gateway import metrics
from gateway.breaker import CircuitBreaker
from gateway.clock import Clock
from gateway.errors import CircuitOpen, ProviderError
from gateway.events import LinkLostReason, SwitchReason
from gateway.logs import log_event
from gateway.session_config import SessionConfig
from gateway.states import SESSION_MOVES, LinkState, SessionState
from providers.registry import resolve

log = logging.getLogger("gateway.failover")
WAIT_RETRY_S = 0.05  # after an admitted trial failed while waiting: don't spin on the breaker


class Link(Protocol):
    """What failover needs of a provider link (gateway/link.py ProviderLink)."""

    provider: str
    state: LinkState

    async def open(self) -> None: ...

    async def close(self, *, graceful: bool = True) -> None: ...


LinkT = TypeVar("LinkT", bound=Link)
LinkT_contra = TypeVar("LinkT_contra", bound=Link, contravariant=True)


class FailoverListener(Protocol[LinkT_contra]):
    """What failover tells its call session."""

    async def switching_to(self, provider: str) -> None:
        """A new link is open and about to become the call's: settle what the old one left."""

    async def switched(self, old_provider: str, link: LinkT_contra, reason: SwitchReason, elapsed_s: float) -> None:
        """The call is on `link` now (count, log, tell the client)."""

    async def no_provider(self, retry_after_s: float, reason: SwitchReason) -> None:
        """No provider of the chain admits a call; the call waits (tell the client)."""


def failover_chain(config: SessionConfig, available: Collection[str], *, first: str | None = None,
                   exclude: Sequence[str] = ()) -> list[str]:
    """Candidates in order: `first` (unless "auto"), then the fallback list; each once, only
    providers with an endpoint, none of `exclude`."""
    order = ([first] if first and first != "auto" else []) + list(config.fallback)
    seen: list[str] = []
    for p in (resolve(name, config.provider_options, available) for name in order):
        if p not in seen and p not in exclude and p in available:
            seen.append(p)
    return seen


class Failover(Generic[LinkT]):
    def __init__(self, *, session_id: str, config: SessionConfig, available: Collection[str],
                 breaker: Callable[[str], CircuitBreaker], new_link: Callable[[str], LinkT], clock: Clock,
                 listener: FailoverListener[LinkT], return_to_primary_after_s: float | None = None,
                 retry_delay_s: Callable[[int], float] | None = None) -> None:
        self.session_id = session_id
        self.config = config
        self._available = available
        self._breaker = breaker
        self._new_link = new_link
        self._clock = clock
        self._listener = listener
        self._return_after_s = return_to_primary_after_s
        # the wait before the n-th retry (1-based) while no provider is usable: the reconnect schedule
        self._retry_delay_s = retry_delay_s or (lambda n: WAIT_RETRY_S)
        self.state = SessionState.STARTING
        self.link: LinkT | None = None
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counted: str | None = None
        # why the last switch() moved nothing, for the operator API's 409: call_ended, circuit_open,
        # or the class of the target's failure (timeout, network, server, rate_limit, auth, ...)
        self.last_refusal: str | None = None

    @property
    def ended(self) -> bool:
        return self.state is SessionState.ENDED

    def _move(self, to: SessionState) -> None:
        """The one setter of the session state: checked against SESSION_MOVES, logged, counted."""
        self.state = SESSION_MOVES.move(self.state, to, session_id=self.session_id)

    def chain(self, *, first: str | None = None, exclude: Sequence[str] = ()) -> list[str]:
        return failover_chain(self.config, self._available, first=first, exclude=exclude)

    # -- start and end -------------------------------------------------------------------------------
    async def start(self) -> LinkT | None:
        """Open the first usable provider of the call; None (and WAITING) when none admits a call."""
        link = await self._open_first_usable(self.chain(first=self.config.provider))
        if self.ended:
            return None
        self._move(SessionState.ACTIVE if link else SessionState.WAITING)
        return link

    async def wait_for_provider(self, reason: SwitchReason) -> None:
        """After start() found nothing: tell the listener and wait (a resumption is a `reason` switch)."""
        await self._no_provider(reason)

    async def end(self) -> None:
        """ENDED: stop waiting, close the link, count the call for no provider."""
        if self.ended:
            return
        self._move(SessionState.ENDED)
        current = asyncio.current_task()
        for t in [self._waiter, *self._tasks]:
            if t is not None and not t.done() and t is not current:
                t.cancel()
        self._count_active(None)
        if self.link is not None:
            await self.link.close()

    # -- switching -------------------------------------------------------------------------------------
    async def switch(self, target: str | None, reason: SwitchReason) -> bool:
        """Move the call to `target` (or the first usable provider of the chain, skipping the current
        one). False when nothing could be opened (the call stays where it was)."""
        async with self._lock:
            self.last_refusal = None
            if self.ended:
                self.last_refusal = "call_ended"
                return False
            trigger_at = self._clock.now()
            old = self.link
            old_provider = old.provider if old is not None else "none"
            # a named target is opened only if this deployment has an endpoint for it
            chain = [p for p in [resolve(target, self.config.provider_options, self._available)]
                     if p in self._available] if target else self.chain(exclude=[old_provider])
            self._move(SessionState.SWITCHING)
            link = await self._open_first_usable(chain)
            if self.ended:
                self.last_refusal = "call_ended"
                return False
            if link is None:
                self._move(SessionState.ACTIVE if old is not None and old.state is LinkState.UP else
                           SessionState.WAITING)
                return False
            if old is not None and old is not link:
                self._spawn(old.close())
            await self._switched(old_provider, link, reason, trigger_at)
            return True

    async def link_lost(self, link: LinkT, reason: LinkLostReason) -> None:
        """The current link gave up (circuit_open | reconnect_failed | fatal_error): switch, or wait."""
        if link is not self.link or self.ended:
            return
        self._spawn(self._failover(link, reason))

    def turn_completed(self) -> None:
        """An assistant turn ended: the moment to go back to the primary, if the policy says so."""
        after = self._return_after_s
        primary = resolve(self.config.provider if self.config.provider != "auto" else self.config.fallback[0],
                          self.config.provider_options, self._available)
        if after is None or self.link is None or self.link.provider == primary:
            return
        b = self._breaker(primary)
        if b.closed_since is not None and self._clock.now() - b.closed_since >= after and b.would_admit():
            self._spawn(self.switch(primary, "return_to_primary"))

    async def _failover(self, link: LinkT, reason: LinkLostReason) -> None:
        if await self.switch(None, reason):
            await link.close(graceful=False)
            return
        if self.link is link:
            self._count_active(None)
            await link.close(graceful=False)
            await self._no_provider(reason)

    async def _open_first_usable(self, chain: Sequence[str]) -> LinkT | None:
        for provider in chain:
            if self.ended:
                return None
            # link.open() asks the breaker (admit): a refusal is counted as `rejected` and logged
            link = self._new_link(provider)
            previous, self.link = self.link, link  # live audio now buffers for the new link
            try:
                await link.open()
            except (CircuitOpen, ProviderError) as e:
                self.last_refusal = "circuit_open" if isinstance(e, CircuitOpen) else e.error_type
                self.link = previous
                log_event(log, logging.WARNING, "switch.candidate_failed", f"could not open {provider}: {e}",
                          session_id=self.session_id, provider=provider)
                continue
            self._count_active(provider)
            return link
        return None

    async def _switched(self, old_provider: str, link: LinkT, reason: SwitchReason, trigger_at: float) -> None:
        await self._listener.switching_to(link.provider)
        if self.ended:
            return
        self._move(SessionState.ACTIVE)
        await self._listener.switched(old_provider, link, reason, self._clock.now() - trigger_at)

    # -- no usable provider -----------------------------------------------------------------------------
    async def _no_provider(self, reason: SwitchReason) -> None:
        if self.ended:
            return
        self._move(SessionState.WAITING)
        retry = min((self._breaker(p).retry_after_s() for p in self.chain()), default=1.0)
        await self._listener.no_provider(retry, reason)
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.create_task(self._wait_for_provider(reason))

    async def _wait_for_provider(self, reason: SwitchReason) -> None:
        """Park until any breaker of the chain admits a call (its open timeout on the injected clock,
        an operator reset, a freed half-open slot), then take the call there."""
        metrics.voice_gateway_no_provider_sessions.inc()  # here, so a cancelled waiter always undoes it
        failed_tries = 0
        try:
            while self.state is SessionState.WAITING:
                chain = self.chain()
                if not chain:  # nothing configured to wait for (the edges prevent this)
                    return
                waits = [asyncio.ensure_future(self._breaker(p).wait_admissible()) for p in chain]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                if self.state is not SessionState.WAITING:
                    return
                old = self.link
                self.link = None
                self._move(SessionState.SWITCHING)
                trigger_at = self._clock.now()
                link = await self._open_first_usable(chain)
                if self.ended:
                    return
                if link is None:
                    self.link = old
                    self._move(SessionState.WAITING)
                    # every admitted try failed: back off (the reconnect schedule, 1, 2, 4, 8, 16 s) rather
                    # than hammer a provider that just refused us and open its breaker by ourselves
                    failed_tries += 1
                    await self._clock.sleep(self._retry_delay_s(failed_tries))
                    continue
                await self._switched(old.provider if old is not None else "none", link, reason, trigger_at)
        finally:
            metrics.voice_gateway_no_provider_sessions.dec()

    # -- plumbing ---------------------------------------------------------------------------------------
    def _count_active(self, provider: str | None) -> None:
        """ai_provider_active_sessions: this call counts for exactly one provider, or none."""
        if self._counted == provider:
            return
        if self._counted is not None:
            metrics.ai_provider_active_sessions.labels(self._counted).dec()
        if provider is not None:
            metrics.ai_provider_active_sessions.labels(provider).inc()
        self._counted = provider

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
