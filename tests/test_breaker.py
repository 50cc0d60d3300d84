"""Circuit breaker: docs/architecture.md thresholds and timings in virtual time, docs/metrics.md metrics, audit logs.

Metrics are process-global, so assertions compare deltas (after minus before).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator

import orjson
import pytest

from gateway import metrics
from gateway.breaker import (
    TRANSITIONS,
    BreakerPolicy,
    BreakerRegistry,
    BreakerState,
    BreakerTicket,
    CircuitBreaker,
    IllegalBreakerTransition,
    check_transition,
)
from gateway.clock import VirtualClock
from gateway.errors import CircuitOpen, ConfigError
from gateway.logs import JsonFormatter

PROVIDER, NAME = "gemini", "gemini_provider"
LABELS = {"name": NAME, "provider": PROVIDER}


def calls(status: str) -> float:
    return metrics.sample("circuit_breaker_calls_total", {**LABELS, "status": status}) or 0.0


def transitions(src: str, dst: str) -> float:
    labels = {**LABELS, "from_state": src.lower(), "to_state": dst.lower()}
    return metrics.sample("circuit_breaker_state_transitions_total", labels) or 0.0


def duration_count(status: str) -> float:
    labels = {**LABELS, "status": status}
    return metrics.sample("circuit_breaker_call_duration_seconds_count", labels) or 0.0


def gauge() -> float | None:
    return metrics.sample("circuit_breaker_state", LABELS)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def breaker(clock: VirtualClock) -> CircuitBreaker:
    return CircuitBreaker(PROVIDER, clock=clock)


@pytest.fixture
def breaker_logs() -> Iterator[Callable[[], list[dict]]]:
    """The breaker's log lines as parsed JSON objects, formatted by the production formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("gateway.breaker")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)


def fail(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        breaker.admit().failure("server")


def open_breaker(breaker: CircuitBreaker) -> None:
    fail(breaker, 5)
    assert breaker.state is BreakerState.OPEN


def to_half_open(breaker: CircuitBreaker, clock: VirtualClock) -> BreakerTicket:
    """Open the breaker, let the timeout pass, and return the first trial call's ticket."""
    open_breaker(breaker)
    clock.advance(60.0)
    ticket = breaker.admit()
    assert breaker.state is BreakerState.HALF_OPEN
    return ticket


def events(lines: list[dict], event: str) -> list[dict]:
    return [line for line in lines if line["event"] == event]


# -- the transition table --------------------------------------------------------------------
def test_transition_table_allows_only_the_designed_moves() -> None:
    assert TRANSITIONS == {
        BreakerState.CLOSED: {BreakerState.OPEN},
        BreakerState.OPEN: {BreakerState.HALF_OPEN},
        BreakerState.HALF_OPEN: {BreakerState.CLOSED, BreakerState.OPEN},
    }
    for src in BreakerState:
        for dst in BreakerState:
            if dst in TRANSITIONS[src]:
                check_transition(src, dst)
            else:
                with pytest.raises(IllegalBreakerTransition, match=f"{src.name}→{dst.name}"):
                    check_transition(src, dst)
            # Operator reset reaches CLOSED and force reaches OPEN from anywhere, nothing else.
            for cause, target in (("reset", BreakerState.CLOSED), ("force", BreakerState.OPEN)):
                if dst is target:
                    check_transition(src, dst, cause=cause)
                else:
                    with pytest.raises(IllegalBreakerTransition):
                        check_transition(src, dst, cause=cause)


def test_state_values_match_the_gauge_encoding() -> None:
    assert (BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN) == (0, 1, 2)


def test_policy_defaults_and_validation() -> None:
    assert BreakerPolicy() == BreakerPolicy(failure_threshold=5, open_timeout_s=60.0,
                                            half_open_max_calls=3, success_threshold=2)
    with pytest.raises(ConfigError):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ConfigError):
        BreakerPolicy(open_timeout_s=0)


