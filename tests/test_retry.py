"""Reconnect policy: the audited 1, 2, 4, 8, 16 s schedule; jitter only ever lengthens a delay."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.retry import ReconnectPolicy


def test_default_schedule_is_exactly_one_to_sixteen_seconds() -> None:
    policy = ReconnectPolicy()
    assert policy.schedule() == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert [policy.delay_s(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert (policy.max_attempts, policy.connect_timeout_s, policy.early_failure_window_s) == (5, 10.0, 5.0)


def test_delays_are_capped_at_max_backoff() -> None:
    policy = ReconnectPolicy(max_attempts=7, initial_backoff_s=2.0)
    assert policy.schedule() == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0]


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy().delay_s(0)


@given(seed=st.integers(0, 2**32), jitter=st.floats(0.01, 5.0), attempt=st.integers(1, 5))
def test_jitter_never_shortens_and_stays_within_bound(seed: int, jitter: float, attempt: int) -> None:
    policy = ReconnectPolicy(jitter_s=jitter)
    base = ReconnectPolicy().delay_s(attempt)
    delay = policy.delay_s(attempt, random.Random(seed))
    assert base <= delay <= base + jitter
    assert policy.schedule() == [1.0, 2.0, 4.0, 8.0, 16.0]  # the floor the audit checks


def test_jitter_actually_varies_the_delay() -> None:
    policy = ReconnectPolicy(jitter_s=1.0)
    rng = random.Random(7)
    delays = {policy.delay_s(3, rng) for _ in range(20)}
    assert len(delays) > 1 and min(delays) >= 4.0


def test_early_failure_window() -> None:
    policy = ReconnectPolicy()
    assert policy.is_early_failure(4.9)
    assert not policy.is_early_failure(5.0)


@pytest.mark.parametrize("bad", [
    {"max_attempts": 0}, {"initial_backoff_s": -1.0}, {"multiplier": 0.5}, {"jitter_s": -0.1},
    {"initial_backoff_s": 20.0}, {"connect_timeout_s": 0.0},
])
def test_invalid_policies_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ReconnectPolicy(**bad)
