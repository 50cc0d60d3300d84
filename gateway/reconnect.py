"""Reconnecting one provider link after an unplanned close (docs/architecture.md).

The schedule is the call's ReconnectPolicy (1, 2, 4, 8, 16 s by default, on the injected clock).
Invariants:
- an OPEN breaker ends the attempts at once (the session switches; it never sleeps first);
- each attempt is one breaker call; a rejection (bad key, bad config) ends them, and a bad key also
  forces the breaker OPEN so no new call tries it until an operator resets it;
- the client hears `connection.reconnecting` before each wait, then `connection.reconnected` or
  `connection.failed` with the class of failure, never the provider's own words;
- giving up hands the link to the session (`lost`), which fails over.
"""

from __future__ import annotations

import logging
import random
from typing import Protocol

from gateway import metrics
from gateway.audit import SYSTEM, audit
from gateway.breaker import BreakerTicket, CircuitBreaker
from gateway.clock import Clock
from gateway.errors import CircuitOpen, GatewayError, ProviderError, ProviderRejected
from gateway.events import (
    ClientEvent,
    ConnectionFailed,
    ConnectionReconnected,
    ConnectionReconnecting,
    LinkLostReason,
)
from gateway.logs import log_event
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from gateway.states import LinkState
from providers.registry import PROVIDERS

log = logging.getLogger("gateway.link")


class RecoveringLink(Protocol):
    """What reconnecting needs of its link (gateway/link.py ProviderLink)."""

    provider: str
    session_id: str
    breaker: CircuitBreaker
    policy: ReconnectPolicy
    replay: ReplayBuffer
    counters: dict[str, int]
    retry_count: int  # the attempt in progress (0: none), for the connection.* log lines

    @property
    def resume_handle(self) -> str | None: ...

    @property
    def closing(self) -> bool: ...

    def forget_resume_handle(self) -> None: ...

    def move(self, to: LinkState) -> None: ...

    async def establish(self, ticket: BreakerTicket, *, history: bool) -> int: ...

    async def tell_client(self, event: ClientEvent) -> None: ...

    async def lost(self, reason: LinkLostReason, err: GatewayError) -> None: ...


