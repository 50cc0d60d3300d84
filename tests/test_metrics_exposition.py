"""GET /metrics against docs/metrics.md (issue 7): every metric of the table, its type, its exact label
names, its buckets, and values that follow from a scenario driven over real sockets (harness).

Metrics are process-global, so values are read before and after each step and the deltas asserted.
The exact 60 s breaker timeout is checked in virtual time in tests/test_breaker.py; here the breaker
policy has a short open timeout so the whole CLOSED → OPEN → HALF_OPEN → CLOSED cycle runs in wall time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Callable

import aiohttp
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from audio.dtmf import detect_dtmf
from audio.formats import PCM16_16K, PCM16_24K
from gateway import metrics
from gateway.breaker import BreakerPolicy
from gateway.errors import CircuitOpen
from providers.fakes.common import Fault, FaultScript
from providers.registry import BREAKER_NAMES, PROVIDER_NAMES
from tests.harness import FAST_RECONNECT, Gateway, VoiceClient, dtmf_utterance

pytestmark = pytest.mark.timeout(30)

PROVIDERS = ("gemini", "openai", "deepgram", "openai_live")  # the providers the harness runs
BREAKER = {"gemini": "gemini_provider", "openai": "openai_provider", "deepgram": "deepgram_stt",
           "openai_live": "openai_live_provider"}
assert all(BREAKER_NAMES[p] == name for p, name in BREAKER.items())
# docs/metrics.md, verbatim: name → (type, label names). Counters are parsed as families without `_total`.
SECTION_6: dict[str, tuple[str, frozenset[str]]] = {
    "circuit_breaker_state": ("gauge", frozenset({"name", "provider"})),
    "circuit_breaker_calls_total": ("counter", frozenset({"name", "provider", "status"})),
    "circuit_breaker_state_transitions_total": ("counter", frozenset({"name", "provider", "from_state", "to_state"})),
    "circuit_breaker_call_duration_seconds": ("histogram", frozenset({"name", "provider", "status"})),
    "ai_provider_requests_total": ("counter", frozenset({"provider", "endpoint", "status"})),
    "ai_provider_latency_seconds": ("histogram", frozenset({"provider", "endpoint"})),
    "ai_provider_errors_total": ("counter", frozenset({"provider", "error_type"})),
    "ai_provider_active_sessions": ("gauge", frozenset({"provider"})),
    "ai_provider_reconnections_total": ("counter", frozenset({"provider", "success"})),
    "ai_provider_audio_chunks_sent_total": ("counter", frozenset({"provider"})),
    "ai_provider_audio_chunks_received_total": ("counter", frozenset({"provider"})),
    "deepgram_audio_buffer_size": ("gauge", frozenset()),
    "voice_gateway_replay_buffer_chunks": ("gauge", frozenset({"provider"})),
    "voice_gateway_provider_switches_total": ("counter", frozenset({"from", "to", "reason"})),
    "voice_gateway_sessions_active": ("gauge", frozenset({"client"})),
    "voice_gateway_added_latency_seconds": ("histogram", frozenset({"direction"})),
}


class ChainBreakerNames(frozenset):
    """The live breaker names, plus one-shot chain breakers named `<provider>_<chain>` (docs/chains.md)."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or bool(
            isinstance(name, str) and re.fullmatch(r"(gemini|openai|deepgram|groq|minimax|openrouter|anthropic)_[a-z]+", name))


# bounded label values (docs/protocol.md, docs/metrics.md); anything else would be an unbounded or misspelt series
LABEL_VALUES: dict[str, frozenset[str]] = {
    "name": ChainBreakerNames(BREAKER_NAMES.values()),  # every registered provider's breaker + chain breakers
    "status": frozenset({"attempted", "success", "failure", "rejected"}),
    "from_state": frozenset({"closed", "half_open", "open"}),
    "to_state": frozenset({"closed", "half_open", "open"}),
    "error_type": frozenset({"timeout", "auth", "rate_limit", "server", "protocol", "network"}),
    "success": frozenset({"true", "false"}),
    "client": frozenset({"native", "twilio", "telnyx", "vonage"}),
    "direction": frozenset({"uplink", "downlink"}),
}
SESSION_ID_LIKE = re.compile(r"^[0-9a-f]{12,}$")
OPEN_TIMEOUT_S = 0.5  # short enough to wait for, long enough for the OPEN-state checks to run inside it
FRAME = bytes(PCM16_16K.frame_bytes(20))  # 20 ms of silence: no turn, so the replay buffer keeps it


