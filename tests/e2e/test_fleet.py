"""Fleet mode end to end: a real redis-server and three real `voice-gateway serve` replicas (A, B, C),
each with its own fake Gemini and OpenAI servers (docs/fleet.md).

The module shares one fleet; the tests run in file order and the destructive ones (Redis outage,
drain, SIGKILL) come last. Registry TTL 1.5 s, heartbeat 0.25 s, breaker threshold 1, open 6 s.
"""

from __future__ import annotations

import signal
import socket
import time

import pytest
import redis
import websockets

from audio.formats import PCM16_16K
from tests.fleet_harness import Fleet, until
from tests.harness import VoiceClient, dtmf_utterance

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def fleet():
    f = Fleet()
    try:
        yield f.start()
    finally:
        f.close()


def listed(replica, sid: str) -> dict | None:
    return next((s for s in replica.sessions() if s["id"] == sid), None)


async def say(client: VoiceClient, digits: str) -> None:
    """Speak DTMF digits; the provider (any of them) transcribes them back: the call is alive."""
    start = len(client.events)
    await client.send_audio(dtmf_utterance(digits, PCM16_16K), PCM16_16K)
    await client.wait_for("transcript.final", lambda e: e["role"] == "user" and e["text"] == digits,
                          timeout=10, start=start)


async def test_a_call_on_a_is_listed_switched_and_ended_from_other_replicas(fleet) -> None:
    a, b, c = (fleet.replicas[n] for n in "ABC")
    async with VoiceClient(a.ws) as client:
        started = await client.start("gemini", input_format=PCM16_16K)
        sid = started["session_id"]
        assert started["provider"] == "gemini"
        for other in (b, c):
            row = await until(lambda o=other: listed(o, sid), what=f"call listed by {other.name}")
            assert row["replica"] == "A" and row["provider"] == "gemini" and row["client"] == "native"
        status, detail = b.request("GET", f"/admin/sessions/{sid}")  # the owner's full detail, via B
        assert status == 200 and detail["replica"] == "A" and detail["recent_events"][0]["type"] == "session.started"
        # an operator switch sent to C moves the call on A
        status, answer = c.request("POST", f"/admin/sessions/{sid}/switch", {"provider": "openai"})
        assert status == 200 and answer["ok"] and answer["replica"] == "A", answer
        switched = await client.wait_for("provider.switched")
        assert (switched["from"], switched["to"], switched["reason"]) == ("gemini", "openai", "operator")
        await say(client, "47")
        await until(lambda: (listed(b, sid) or {}).get("provider") == "openai", what="switch seen by B")
        # unknown calls: 404 on every replica
        assert c.request("POST", "/admin/sessions/nosuchcall/switch", {"provider": "openai"})[0] == 404
        assert b.request("POST", "/admin/sessions/nosuchcall/end")[0] == 404
        # a call on A ended from B
        status, answer = b.request("POST", f"/admin/sessions/{sid}/end")
        assert status == 200 and answer["replica"] == "A", answer
        ended = await client.wait_for("session.ended")
        assert ended["reason"] == "operator_hangup"
    await until(lambda: listed(c, sid) is None, what="ended call gone from C's view")


async def test_disable_on_c_reaches_every_replica_and_enable_restores(fleet) -> None:
    a, b, c = (fleet.replicas[n] for n in "ABC")
    try:
        async with VoiceClient(a.ws) as live:
            await live.start("gemini", input_format=PCM16_16K)
            status, answer = c.request("PATCH", "/admin/providers/gemini", {"status": "disabled"})
            assert status == 200 and answer["status"] == "disabled", answer
            for r in (a, b, c):
                await until(lambda r=r: r.get("/readyz")[1]["providers"]["gemini"]["status"] == "disabled",
                            what=f"gemini disabled on {r.name}")
            # the live call on A is moved away from gemini (idle: at once, a turn boundary)
            moved = await live.wait_for("provider.switched")
            assert moved["from"] == "gemini" and moved["reason"] == "operator"
            await say(live, "3")
            # new calls on A and B start on the next provider of their chain
            for r in (a, b):
                before = len(r.fakes["gemini"].connections)
                async with VoiceClient(r.ws) as fresh:
                    assert (await fresh.start("gemini", input_format=PCM16_16K))["provider"] == "openai"
                assert len(r.fakes["gemini"].connections) == before
    finally:
        status, _ = a.request("PATCH", "/admin/providers/gemini", {"status": "enabled"})
        assert status == 200
    for r in (a, b, c):
        await until(lambda r=r: r.get("/readyz")[1]["providers"]["gemini"]["status"] == "enabled",
                    what=f"gemini enabled on {r.name}")
    async with VoiceClient(b.ws) as again:
        assert (await again.start("gemini", input_format=PCM16_16K))["provider"] == "gemini"


