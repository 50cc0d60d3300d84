"""Circuit breakers, one per provider per process (docs/architecture.md "Breaker"; metrics in docs/metrics.md).

A "call" is one link establishment: `admit()` hands out a ticket, the link resolves it with
`success()`, `failure()` or `cancel()`. States move only through `_move()`, checked against
TRANSITIONS; every change bumps the generation, and tickets admitted under an older generation
no longer move the state (they are still counted in calls_total).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from gateway import metrics
from gateway.clock import Clock
from gateway.errors import CircuitOpen, ConfigError
from gateway.logs import log_event
from providers.registry import BREAKER_NAMES

logger = logging.getLogger("gateway.breaker")

AUTH_REASON = "auth"
HALF_OPEN_RETRY_AFTER_S = 1.0  # advisory wait when all half-open trial slots are taken
_EPSILON_S = 1e-9  # float noise in clock arithmetic must not keep a breaker open past its timeout


def _wake(waiter: asyncio.Future[None], _timer: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        """The metric label value the audit's PromQL uses: closed / half_open / open."""
        return self.name.lower()


# Natural moves. Operator `reset` may go anywhere → CLOSED and `force` anywhere → OPEN.
TRANSITIONS: dict[BreakerState, frozenset[BreakerState]] = {
    BreakerState.CLOSED: frozenset({BreakerState.OPEN}),
    BreakerState.OPEN: frozenset({BreakerState.HALF_OPEN}),
    BreakerState.HALF_OPEN: frozenset({BreakerState.CLOSED, BreakerState.OPEN}),
}
Cause = Literal["natural", "reset", "force"]


class IllegalBreakerTransition(RuntimeError):
    """A state change outside TRANSITIONS: a bug in the caller, never a provider condition."""


def check_transition(src: BreakerState, dst: BreakerState, *, cause: Cause = "natural") -> None:
    """Raise IllegalBreakerTransition unless `src → dst` is allowed for `cause`."""
    if cause == "reset" and dst is BreakerState.CLOSED:
        return
    if cause == "force" and dst is BreakerState.OPEN:
        return
    if cause == "natural" and dst in TRANSITIONS[src]:
        return
    raise IllegalBreakerTransition(f"illegal breaker transition {src.name}→{dst.name} ({cause})")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    failure_threshold: int = 5  # consecutive failures in CLOSED that open the circuit
    open_timeout_s: float = 60.0  # OPEN rejects calls this long, then HALF_OPEN
    half_open_max_calls: int = 3  # concurrent trial calls in HALF_OPEN
    success_threshold: int = 2  # consecutive HALF_OPEN successes that close the circuit

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            if getattr(self, name) < 1:
                raise ConfigError(f"breaker {name} must be >= 1, got {getattr(self, name)}")
        if self.open_timeout_s <= 0:
            raise ConfigError(f"breaker open_timeout_s must be > 0, got {self.open_timeout_s}")


class BreakerTicket:
    """One admitted call. Resolve it exactly once; later resolutions are ignored."""

    __slots__ = ("_breaker", "generation", "half_open", "started_at", "resolved")

    def __init__(self, breaker: CircuitBreaker, generation: int, half_open: bool, started_at: float) -> None:
        self._breaker = breaker
        self.generation = generation
        self.half_open = half_open  # holds one of the HALF_OPEN trial slots
        self.started_at = started_at
        self.resolved = False

    def success(self) -> None:
        self._breaker._resolve(self, "success", None)

    def failure(self, error_type: str = "server") -> None:
        self._breaker._resolve(self, "failure", error_type)

    def cancel(self) -> None:
        """Our own cancellation (caller hung up, planned close): not a result; frees the slot."""
        self._breaker._resolve(self, "cancel", None)