class Exposition:
    """One scrape of GET /metrics, parsed with prometheus_client's own text parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self._values = {(s.name, frozenset(s.labels.items())): s.value
                        for f in self.families.values() for s in f.samples}

    def v(self, sample: str, /, **labels: str) -> float:
        """A sample's value; 0 when the series does not exist yet (a counter before its first event)."""
        return self._values.get((sample, frozenset(labels.items())), 0.0)

    def family(self, section6_name: str) -> Metric:
        kind, _ = SECTION_6[section6_name]
        return self.families[section6_name.removesuffix("_total") if kind == "counter" else section6_name]

    def buckets(self, histogram: str, /, **labels: str) -> dict[float, float]:
        fam = self.families[histogram]
        return {float(s.labels["le"]): s.value for s in fam.samples
                if s.name == f"{histogram}_bucket" and {k: v for k, v in s.labels.items() if k != "le"} == labels}

    def transitions(self, provider: str) -> dict[tuple[str, str], float]:
        fam = self.families["circuit_breaker_state_transitions"]
        return {(s.labels["from_state"], s.labels["to_state"]): s.value for s in fam.samples
                if s.name.endswith("_total") and s.labels["provider"] == provider}


async def scrape(gw: Gateway) -> Exposition:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.http}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return Exposition(await r.text())


def calls(provider: str, status: str) -> float:
    return metrics.sample("circuit_breaker_calls_total",
                          {"name": BREAKER[provider], "provider": provider, "status": status}) or 0.0


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Wait for an in-process condition the client cannot see (a breaker ticket settling, a fake
    server's receive count), with a deadline."""
    try:
        async with asyncio.timeout(timeout_s):
            while not cond():  # noqa: ASYNC110 - in-process state with no event to wait on
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout_s}s") from None


def transition_deltas(before: Exposition, after: Exposition, provider: str) -> dict[tuple[str, str], float]:
    old = before.transitions(provider)
    return {k: v - old.get(k, 0.0) for k, v in after.transitions(provider).items() if v - old.get(k, 0.0)}


async def end_call(c: VoiceClient) -> None:
    await c.send({"type": "session.end"})
    await c.wait_for("session.ended")


def check_section6_shape(exp: Exposition, *, session_ids: set[str], may_be_empty: set[str] = frozenset()) -> None:
    """Every metric of the table (docs/metrics.md): its type, exactly its label names, bounded label values; no session labels."""
    for name, (kind, labels) in SECTION_6.items():
        fam = exp.family(name)
        assert fam.type == kind, f"{name}: {fam.type}, the table says {kind}"
        assert fam.samples or name in may_be_empty, f"{name}: no series exposed"
        for s in fam.samples:
            names = set(s.labels) - ({"le"} if s.name.endswith("_bucket") else set())
            assert names == labels, f"{s.name}: labels {sorted(names)}, the table says {sorted(labels)}"
            for key, value in s.labels.items():
                assert value in LABEL_VALUES.get(key, {value}), f"{s.name}: {key}={value!r}"
                # groq: chain-only provider (transcription chain, docs/chains.md)
                assert key != "provider" or value in (*PROVIDER_NAMES, "groq", "minimax", "openrouter", "anthropic"), \
                    f"{s.name}: provider={value!r}"
    # no per-session label anywhere in the exposition, §6 or not
    for fam in exp.families.values():
        for s in fam.samples:
            assert not {"session", "session_id", "call_id"} & set(s.labels), s.name
            assert not session_ids & set(s.labels.values()), s.name
            assert not any(SESSION_ID_LIKE.match(v) for v in s.labels.values()), (s.name, s.labels)
    assert not any(sid in exp.text for sid in session_ids)