async def test_an_owner_that_does_not_answer_gives_504(fleet) -> None:
    """A registry entry whose replica accepts TCP but never answers (a hung process): 504, not a hang."""
    c = fleet.replicas["C"]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
        try:
            client.hset("vg:call:hungcall", mapping={"id": "hungcall", "replica": "Z", "client": "native",
                                                     "replica_url": f"http://127.0.0.1:{port}", "provider": "gemini",
                                                     "state": "active", "started_at": str(time.time())})
            client.pexpire("vg:call:hungcall", 20_000)
            assert any(s["id"] == "hungcall" and s["replica"] == "Z" for s in c.sessions())
            status, body = c.request("POST", "/admin/sessions/hungcall/switch", {"provider": "openai"})
            assert status == 504 and body["error"] == "owner_timeout" and body["replica"] == "Z", body
        finally:
            client.delete("vg:call:hungcall")
            client.close()


def advisory(replica, provider: str) -> dict | None:
    return next((c.get("advisory") for c in replica.circuits(local=True) if c["provider"] == provider), None)


async def test_shared_advisory_stops_other_replicas_until_it_expires(fleet) -> None:
    a, b, c = (fleet.replicas[n] for n in "ABC")
    fleet.fakes.set_faults(a.fakes["gemini"], "*:refuse,status=503")
    try:
        async with VoiceClient(a.ws) as client:  # A sees the outage: its breaker opens on one failure
            assert (await client.start("gemini", input_format=PCM16_16K))["provider"] == "openai"
        opened_at = time.monotonic()
        for r in (b, c):
            held = await until(lambda r=r: advisory(r, "gemini"), what=f"advisory on {r.name}")
            assert held["source"] == "A"
        counts = {r.name: len(r.fakes["gemini"].connections) for r in (b, c)}
        rejected = b.metric('circuit_breaker_calls_total{name="gemini_provider",provider="gemini",status="rejected"}')
        for r in (b, c):
            async with VoiceClient(r.ws) as other:
                assert (await other.start("gemini", input_format=PCM16_16K))["provider"] == "openai"
        assert time.monotonic() - opened_at < 5.5, "too slow to test inside the advisory window"
        assert {r.name: len(r.fakes["gemini"].connections) for r in (b, c)} == counts  # not attempted
        assert b.metric('circuit_breaker_calls_total{name="gemini_provider",provider="gemini",'
                        'status="rejected"}') == rejected + 1
        # the advisory expires with A's open timeout; then B tries gemini again
        await until(lambda: advisory(b, "gemini") is None, timeout=10, what="advisory expired on B")
        async with VoiceClient(b.ws) as later:
            assert (await later.start("gemini", input_format=PCM16_16K))["provider"] == "gemini"
        assert len(b.fakes["gemini"].connections) == counts["B"] + 1
    finally:
        fleet.fakes.set_faults(a.fakes["gemini"], "")