# -- CLOSED → OPEN ---------------------------------------------------------------------------
def test_opens_after_exactly_five_consecutive_failures(breaker: CircuitBreaker, breaker_logs) -> None:
    opened, failures, attempted = transitions("CLOSED", "OPEN"), calls("failure"), calls("attempted")
    assert gauge() == 0
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED and breaker.would_admit()
    assert gauge() == 0
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert gauge() == 2
    assert transitions("CLOSED", "OPEN") - opened == 1
    assert calls("failure") - failures == 5
    assert calls("attempted") - attempted == 5
    (line,) = events(breaker_logs(), "breaker.opened")
    assert line["message"] == ("Circuit breaker 'gemini_provider' failure threshold reached (5 failures). "
                               "Opening circuit.")
    assert (line["level"], line["provider"], line["from_state"], line["to_state"]) == (
        "ERROR", "gemini", "CLOSED", "OPEN")
    assert (line["consecutive_failures"], line["threshold"]) == (5, 5)


def test_a_success_resets_the_consecutive_failure_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 4)
    breaker.admit().success()
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN


# -- OPEN ------------------------------------------------------------------------------------
def test_open_rejects_for_sixty_seconds_with_retry_after(
        breaker: CircuitBreaker, clock: VirtualClock, breaker_logs) -> None:
    open_breaker(breaker)
    rejected = calls("rejected")
    with pytest.raises(CircuitOpen) as info:
        breaker.admit()
    assert str(info.value) == "Circuit breaker 'gemini_provider' is OPEN. Retry after 60.0 seconds."
    assert info.value.retry_after_s == 60.0
    assert info.value.breaker == NAME
    assert info.value.code == "provider_unavailable"
    assert calls("rejected") - rejected == 1

    clock.advance(59.9)
    assert not breaker.would_admit()
    assert breaker.retry_after_s() == pytest.approx(0.1)
    with pytest.raises(CircuitOpen, match=r"Retry after 0\.1 seconds\.$"):
        breaker.admit()
    assert breaker.state is BreakerState.OPEN
    assert calls("rejected") - rejected == 2
    assert [e["message"] for e in events(breaker_logs(), "breaker.rejected")] == [
        "Circuit breaker 'gemini_provider' is OPEN. Retry after 60.0 seconds.",
        "Circuit breaker 'gemini_provider' is OPEN. Retry after 0.1 seconds.",
    ]

    clock.advance(0.1)
    assert breaker.would_admit()
    half = transitions("OPEN", "HALF_OPEN")
    breaker.admit()
    assert breaker.state is BreakerState.HALF_OPEN
    assert gauge() == 1
    assert transitions("OPEN", "HALF_OPEN") - half == 1
    (line,) = events(breaker_logs(), "breaker.half_open")
    assert line["message"] == ("Circuit breaker 'gemini_provider' timeout elapsed (60.0s). "
                               "Transitioning to HALF_OPEN.")


