"""Fleet mode's pieces without sockets: its settings (parsed once, the Redis password masked) and the
shared breaker advisory in virtual time (refuses, counts `rejected`, leaves the state alone, expires)."""

from __future__ import annotations

import asyncio

import pytest

from gateway import metrics
from gateway.breaker import BreakerState, CircuitBreaker
from gateway.clock import VirtualClock
from gateway.config import load_settings
from gateway.config_check import unknown_variables
from gateway.errors import CircuitOpen, ConfigError
from gateway.logs import MASK, redact

LABELS = {"name": "openai_provider", "provider": "openai"}


def rejected() -> float:
    return metrics.sample("circuit_breaker_calls_total", {**LABELS, "status": "rejected"}) or 0.0


def test_fleet_mode_is_off_without_redis_url() -> None:
    fleet = load_settings({}).fleet
    assert not fleet.enabled and not fleet.shared_breaker_advisories
    assert fleet.replica_id  # hostname-pid by default


def test_fleet_settings_parse_and_mask_the_redis_password() -> None:
    env = {"VG_REDIS_URL": "redis://:s3cret-pw@redis.internal:6380/2", "VG_REPLICA_ID": "gw-1",
           "VG_REPLICA_URL": "http://10.0.0.7:8080/", "VG_FLEET_TTL_S": "9", "VG_SHARED_BREAKER_ADVISORIES": "1"}
    settings = load_settings(env)
    fleet = settings.fleet
    assert fleet.enabled and fleet.replica_id == "gw-1" and fleet.replica_url == "http://10.0.0.7:8080"
    assert fleet.ttl_s == 9 and fleet.heartbeat_s == 3 and fleet.shared_breaker_advisories
    public = settings.to_public_dict()["fleet"]
    assert public["redis_url"] == MASK and "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in redact("connecting to redis with s3cret-pw")
    assert unknown_variables(env) == []


@pytest.mark.parametrize(("env", "names"), [
    ({"VG_REDIS_URL": "http://redis:6379"}, "VG_REDIS_URL"),
    ({"VG_REDIS_URL": "redis://r", "VG_REPLICA_URL": "redis://x"}, "VG_REPLICA_URL"),
    ({"VG_REDIS_URL": "redis://r", "VG_FLEET_TTL_S": "2", "VG_FLEET_HEARTBEAT_S": "2"}, "VG_FLEET_HEARTBEAT_S"),
    ({"VG_SHARED_BREAKER_ADVISORIES": "maybe"}, "VG_SHARED_BREAKER_ADVISORIES"),
])
def test_bad_fleet_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert names in err.value.message


async def test_an_advisory_refuses_new_calls_until_it_expires_without_moving_the_state() -> None:
    clock = VirtualClock()
    breaker = CircuitBreaker("openai", clock=clock)
    breaker.advise_open(60.0, "replica-a")
    before = rejected()
    assert not breaker.would_admit() and breaker.retry_after_s() == pytest.approx(60.0)
    with pytest.raises(CircuitOpen) as refused:
        breaker.admit()
    assert "OPEN on replica replica-a (shared advisory)" in str(refused.value)
    assert rejected() == before + 1
    assert breaker.state is BreakerState.CLOSED and breaker.snapshot()["advisory"]["source"] == "replica-a"
    waiter = asyncio.ensure_future(breaker.wait_admissible())
    clock.advance(59.0)
    await clock.settle()
    assert not waiter.done() and not breaker.would_admit()
    clock.advance(1.0)
    await clock.settle()
    assert waiter.done()
    assert breaker.would_admit() and "advisory" not in breaker.snapshot()
    breaker.admit().success()


async def test_reset_clears_an_advisory() -> None:
    breaker = CircuitBreaker("openai", clock=VirtualClock())
    breaker.advise_open(60.0, "replica-a")
    breaker.reset()
    assert breaker.would_admit() and breaker.advisory_source is None
