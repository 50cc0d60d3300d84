"""The fleet registry keeps nothing of calls that ended, also when they lived through a Redis outage:
a call whose registry write failed (Redis down) and that ended before Redis came back must not stay
in the registry's bookkeeping for ever (one entry per such call, on every replica, for the process's
life). A real redis-server, stopped and restarted on the same port; the gateway in-process."""

from __future__ import annotations

import pytest

from audio.formats import PCM16_16K
from gateway.config import FleetSettings
from gateway.fleet.registry import FleetRegistry
from tests.fleet_harness import RedisServer, until
from tests.harness import Gateway, dtmf_utterance

pytestmark = pytest.mark.timeout(60)


def registry_of(gw: Gateway) -> FleetRegistry:
    assert gw.runtime is not None
    return next(o.__self__ for o in gw.runtime.session_observers if isinstance(o.__self__, FleetRegistry))


async def test_calls_that_ended_during_a_redis_outage_leave_no_registry_entries() -> None:
    redis = RedisServer()
    redis.start()
    try:
        fleet = FleetSettings(redis_url=redis.url, replica_id="turnover", replica_url="http://127.0.0.1:9",
                              heartbeat_s=0.2, ttl_s=2.0)
        async with Gateway(fleet=fleet) as gw:
            registry = registry_of(gw)
            await until(lambda: registry.up, what="registry up")
            redis.stop()  # the outage
            ended: list[str] = []
            for _ in range(2):
                failures = registry.failures
                async with gw.client() as c:
                    started = await c.start("gemini", input_format=PCM16_16K)
                    # the registry tried to write this call (and failed): it has seen it
                    await until(lambda f=failures: registry.failures > f, what="a failed registry write")
                    await c.send_audio(dtmf_utterance("42", PCM16_16K), PCM16_16K)
                    await c.wait_for("transcript.final", lambda e: e["role"] == "user")
                    await c.send({"type": "session.end"})
                    await c.wait_for("session.ended")
                ended.append(started["session_id"])
            await until(lambda: not gw.runtime.sessions, what="calls ended")

            redis.start()  # same port: the registry's next heartbeat succeeds
            await until(lambda: registry.up, what="registry back up")
            # a full heartbeat after recovery (the registry's own task runs them too)
            assert await registry.sync(full=True)
            assert not set(ended) & set(registry._call_started), "ended calls still in the registry's bookkeeping"
            assert not set(ended) & set(registry._written)
    finally:
        redis.stop()