# -- names, types, labels, buckets ---------------------------------------------------------------
async def test_every_section6_metric_has_its_type_labels_and_buckets() -> None:
    async with Gateway() as gw:
        async with gw.client() as c:
            started = await c.start("gemini", input_format=PCM16_16K, output_format=PCM16_24K)
            frames = await c.send_audio(dtmf_utterance("5", PCM16_16K), PCM16_16K)
            await c.wait_for("turn.completed", lambda e: e["role"] == "assistant")
            assert "5" in "".join(d.digit for d in detect_dtmf(bytes(c.audio), 24000))
            mid = await scrape(gw)
            await end_call(c)
        exp = await scrape(gw)

    # transitions are born at the first one (the scenario below checks them); the rest exist by now
    check_section6_shape(exp, session_ids={started["session_id"]},
                         may_be_empty={"circuit_breaker_state_transitions_total"})

    gemini = {"name": "gemini_provider", "provider": "gemini"}
    assert exp.buckets("circuit_breaker_call_duration_seconds", **gemini, status="success").keys() == {
        0.1, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf}
    for direction in ("uplink", "downlink"):
        bounds = exp.buckets("voice_gateway_added_latency_seconds", direction=direction)
        assert sum(1 for b in bounds if b < 0.001) >= 3, f"{direction}: no sub-ms resolution: {sorted(bounds)}"
        assert bounds[math.inf] == exp.v("voice_gateway_added_latency_seconds_count", direction=direction)
    # this call fed them: every frame sent up, and the provider frames that came back down
    uplink = mid.v("voice_gateway_added_latency_seconds_count", direction="uplink")
    assert uplink >= frames
    assert mid.v("voice_gateway_added_latency_seconds_count", direction="downlink") > 0
    assert mid.v("ai_provider_audio_chunks_received_total", provider="gemini") > 0
    assert exp.v("ai_provider_latency_seconds_count", provider="gemini", endpoint="first_audio") >= 1
    assert exp.v("ai_provider_latency_seconds_count", provider="gemini", endpoint="connect") >= 1
    assert mid.v("voice_gateway_sessions_active", client="native") >= 1
    assert mid.v("ai_provider_active_sessions", provider="gemini") >= 1
    for name in BREAKER.values():
        provider = next(p for p, n in BREAKER.items() if n == name)
        assert exp.v("circuit_breaker_state", name=name, provider=provider) == 0  # all CLOSED