def test_state_property_only_reports(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    open_breaker(breaker)
    clock.advance(120.0)
    assert breaker.would_admit()
    assert breaker.state is BreakerState.OPEN  # the timeout is applied by admit(), not by peeking
    assert breaker.snapshot()["state"] == "OPEN"


def test_half_open_log_reports_real_elapsed_time(
        breaker: CircuitBreaker, clock: VirtualClock, breaker_logs) -> None:
    open_breaker(breaker)
    clock.advance(75.3)
    breaker.admit()
    (line,) = events(breaker_logs(), "breaker.half_open")
    assert "timeout elapsed (75.3s)" in line["message"]


# -- HALF_OPEN -------------------------------------------------------------------------------
def test_half_open_admits_exactly_three_concurrent_trials(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    trials = [to_half_open(breaker, clock), breaker.admit(), breaker.admit()]
    rejected = calls("rejected")
    assert not breaker.would_admit()
    with pytest.raises(CircuitOpen) as info:
        breaker.admit()
    assert info.value.retry_after_s == 1.0
    assert calls("rejected") - rejected == 1
    assert breaker.snapshot()["in_flight"] == 3
    trials[0].cancel()  # our own cancellation frees a slot and is not a result
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.admit()
    with pytest.raises(CircuitOpen):
        breaker.admit()


def test_closes_after_exactly_two_half_open_successes(
        breaker: CircuitBreaker, clock: VirtualClock, breaker_logs) -> None:
    first = to_half_open(breaker, clock)
    second = breaker.admit()
    closed = transitions("HALF_OPEN", "CLOSED")
    first.success()
    assert breaker.state is BreakerState.HALF_OPEN
    clock.advance(3.0)
    second.success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.closed_since == clock.now()
    assert gauge() == 0
    assert transitions("HALF_OPEN", "CLOSED") - closed == 1
    (line,) = events(breaker_logs(), "breaker.closed")
    assert line["message"] == ("Circuit breaker 'gemini_provider' recovered. "
                               "Transitioning to CLOSED after 2 successes.")


def test_a_half_open_failure_reopens(breaker: CircuitBreaker, clock: VirtualClock, breaker_logs) -> None:
    first = to_half_open(breaker, clock)
    second = breaker.admit()
    reopened = transitions("HALF_OPEN", "OPEN")
    first.success()
    second.failure("timeout")
    assert breaker.state is BreakerState.OPEN
    assert gauge() == 2
    assert transitions("HALF_OPEN", "OPEN") - reopened == 1
    with pytest.raises(CircuitOpen, match=r"Retry after 60\.0 seconds"):
        breaker.admit()
    (line,) = events(breaker_logs(), "breaker.reopened")
    assert line["message"] == "Circuit breaker 'gemini_provider' failed in HALF_OPEN. Reopening circuit."
    assert line["error_type"] == "timeout"


# -- generations -----------------------------------------------------------------------------
def test_results_from_an_older_generation_do_not_move_the_state(
        breaker: CircuitBreaker, clock: VirtualClock) -> None:
    slow = breaker.admit()  # admitted in CLOSED, still connecting
    trial = to_half_open(breaker, clock)
    failures = calls("failure")
    slow.failure("timeout")
    assert breaker.state is BreakerState.HALF_OPEN  # the stale failure does not reopen
    assert calls("failure") - failures == 1  # but it is still counted as a call outcome
    trial.success()
    breaker.admit().success()
    assert breaker.state is BreakerState.CLOSED


def test_stale_half_open_trials_neither_count_towards_closing_nor_free_new_slots(
        breaker: CircuitBreaker, clock: VirtualClock) -> None:
    trials = [to_half_open(breaker, clock), breaker.admit(), breaker.admit()]
    trials[0].success()
    trials[1].success()
    assert breaker.state is BreakerState.CLOSED
    trials[2].failure()  # from the HALF_OPEN generation: must not count as a CLOSED failure
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED


def test_a_ticket_resolves_once(breaker: CircuitBreaker) -> None:
    failures = calls("failure")
    ticket = breaker.admit()
    ticket.failure()
    ticket.failure()
    ticket.success()
    assert calls("failure") - failures == 1
    assert breaker.snapshot()["failures"] == 1


def test_durations_come_from_the_clock(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    before = metrics.sample("circuit_breaker_call_duration_seconds_bucket",
                            {**LABELS, "status": "success", "le": "2.0"}) or 0.0
    count = duration_count("success")
    ticket = breaker.admit()
    clock.advance(1.5)
    ticket.success()
    after = metrics.sample("circuit_breaker_call_duration_seconds_bucket",
                           {**LABELS, "status": "success", "le": "2.0"})
    below = metrics.sample("circuit_breaker_call_duration_seconds_bucket",
                           {**LABELS, "status": "success", "le": "1.0"})
    assert after - before == 1
    assert duration_count("success") - count == 1
    assert below is not None and after - below >= 1  # landed in the (1, 2] bucket


def test_cancellations_are_not_counted(breaker: CircuitBreaker) -> None:
    before = {s: calls(s) for s in ("success", "failure")}
    for _ in range(10):
        breaker.admit().cancel()
    assert {s: calls(s) for s in before} == before
    assert breaker.state is BreakerState.CLOSED


# -- auth and operator -----------------------------------------------------------------------
def test_auth_forced_open_stays_open_until_reset(
        breaker: CircuitBreaker, clock: VirtualClock, breaker_logs) -> None:
    forced = transitions("CLOSED", "OPEN")
    breaker.force_open("auth")
    assert breaker.state is BreakerState.OPEN and gauge() == 2
    assert transitions("CLOSED", "OPEN") - forced == 1
    clock.advance(3600.0)
    assert not breaker.would_admit()
    with pytest.raises(CircuitOpen, match="invalid credentials"):
        breaker.admit()
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot()["opened_reason"] == "auth"

    reset = transitions("OPEN", "CLOSED")
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED and gauge() == 0
    assert transitions("OPEN", "CLOSED") - reset == 1
    assert breaker.snapshot() == {"name": NAME, "provider": PROVIDER, "state": "CLOSED", "failures": 0,
                                  "successes": 0, "in_flight": 0, "retry_after_s": 0.0,
                                  "opened_reason": None}
    breaker.admit().success()
    assert [e["event"] for e in breaker_logs() if e["event"].startswith("breaker.")][:1] == [
        "breaker.forced_open"]


def test_force_open_for_other_reasons_half_opens_after_the_timeout(
        breaker: CircuitBreaker, clock: VirtualClock) -> None:
    breaker.force_open("operator")
    clock.advance(60.0)
    breaker.admit()
    assert breaker.state is BreakerState.HALF_OPEN


def test_auth_while_already_open_pins_it_open(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    open_breaker(breaker)
    breaker.force_open("auth")
    clock.advance(120.0)
    with pytest.raises(CircuitOpen):
        breaker.admit()


def test_reset_discards_in_flight_results(breaker: CircuitBreaker) -> None:
    fail(breaker, 4)
    in_flight = breaker.admit()
    breaker.reset()
    in_flight.failure()
    fail(breaker, 4)
    assert breaker.state is BreakerState.CLOSED


# -- listeners and waiting -------------------------------------------------------------------
def test_subscribers_see_every_transition(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    seen: list[tuple[str, str]] = []
    unsubscribe = breaker.subscribe(lambda a, b: seen.append((a.name, b.name)))
    to_half_open(breaker, clock).success()
    breaker.admit().success()
    unsubscribe()
    breaker.force_open("auth")
    assert seen == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]


def test_a_failing_subscriber_does_not_wedge_the_breaker(breaker: CircuitBreaker) -> None:
    def broken(_a: BreakerState, _b: BreakerState) -> None:
        raise ValueError("listener bug")

    breaker.subscribe(broken)
    open_breaker(breaker)
    assert gauge() == 2


async def test_wait_admissible_wakes_when_the_open_timeout_passes(
        breaker: CircuitBreaker, clock: VirtualClock) -> None:
    open_breaker(breaker)
    waiter = asyncio.create_task(breaker.wait_admissible())
    await clock.settle()
    clock.advance(59.0)
    await clock.settle()
    assert not waiter.done()
    clock.advance(1.0)
    await clock.settle()
    assert waiter.done()
    breaker.admit()


async def test_wait_admissible_on_auth_waits_for_the_reset(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    breaker.force_open("auth")
    waiter = asyncio.create_task(breaker.wait_admissible())
    await clock.settle()
    clock.advance(600.0)
    await clock.settle()
    assert not waiter.done()
    breaker.reset()
    await clock.settle()
    assert waiter.done()


# -- registry and metrics labels -------------------------------------------------------------
def test_registry_holds_one_breaker_per_provider_with_the_designed_names(clock: VirtualClock) -> None:
    registry = BreakerRegistry(clock, BreakerPolicy(failure_threshold=2))
    assert registry.get("openai") is registry.get("openai")
    names = {p: registry.get(p).name for p in ("gemini", "openai", "deepgram")}
    assert names == {"gemini": "gemini_provider", "openai": "openai_provider", "deepgram": "deepgram_stt"}
    assert len(registry.all()) == 3
    assert metrics.sample("circuit_breaker_state", {"name": "deepgram_stt", "provider": "deepgram"}) == 0
    fail(registry.get("deepgram"), 2)
    assert registry.get("deepgram").state is BreakerState.OPEN
    assert registry.get("openai").state is BreakerState.CLOSED