async def test_reset_all_from_b_closes_every_breaker_everywhere(fleet) -> None:
    a, b, c = (fleet.replicas[n] for n in "ABC")
    fleet.fakes.set_faults(a.fakes["gemini"], "*:refuse,status=503")
    fleet.fakes.set_faults(c.fakes["openai"], "*:refuse,status=503")
    try:
        async with VoiceClient(a.ws) as on_a:  # A: gemini OPEN
            assert (await on_a.start("gemini", input_format=PCM16_16K))["provider"] == "openai"
        async with VoiceClient(c.ws) as on_c:  # C: openai OPEN (gemini refused by A's advisory)
            # `deepgram` is the Voice Agent where it is configured (the embedded default)
            assert (await on_c.start("openai", input_format=PCM16_16K))["provider"] == "deepgram_agent"
    finally:
        fleet.fakes.set_faults(a.fakes["gemini"], "")
        fleet.fakes.set_faults(c.fakes["openai"], "")

    def states() -> dict[tuple[str, str], tuple[str, bool]]:
        return {(row["replica"], row["provider"]): (row["state"], "advisory" in row) for row in b.circuits()}

    await until(lambda: states()[("A", "gemini")][0] == "OPEN" and states()[("C", "openai")][0] == "OPEN",
                what="breakers OPEN in the fleet view")
    status, answer = b.request("POST", "/admin/circuits/reset")
    assert status == 200 and answer["replicas_notified"] >= 3, answer
    for r in (a, b, c):
        await until(lambda r=r: all(x["state"] == "CLOSED" and "advisory" not in x for x in r.circuits(local=True)),
                    what=f"every breaker CLOSED on {r.name}")
    await until(lambda: all(v == ("CLOSED", False) for v in states().values())
                and {replica for replica, _ in states()} == {"A", "B", "C"},
                what="every breaker CLOSED in B's fleet view")
    async with VoiceClient(c.ws) as fresh:
        assert (await fresh.start("gemini", input_format=PCM16_16K))["provider"] == "gemini"


async def test_redis_outage_ends_no_call_and_calls_reregister(fleet) -> None:
    a, b = fleet.replicas["A"], fleet.replicas["B"]
    async with VoiceClient(a.ws) as client:
        sid = (await client.start("gemini", input_format=PCM16_16K))["session_id"]
        await until(lambda: listed(b, sid), what="call registered")
        errors = a.metric("voice_gateway_fleet_registry_errors_total")
        fleet.redis.stop()
        await until(lambda: a.get("/readyz")[1]["fleet"]["registry"] == "degraded", what="degraded registry")
        status, ready = a.get("/readyz")
        assert status == 200 and ready["status"] == "ready"
        await say(client, "19")  # the call goes on
        assert a.metric("voice_gateway_fleet_registry_errors_total") > errors
        assert listed(a, sid) is not None  # this replica still lists its own calls
        fleet.redis.start()  # an empty Redis on the same port
        await until(lambda: a.get("/readyz")[1]["fleet"]["registry"] == "ok", what="registry back")
        row = await until(lambda: listed(b, sid), what="call re-registered")
        assert row["replica"] == "A"
        await say(client, "8")
        assert not client.of_type("session.ended")


async def test_sigterm_drains_a_then_it_leaves_the_fleet(fleet) -> None:
    a, b = fleet.replicas["A"], fleet.replicas["B"]
    async with VoiceClient(a.ws) as client:
        sid = (await client.start("gemini", input_format=PCM16_16K))["session_id"]
        await until(lambda: listed(b, sid), what="call registered")
        a.signal(signal.SIGTERM)
        await until(lambda: b.replicas().get("A", {}).get("draining"), what="A draining in the registry")
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(a.ws)
        assert refused.value.response.status_code == 503
        async with VoiceClient(b.ws) as elsewhere:  # new calls go to the others
            assert (await elsewhere.start("gemini", input_format=PCM16_16K))["provider"] == "gemini"
        await say(client, "6")  # A's call goes on during the drain
        await client.send({"type": "session.end"})
        assert (await client.wait_for("session.ended"))["reason"] == "client_ended"
    assert a.proc.wait(timeout=15) == 0  # the drain ends as soon as A has no call
    await until(lambda: "A" not in b.replicas(), what="A gone from the registry")


async def test_sigkill_leaves_no_ghost_calls_beyond_the_ttl(fleet) -> None:
    a = fleet.restart("A")
    b = fleet.replicas["B"]
    async with VoiceClient(a.ws) as client:
        sid = (await client.start("gemini", input_format=PCM16_16K))["session_id"]
        await until(lambda: listed(b, sid), what="call registered")
        a.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await until(lambda: listed(b, sid) is None and "A" not in b.replicas(), timeout=6,
                    what="A's call gone from the fleet view")
        assert time.monotonic() - killed_at < 1.5 + 2.0  # the TTL, plus slack for a busy machine
    assert b.request("POST", f"/admin/sessions/{sid}/end")[0] == 404