# -- the scenario --------------------------------------------------------------------------------
async def test_breaker_cycle_reconnects_and_switches_move_the_exposition_exactly() -> None:  # noqa: PLR0915
    policy = BreakerPolicy(open_timeout_s=OPEN_TIMEOUT_S)  # thresholds: the defaults (5 / 3 / 2)
    # a drop of a link that was up is not itself a breaker failure: only the reconnect attempts count
    reconnect = dataclasses.replace(FAST_RECONNECT, early_failure_window_s=0.0)
    async with Gateway(breaker=policy, reconnect=reconnect) as gw:
        gemini = gw.runtime.breakers.get("gemini")
        g = {"name": "gemini_provider", "provider": "gemini"}
        base = await scrape(gw)
        async with gw.client() as a:
            # 1. a call on gemini; ten frames of silence wait in its replay buffer (no finished turn)
            started = await a.start("gemini", input_format=PCM16_16K)
            await until(lambda: calls("gemini", "success") == base.v("circuit_breaker_calls_total", **g,
                                                                     status="success") + 1, "first call settled")
            for _ in range(10):
                await a.send_audio(FRAME, PCM16_16K)
            await until(lambda: gw.fakes["gemini"].connections[0].audio_chunks == 10, "gemini got 10 chunks")
            live = await scrape(gw)
            assert live.v("voice_gateway_sessions_active", client="native") - base.v(
                "voice_gateway_sessions_active", client="native") == 1
            assert live.v("ai_provider_active_sessions", provider="gemini") - base.v(
                "ai_provider_active_sessions", provider="gemini") == 1
            assert live.v("voice_gateway_replay_buffer_chunks", provider="gemini") == 10
            assert live.v("ai_provider_audio_chunks_sent_total", provider="gemini") - base.v(
                "ai_provider_audio_chunks_sent_total", provider="gemini") == 10
            assert live.v("circuit_breaker_state", **g) == 0

            # 2. gemini goes down: the live link is cut, each of the 5 reconnects is refused with 503;
            #    the fifth failure opens the breaker and the call moves to openai
            gw.fakes["gemini"].faults = FaultScript().add("*", Fault(kind="refuse", status=503))
            await gw.fakes["gemini"].cut()
            switched = await a.wait_for("provider.switched", timeout=10)
            assert (switched["from"], switched["to"], switched["reason"]) == ("gemini", "openai", "reconnect_failed")
            # Callers that arrive while OPEN are turned away by the breaker. The session layer
            # skips an OPEN provider before calling it, so over sockets a rejection only happens in a
            # race; three direct calls stand in for them (see the report on would_admit()).
            assert gemini.retry_after_s() > 0
            for _ in range(3):
                with pytest.raises(CircuitOpen):
                    gemini.admit()
            opened = await scrape(gw)

            def d(sample: str, exp: Exposition = opened, ref: Exposition = base, /, **labels: str) -> float:
                return exp.v(sample, **labels) - ref.v(sample, **labels)

            assert transition_deltas(base, opened, "gemini") == {("closed", "open"): 1}
            assert opened.v("circuit_breaker_state", **g) == 2
            assert {s: d("circuit_breaker_calls_total", **g, status=s)
                    for s in ("attempted", "success", "failure", "rejected")} == {
                "attempted": 1 + 5 + 3, "success": 1, "failure": 5, "rejected": 3}
            # every resolved call is timed; a rejected one never started
            assert {s: d("circuit_breaker_call_duration_seconds_count", **g, status=s)
                    for s in ("success", "failure", "rejected")} == {"success": 1, "failure": 5, "rejected": 0}
            fail_buckets = opened.buckets("circuit_breaker_call_duration_seconds", **g, status="failure")
            assert fail_buckets[math.inf] == opened.v("circuit_breaker_call_duration_seconds_count", **g,
                                                      status="failure")
            assert d("ai_provider_reconnections_total", provider="gemini", success="false") == 5
            assert d("ai_provider_reconnections_total", provider="gemini", success="true") == 0
            assert d("ai_provider_errors_total", provider="gemini", error_type="server") == 5  # the 503s
            assert d("ai_provider_errors_total", provider="gemini", error_type="network") == 1  # the cut
            assert d("ai_provider_requests_total", provider="gemini", endpoint="connect", status="success") == 1
            assert d("ai_provider_requests_total", provider="gemini", endpoint="connect", status="failure") == 5
            assert d("voice_gateway_provider_switches_total", **{
                "from": "gemini", "to": "openai", "reason": "reconnect_failed"}) == 1
            assert sum(s.value - base.v(s.name, **s.labels) for s in opened.family(
                "voice_gateway_provider_switches_total").samples if s.name.endswith("_total")) == 1
            assert d("ai_provider_active_sessions", provider="gemini") == 0
            assert d("ai_provider_active_sessions", provider="openai") == 1
            # the replay buffer went with the call: its ten chunks were replayed to openai
            assert opened.v("voice_gateway_replay_buffer_chunks", provider="gemini") == 0
            assert opened.v("voice_gateway_replay_buffer_chunks", provider="openai") == 10
            assert d("ai_provider_audio_chunks_sent_total", provider="openai") == 10
            for other in ("openai", "deepgram"):
                assert transition_deltas(base, opened, other) == {}

            # 3. openai's link drops once and the first reconnect repairs it
            mark = len(a.events)
            await gw.fakes["openai"].cut()
            reconnected = await a.wait_for("connection.reconnected", start=mark)
            assert reconnected["attempts"] == 1 and reconnected["replayed_audio_chunks"] == 10
            repaired = await scrape(gw)
            assert d("ai_provider_reconnections_total", repaired, opened, provider="openai", success="true") == 1
            assert d("ai_provider_reconnections_total", repaired, opened, provider="openai", success="false") == 0
            assert d("ai_provider_audio_chunks_sent_total", repaired, opened, provider="openai") == 10
            assert repaired.v("circuit_breaker_state", name="openai_provider", provider="openai") == 0

            # 4. after the open timeout gemini is back: the client's switch is the first HALF_OPEN trial
            gw.fakes["gemini"].faults = FaultScript()
            await gemini.wait_admissible()
            mark = len(a.events)
            successes = calls("gemini", "success")
            await a.send({"type": "provider.switch", "provider": "gemini"})
            back = await a.wait_for("provider.switched", start=mark)
            assert (back["from"], back["to"], back["reason"]) == ("openai", "gemini", "client")
            await until(lambda: calls("gemini", "success") == successes + 1, "trial call settled")
            half = await scrape(gw)
            assert half.v("circuit_breaker_state", **g) == 1
            assert transition_deltas(opened, half, "gemini") == {("open", "half_open"): 1}
            assert d("voice_gateway_provider_switches_total", half, repaired, **{
                "from": "openai", "to": "gemini", "reason": "client"}) == 1
            assert d("ai_provider_active_sessions", half, base, provider="gemini") == 1
            assert d("ai_provider_active_sessions", half, base, provider="openai") == 0

            # 5. a second call on gemini is the second successful trial: CLOSED again
            async with gw.client() as b:
                second = await b.start("gemini", input_format=PCM16_16K)
                assert second["provider"] == "gemini"
                await until(lambda: calls("gemini", "success") == successes + 2, "second trial settled")
                closed = await scrape(gw)
                assert closed.v("circuit_breaker_state", **g) == 0
                assert transition_deltas(half, closed, "gemini") == {("half_open", "closed"): 1}
                assert transition_deltas(base, closed, "gemini") == {
                    ("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}
                assert d("voice_gateway_sessions_active", closed, base, client="native") == 2
                assert d("ai_provider_active_sessions", closed, base, provider="gemini") == 2
                await end_call(b)
            await end_call(a)

        end = await scrape(gw)
        for p in PROVIDERS:  # every call is over: back to the baseline
            assert end.v("ai_provider_active_sessions", provider=p) == base.v("ai_provider_active_sessions", provider=p)
            assert end.v("voice_gateway_replay_buffer_chunks", provider=p) == 0
        assert end.v("voice_gateway_sessions_active", client="native") == base.v(
            "voice_gateway_sessions_active", client="native")
        assert end.v("deepgram_audio_buffer_size") == 0
        check_section6_shape(end, session_ids={started["session_id"], second["session_id"]})


async def test_deepgram_buffer_gauges_show_the_deepest_unacknowledged_replay() -> None:
    # the fake Deepgram stops reading and answering right after the upgrade: nothing is acknowledged
    stall = FaultScript().add("*", Fault(kind="stall"))
    async with Gateway(faults={"deepgram": stall}) as gw, gw.client() as deep, gw.client() as shallow, \
            gw.client() as other:
        calls_frames = ((deep, "deepgram", 7), (shallow, "deepgram", 2), (other, "gemini", 3))
        for client, provider, frames in calls_frames:
            await client.start(provider, input_format=PCM16_16K)
            for _ in range(frames):
                await client.send_audio(FRAME, PCM16_16K)
        # the read loop handles a connection's messages in order: once this error is back, every
        # frame before it is in the call's replay buffer
        for client, _, _ in calls_frames:
            await client.send({"type": "metrics.sync"})
            await client.wait_for("error", lambda e: e["code"] == "unknown_type")
        exp = await scrape(gw)
        assert exp.v("deepgram_audio_buffer_size") == 7  # the largest, not the sum
        assert exp.v("voice_gateway_replay_buffer_chunks", provider="deepgram") == 7
        assert exp.v("voice_gateway_replay_buffer_chunks", provider="gemini") == 3
        assert exp.v("voice_gateway_replay_buffer_chunks", provider="openai") == 0


async def test_event_loop_lag_metric_sees_a_loop_we_blocked() -> None:
    """A callback that blocks the loop for 0.2 s shows up as lag of at least that block (less the
    sampling interval, which the block may overlap), in `voice_gateway_event_loop_lag_seconds`."""
    import asyncio
    import time

    from gateway import metrics
    from gateway.loop_lag import LoopLagMonitor

    block_s, interval_s = 0.2, 0.01
    samples: list[float] = []
    sampled = asyncio.Event()

    def on_sample(lag: float) -> None:
        samples.append(lag)
        sampled.set()

    before = metrics.sample("voice_gateway_event_loop_lag_seconds_count") or 0.0
    before_fast = metrics.sample("voice_gateway_event_loop_lag_seconds_bucket", {"le": "0.1"}) or 0.0
    monitor = LoopLagMonitor(interval_s, on_sample=on_sample)
    monitor.start()
    try:
        await sampled.wait()  # the monitor is running; its next callback is now scheduled
        sampled.clear()
        samples.clear()
        time.sleep(block_s)  # noqa: ASYNC251 - blocking the loop on purpose: the callback cannot run
        await sampled.wait()  # the first sample after the block
        lag = samples[0]
    finally:
        monitor.stop()
    assert lag >= block_s - interval_s
    # the exposition has it too: at least one sample since we started is above the 0.1 s bucket
    count = (metrics.sample("voice_gateway_event_loop_lag_seconds_count") or 0.0) - before
    fast = (metrics.sample("voice_gateway_event_loop_lag_seconds_bucket", {"le": "0.1"}) or 0.0) - before_fast
    assert count >= 2 and count - fast >= 1
    assert not monitor.running