class Reconnector:
    def __init__(self, link: RecoveringLink, clock: Clock, rng: random.Random | None = None) -> None:
        self._link = link
        self._clock = clock
        self._rng = rng

    async def recover(self, err: ProviderError) -> bool:
        """Reconnect on the schedule. True when the link is up again."""
        link = self._link
        dropped_before = link.replay.dropped_total
        lost = link.replay.connection_lost()  # sent, evicted, never acknowledged: gone with the socket
        if lost:
            metrics.voice_gateway_replay_dropped_chunks.labels(link.provider).inc(lost)
            log_event(log, logging.WARNING, "audio.lost", f"{lost} sent chunks were never acknowledged by "
                      f"the lost {link.provider} connection and can no longer be replayed",
                      provider=link.provider, session_id=link.session_id, dropped_count=lost)
        if not err.retryable:
            return await self.give_up("fatal_error", err, attempts=0)
        link.move(LinkState.RECONNECTING)
        metrics.voice_gateway_sessions_reconnecting.labels(link.provider).inc()
        try:
            return await self._attempts(err, dropped_before)
        finally:
            metrics.voice_gateway_sessions_reconnecting.labels(link.provider).dec()

    async def _attempts(self, cause: ProviderError, dropped_before: int) -> bool:
        link = self._link
        breaker, policy = link.breaker, link.policy
        down_since = self._clock.now()
        max_attempts = policy.max_attempts
        last: GatewayError = cause
        retry_after = 0.0  # the provider's Retry-After from the last refused attempt
        for attempt in range(1, max_attempts + 1):
            if not breaker.would_admit():  # OPEN → the session switches now, no sleeping first
                return await self.give_up("circuit_open", CircuitOpen(
                    f"Circuit breaker '{breaker.name}' is OPEN.",
                    retry_after_s=breaker.retry_after_s(), breaker=breaker.name), attempt - 1)
            # a 429/503 with Retry-After: the next attempt waits at least that long (RFC 9110 §10.2.3)
            delay = max(policy.delay_s(attempt, self._rng), retry_after)
            buffered = len(link.replay)
            await link.tell_client(ConnectionReconnecting(
                provider=link.provider, attempt=attempt, max_attempts=max_attempts,
                backoff_delay=delay, buffered_audio_chunks=buffered))
            log_event(log, logging.WARNING, "reconnect.attempt",
                      f"reconnecting to {link.provider} (attempt {attempt}/{max_attempts}) in {delay:g}s",
                      attempt=attempt,
                      max_attempts=max_attempts, backoff_delay=delay, buffered_count=buffered)
            await self._clock.sleep(delay)
            if link.closing:
                return False
            try:
                ticket = breaker.admit()
            except CircuitOpen as e:
                return await self.give_up("circuit_open", e, attempt - 1)
            link.counters["reconnects"] += 1
            link.retry_count = attempt
            try:
                replayed = await link.establish(ticket, history=link.resume_handle is None)
            except ProviderRejected as e:
                metrics.ai_provider_reconnections.labels(link.provider, "false").inc()
                return await self.give_up("fatal_error", e, attempt)
            except ProviderError as e:
                metrics.ai_provider_reconnections.labels(link.provider, "false").inc()
                if e.stale_handle:
                    link.forget_resume_handle()
                retry_after = e.retry_after_s or 0.0
                last = e
                log_event(log, logging.WARNING, "reconnect.failed",
                          f"reconnect attempt {attempt}/{max_attempts} to {link.provider} failed",
                          attempt=attempt,
                          max_attempts=max_attempts, error_type=e.error_type)
                continue
            metrics.ai_provider_reconnections.labels(link.provider, "true").inc()
            link.retry_count = 0
            dropped = link.replay.dropped_total - dropped_before
            duration = self._clock.now() - down_since
            await link.tell_client(ConnectionReconnected(
                provider=link.provider, attempts=attempt, duration=round(duration, 3),
                replayed_audio_chunks=replayed, dropped_audio_chunks=dropped))
            log_event(log, logging.INFO, "reconnect.succeeded",
                      f"reconnected to {link.provider} after {attempt} attempt(s)",
                      attempt=attempt,
                      max_attempts=max_attempts, replayed_count=replayed, dropped_count=dropped,
                      total_count=link.counters["replayed"], duration_s=round(duration, 3))
            return True
        return await self.give_up("reconnect_failed", last, max_attempts)

    async def give_up(self, reason: LinkLostReason, err: GatewayError, attempts: int) -> bool:
        """FAILED: tell the client and hand the link to the session. Always False."""
        link = self._link
        link.retry_count = 0
        if link.closing:
            return False
        log_event(log, logging.ERROR, "reconnect.exhausted",
                  f"Reconnection failed: giving up on {link.provider} after {attempts} attempt(s) ({reason})",
                  provider=link.provider, session_id=link.session_id, reason=reason,
                  error_type=getattr(err, "error_type", None), total_attempts=attempts)
        link.move(LinkState.FAILED)
        if isinstance(err, ProviderRejected):
            await self.note_rejected(err, attempts=attempts)
        else:
            # the client hears the class of failure, not the provider's own words
            await link.tell_client(ConnectionFailed(
                provider=link.provider, reason=f"{reason}: {err.error_type}", total_attempts=attempts))
        await link.lost(reason, err)
        return False

    async def note_rejected(self, err: ProviderRejected, *, attempts: int) -> None:
        """Auth/config rejection: fatal for the link, no retry loop. Auth forces the breaker OPEN so
        no new call tries the bad key until an operator resets it."""
        link = self._link
        if err.error_type == "auth":
            link.breaker.force_open("auth")
            audit("provider.key", "rejected", remote=link.provider, actor=SYSTEM, level=logging.WARNING,
                  provider=link.provider, session_id=link.session_id,
                  key_variable=f"{link.provider.upper()}_API_KEY")
            log_event(log, logging.ERROR, "provider.auth_failed",
                      f"{link.provider} rejected the configured credentials: check the "
                      f"{_key_setting(link.provider)} setting; no retry until it is fixed and the circuit reset",
                      expected=True)
            reason = f"auth: {link.provider} rejected the API key"
        else:
            log_event(log, logging.ERROR, "provider.config_rejected",
                      f"{link.provider} rejected the session configuration: {err.message}", expected=True)
            reason = f"config: {link.provider} rejected the session configuration"
        await link.tell_client(ConnectionFailed(provider=link.provider, reason=reason, total_attempts=attempts))


def _key_setting(provider: str) -> str:
    entry = PROVIDERS.get(provider)
    return entry.key_setting if entry is not None else f"{provider.upper()}_API_KEY"