class CircuitBreaker:
    """States and thresholds per docs/architecture.md.

    Auth: `force_open("auth")` keeps the breaker OPEN with no automatic HALF_OPEN, so no new call
    tries a key the provider refused, until an operator calls `reset()` (docs/architecture.md).
    """

    def __init__(self, provider: str, *, clock: Clock, policy: BreakerPolicy = BreakerPolicy(),
                 name: str | None = None) -> None:
        self.provider = provider
        self.name = name or BREAKER_NAMES.get(provider, f"{provider}_provider")
        self.policy = policy
        self._clock = clock
        self._state = BreakerState.CLOSED
        self.generation = 0
        self._failures = 0  # consecutive, CLOSED
        self._successes = 0  # consecutive, HALF_OPEN
        self._in_flight = 0  # HALF_OPEN trial calls of the current generation
        self._opened_at: float | None = None
        self.opened_reason: str | None = None
        self.closed_since: float | None = clock.now()
        # Shared breaker advisory (fleet mode, opt-in): another replica's breaker for this provider is
        # OPEN, so this one refuses new calls until then (counted `rejected`) without changing state.
        self._advisory_until: float | None = None
        self.advisory_source: str | None = None
        self._listeners: list[Callable[[BreakerState, BreakerState], None]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._labels = {"name": self.name, "provider": provider}
        metrics.circuit_breaker_state.labels(**self._labels).set(int(self._state))

    # -- reporting ---------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state. Reporting only: the OPEN→HALF_OPEN timeout is applied by admit()."""
        return self._state

    def _open_remaining_s(self) -> float:
        assert self._opened_at is not None
        return max(0.0, self.policy.open_timeout_s - (self._clock.now() - self._opened_at))

    def _timeout_elapsed(self) -> bool:
        return self.opened_reason != AUTH_REASON and self._open_remaining_s() <= _EPSILON_S

    def _advisory_remaining_s(self) -> float:
        if self._advisory_until is None:
            return 0.0
        return max(0.0, self._advisory_until - self._clock.now())

    def advise_open(self, ttl_s: float, source: str) -> None:
        """Another replica reports this provider's circuit OPEN for `ttl_s` more seconds."""
        self._advisory_until, self.advisory_source = self._clock.now() + max(0.0, ttl_s), source
        log_event(logger, logging.WARNING, "breaker.advisory",
                  f"Circuit breaker '{self.name}' is OPEN on replica {source}: new calls refused here "
                  f"for {ttl_s:.1f}s (shared advisory).", provider=self.provider, breaker=self.name,
                  source=source, ttl_s=round(ttl_s, 3))

    def clear_advisory(self) -> None:
        if self._advisory_until is not None:
            self._advisory_until = self.advisory_source = None
            self._wake_waiters()

    def would_admit(self) -> bool:
        """Whether admit() would succeed now; takes no slot and counts nothing."""
        if self._advisory_remaining_s() > _EPSILON_S:
            return False
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            return self._timeout_elapsed()
        return self._in_flight < self.policy.half_open_max_calls

    def retry_after_s(self) -> float:
        """Seconds until a call may be admitted (0 when admit() would succeed now). An auth-opened
        breaker reports the open timeout, only as an advisory figure: it needs a reset."""
        if self.would_admit():
            return 0.0
        if self._advisory_remaining_s() > _EPSILON_S:
            return self._advisory_remaining_s()
        if self._state is BreakerState.OPEN:
            return self.policy.open_timeout_s if self.opened_reason == AUTH_REASON else self._open_remaining_s()
        return HALF_OPEN_RETRY_AFTER_S

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "provider": self.provider, "state": self._state.name,
            "failures": self._failures, "successes": self._successes, "in_flight": self._in_flight,
            "retry_after_s": round(self.retry_after_s(), 3), "opened_reason": self.opened_reason}
        if self._advisory_remaining_s() > _EPSILON_S:  # only while one holds (fleet mode, opt-in)
            out["advisory"] = {"source": self.advisory_source,
                               "remaining_s": round(self._advisory_remaining_s(), 3)}
        return out

    def subscribe(self, callback: Callable[[BreakerState, BreakerState], None]) -> Callable[[], None]:
        """Call `callback(from_state, to_state)` after every state change; returns an unsubscribe."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    async def wait_admissible(self) -> None:
        """Return once would_admit() is true: after the open timeout (on the injected clock), a
        reset, or a freed half-open slot. Sessions with no usable provider park here."""
        while not self.would_admit():
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(woken)
            timer: asyncio.Task[None] | None = None
            if self._advisory_remaining_s() > _EPSILON_S:
                timer = asyncio.ensure_future(self._clock.sleep(self._advisory_remaining_s()))
                timer.add_done_callback(functools.partial(_wake, woken))
            elif self._state is BreakerState.OPEN and self.opened_reason != AUTH_REASON:
                timer = asyncio.ensure_future(self._clock.sleep(self._open_remaining_s()))
                timer.add_done_callback(functools.partial(_wake, woken))
            try:
                await woken
            finally:
                if timer is not None:
                    timer.cancel()
                if woken in self._waiters:
                    self._waiters.remove(woken)

    # -- calls -------------------------------------------------------------------------------
    def admit(self) -> BreakerTicket:
        """Admit one call or raise CircuitOpen (counted as `rejected`)."""
        self._count("attempted")
        if self._advisory_remaining_s() > _EPSILON_S:
            self._reject()
        if self._state is BreakerState.OPEN:
            if not self._timeout_elapsed():
                self._reject()
            elapsed = self._clock.now() - (self._opened_at or 0.0)
            self._move(BreakerState.HALF_OPEN, "natural", "breaker.half_open", logging.INFO,
                       f"Circuit breaker '{self.name}' timeout elapsed ({elapsed:.1f}s). "
                       "Transitioning to HALF_OPEN.")
        half_open = self._state is BreakerState.HALF_OPEN
        if half_open:
            if self._in_flight >= self.policy.half_open_max_calls:
                self._reject()
            self._in_flight += 1
        return BreakerTicket(self, self.generation, half_open, self._clock.now())

    def _reject(self) -> None:
        retry_after = self.retry_after_s()
        if self._advisory_remaining_s() > _EPSILON_S:
            message = (f"Circuit breaker '{self.name}' is OPEN on replica {self.advisory_source} "
                       f"(shared advisory). Retry after {retry_after:.1f} seconds.")
        elif self._state is BreakerState.OPEN and self.opened_reason == AUTH_REASON:
            message = (f"Circuit breaker '{self.name}' is OPEN (invalid credentials). "
                       "Manual reset required.")
        elif self._state is BreakerState.OPEN:
            message = f"Circuit breaker '{self.name}' is OPEN. Retry after {retry_after:.1f} seconds."
        else:
            message = (f"Circuit breaker '{self.name}' is HALF_OPEN with "
                       f"{self._in_flight} trial calls in flight. Retry after {retry_after:.1f} seconds.")
        self._count("rejected")
        log_event(logger, logging.INFO, "breaker.rejected", message, provider=self.provider,
                  breaker=self.name, state=self._state.name, retry_after_s=round(retry_after, 3))
        raise CircuitOpen(message, retry_after_s=retry_after, breaker=self.name)

    def _resolve(self, ticket: BreakerTicket, outcome: str, error_type: str | None) -> None:
        if ticket.resolved:
            return
        ticket.resolved = True
        current = ticket.generation == self.generation
        if current and ticket.half_open:
            self._in_flight -= 1
            self._wake_waiters()
        if outcome == "cancel":
            return
        self._count(outcome)
        metrics.circuit_breaker_call_duration_seconds.labels(**self._labels, status=outcome).observe(
            max(0.0, self._clock.now() - ticket.started_at))
        if not current:
            return  # a call started before the last state change must not move the new state
        if outcome == "success":
            self._on_success()
        else:
            self._on_failure(error_type or "server")

    def _on_success(self) -> None:
        if self._state is BreakerState.CLOSED:
            self._failures = 0
            return
        self._successes += 1
        if self._state is BreakerState.HALF_OPEN and self._successes >= self.policy.success_threshold:
            successes = self._successes
            self._move(BreakerState.CLOSED, "natural", "breaker.closed", logging.INFO,
                       f"Circuit breaker '{self.name}' recovered. "
                       f"Transitioning to CLOSED after {successes} successes.",
                       consecutive_successes=successes, threshold=self.policy.success_threshold)

    def _on_failure(self, error_type: str) -> None:
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.policy.failure_threshold:
                failures = self._failures
                self._move(BreakerState.OPEN, "natural", "breaker.opened", logging.ERROR,
                           f"Circuit breaker '{self.name}' failure threshold reached "
                           f"({failures} failures). Opening circuit.",
                           reason="failure_threshold", error_type=error_type,
                           consecutive_failures=failures, threshold=self.policy.failure_threshold)
        elif self._state is BreakerState.HALF_OPEN:
            self._move(BreakerState.OPEN, "natural", "breaker.reopened", logging.ERROR,
                       f"Circuit breaker '{self.name}' failed in HALF_OPEN. Reopening circuit.",
                       reason="half_open_failure", error_type=error_type)

    # -- operator and auth -------------------------------------------------------------------
    def force_open(self, reason: str) -> None:
        """Open now. With reason "auth" it stays OPEN (no automatic HALF_OPEN) until reset()."""
        message = f"Circuit breaker '{self.name}' forced OPEN (reason: {reason})."
        if reason == AUTH_REASON:
            message += " Manual reset required."
        if self._state is BreakerState.OPEN:
            self.opened_reason = reason
            self._opened_at = self._clock.now()
            log_event(logger, logging.WARNING, "breaker.forced_open", message, provider=self.provider,
                      breaker=self.name, reason=reason)
            return
        self._move(BreakerState.OPEN, "force", "breaker.forced_open", logging.WARNING, message, reason=reason)

    def reset(self) -> None:
        """Operator reset: → CLOSED with every counter cleared; in-flight results no longer count."""
        self.clear_advisory()
        if self._state is BreakerState.CLOSED:
            self._failures = self._successes = 0
            self.generation += 1
            log_event(logger, logging.INFO, "breaker.reset", f"Circuit breaker '{self.name}' reset.",
                      provider=self.provider, breaker=self.name)
            return
        self._move(BreakerState.CLOSED, "reset", "breaker.reset", logging.INFO,
                   f"Circuit breaker '{self.name}' reset by operator. Transitioning to CLOSED.")

    # -- the single setter -------------------------------------------------------------------
    def _move(self, dst: BreakerState, cause: Cause, event: str, level: int, message: str,
              *, reason: str | None = None, **fields: Any) -> None:
        src = self._state
        check_transition(src, dst, cause=cause)
        self._state = dst
        self.generation += 1
        self._failures = self._successes = self._in_flight = 0
        now = self._clock.now()
        if dst is BreakerState.OPEN:
            self._opened_at, self.opened_reason = now, reason
        elif dst is BreakerState.CLOSED:
            self._opened_at, self.opened_reason, self.closed_since = None, None, now
        metrics.circuit_breaker_state.labels(**self._labels).set(int(dst))
        metrics.circuit_breaker_state_transitions.labels(
            **self._labels, from_state=src.label, to_state=dst.label).inc()
        extra: dict[str, Any] = {"reason": reason} if reason else {}
        log_event(logger, level, event, message, provider=self.provider, breaker=self.name,
                  from_state=src.name, to_state=dst.name, **extra, **fields)
        for callback in list(self._listeners):
            try:
                callback(src, dst)
            except Exception:  # a listener's bug must not wedge the breaker
                log_event(logger, logging.ERROR, "breaker.listener_failed",
                          f"Circuit breaker '{self.name}' state listener raised.", provider=self.provider)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _count(self, status: str) -> None:
        metrics.circuit_breaker_calls.labels(**self._labels, status=status).inc()


class BreakerRegistry:
    """One breaker per provider per process."""

    def __init__(self, clock: Clock, policy: BreakerPolicy = BreakerPolicy()) -> None:
        self._clock = clock
        self._policy = policy
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, provider: str) -> CircuitBreaker:
        breaker = self._breakers.get(provider)
        if breaker is None:
            breaker = self._breakers[provider] = CircuitBreaker(provider, clock=self._clock, policy=self._policy)
        return breaker

    def all(self) -> list[CircuitBreaker]:
        return list(self._breakers.values())
