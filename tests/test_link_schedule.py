"""The provider link's reconnect schedule and breaker calls, in virtual time over real sockets.

The fake Gemini server runs for real on 127.0.0.1; only the link's clock is virtual, so the 1, 2,
4, 8, 16 s schedule is checked exactly without waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from audio.formats import PCM16_16K, AudioChunk
from gateway.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from gateway.clock import VirtualClock
from gateway.events import ConnectionFailed, ConnectionReconnected, ConnectionReconnecting
from gateway.link import LinkState, ProviderLink
from gateway.provider_socket import ProviderConnector
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from gateway.session_config import SessionConfig
from providers.base import Endpoint
from providers.fakes.common import Fault, FaultScript
from providers.fakes.gemini import FakeGemini
from providers.gemini import GeminiAdapter

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def connector() -> AsyncIterator[ProviderConnector]:
    """One aiohttp-backed connector per test, closed after it (no session left for the GC)."""
    c = ProviderConnector()
    yield c
    await c.close()
KEY = "AIzaFAKE-gemini-key-7c1d2e3f4a5b"


class Sink:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.client: list[tuple[float, Any]] = []
        self.lost: list[tuple[str, Any]] = []
        self.provider_events: list[Any] = []

    async def on_provider_event(self, link: ProviderLink, event: Any) -> None:
        self.provider_events.append(event)

    def on_reply_audio_now(self, link: ProviderLink, event: Any) -> None:
        self.provider_events.append(event)

    async def on_client_event(self, link: ProviderLink, event: Any) -> None:
        self.client.append((self.clock.now(), event))

    async def on_link_lost(self, link: ProviderLink, reason: str, error: Any) -> None:
        self.lost.append((reason, error))


async def drive(clock: VirtualClock, done: Callable[[], bool], *, real_timeout_s: float = 10.0) -> None:
    """Let real socket I/O run; whenever it is quiet, jump virtual time to the next deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + real_timeout_s
    while not done():
        assert loop.time() < deadline, "link did not reach the expected state"
        await asyncio.sleep(0.01)
        if not done():
            clock.advance_to_next()


async def until(cond: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Wait for something that crosses a real socket (polled, with a deadline)."""
    async with asyncio.timeout(timeout_s):
        while not cond():  # noqa: ASYNC110 - the state lives in the fake server's records
            await asyncio.sleep(0.005)


def make_link(fake: FakeGemini, clock: VirtualClock, breaker: CircuitBreaker, sink: Sink,
              connector: ProviderConnector, policy: ReconnectPolicy | None = None) -> ProviderLink:
    cfg = SessionConfig(provider="gemini", input_format=PCM16_16K)
    endpoint = Endpoint(base_url=fake.url, api_key=KEY)
    return ProviderLink(provider="gemini", adapter_factory=lambda: GeminiAdapter(cfg, endpoint), breaker=breaker,
                        connector=connector, clock=clock, policy=policy or ReconnectPolicy(),
                        replay=ReplayBuffer(), sink=sink, history=list, session_id="t")


async def push(link: ProviderLink, c: AudioChunk) -> None:
    """What the call session does with each input chunk: keep it for replay, then hand it to the link."""
    link.replay.append(c, link_up=link.state is LinkState.UP)
    await link.send_audio(c)


def chunk(seq: int) -> AudioChunk:
    return AudioChunk(data=bytes(640), fmt=PCM16_16K, seq=seq, offset_s=seq * 0.02)


async def test_reconnect_waits_exactly_1_2_4_8_16_then_fails_and_opens_breaker(connector: ProviderConnector) -> None:
    faults = FaultScript().add(1, Fault(kind="drop", audio_bytes=640)).add("2-6", Fault(kind="refuse", status=503))
    clock = VirtualClock()
    breaker = CircuitBreaker("gemini", clock=clock, policy=BreakerPolicy())
    sink = Sink(clock)
    async with FakeGemini(api_key=KEY, faults=faults) as fake:
        link = make_link(fake, clock, breaker, sink, connector)
        await link.open()
        await drive(clock, lambda: link.state is LinkState.UP)
        clock.advance(10)  # the first connection has lived past the early-failure window
        await clock.settle()
        assert breaker.state is BreakerState.CLOSED
        await push(link, chunk(0))  # the fake drops the connection on this audio
        await drive(clock, lambda: bool(sink.lost))
        await link.close()

    reconnecting = [(t, e) for t, e in sink.client if isinstance(e, ConnectionReconnecting)]
    assert [e.attempt for _, e in reconnecting] == [1, 2, 3, 4, 5]
    assert [e.backoff_delay for _, e in reconnecting] == [1, 2, 4, 8, 16]
    assert all(e.max_attempts == 5 for _, e in reconnecting)
    times = [t for t, _ in reconnecting]
    # each attempt is announced when the previous one failed, i.e. exactly its delay later
    assert [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)] == [1, 2, 4, 8]
    failed = [e for _, e in sink.client if isinstance(e, ConnectionFailed)]
    assert len(failed) == 1 and failed[0].total_attempts == 5
    assert failed[0].reason.startswith("reconnect_failed")
    assert [r for r, _ in sink.lost] == ["reconnect_failed"]
    # the dropped link was up for long, so only the five attempts are failures: OPEN at the fifth
    assert breaker.state is BreakerState.OPEN
    assert len(fake.connections) == 6
    # the audio sent into the dying connection is still buffered for whoever takes the call
    assert len(link.replay) == 1


async def test_open_breaker_at_reconnect_means_no_sleep_switch_now(connector: ProviderConnector) -> None:
    faults = FaultScript().add(1, Fault(kind="drop", audio_bytes=640)).add("2-9", Fault(kind="refuse", status=503))
    clock = VirtualClock()
    breaker = CircuitBreaker("gemini", clock=clock, policy=BreakerPolicy(failure_threshold=2))
    sink = Sink(clock)
    async with FakeGemini(api_key=KEY, faults=faults) as fake:
        link = make_link(fake, clock, breaker, sink, connector)
        await link.open()
        clock.advance(10)
        await clock.settle()
        await push(link, chunk(0))
        await drive(clock, lambda: bool(sink.lost))
        await link.close()
    reconnecting = [e for _, e in sink.client if isinstance(e, ConnectionReconnecting)]
    assert [e.backoff_delay for e in reconnecting] == [1, 2]  # the breaker opened at the 2nd failure
    assert [r for r, _ in sink.lost] == ["circuit_open"]
    failed = [e for _, e in sink.client if isinstance(e, ConnectionFailed)]
    assert len(failed) == 1 and failed[0].reason.startswith("circuit_open") and failed[0].total_attempts == 2
    assert len(fake.connections) == 3  # no third attempt was made


async def test_reconnect_succeeds_and_replays_buffered_audio(connector: ProviderConnector) -> None:
    faults = FaultScript().add(1, Fault(kind="drop", audio_bytes=640)).add(2, Fault(kind="refuse", status=503))
    clock = VirtualClock()
    breaker = CircuitBreaker("gemini", clock=clock)
    sink = Sink(clock)
    async with FakeGemini(api_key=KEY, faults=faults) as fake:
        link = make_link(fake, clock, breaker, sink, connector)
        await link.open()
        clock.advance(10)
        await clock.settle()
        await push(link, chunk(0))
        await drive(clock, lambda: any(isinstance(e, ConnectionReconnecting) for _, e in sink.client))
        for i in range(1, 4):  # audio while the link is down: kept for replay
            await push(link, chunk(i))
        await drive(clock, lambda: any(isinstance(e, ConnectionReconnected) for _, e in sink.client))
        await until(lambda: fake.connections[2].audio_chunks >= 4)
        third = fake.connections[2]
        await link.close()
    done = [e for _, e in sink.client if isinstance(e, ConnectionReconnected)][0]
    assert done.attempts == 2
    assert done.replayed_audio_chunks == 4
    assert done.dropped_audio_chunks == 0
    assert third.audio_chunks == 4
    assert sink.lost == []


async def test_deepgram_gets_keepalive_after_5_s_without_audio_and_not_before(connector: ProviderConnector) -> None:
    from providers.deepgram import DeepgramAdapter
    from providers.fakes.deepgram import FakeDeepgram

    key = "dgFAKE-deepgram-key-1a2b3c4d5e6f"
    clock = VirtualClock()
    sink = Sink(clock)
    async with FakeDeepgram(api_key=key) as fake:
        cfg = SessionConfig(provider="deepgram", input_format=PCM16_16K)
        endpoint = Endpoint(base_url=fake.url, api_key=key)
        link = ProviderLink(provider="deepgram", adapter_factory=lambda: DeepgramAdapter(cfg, endpoint),
                            breaker=CircuitBreaker("deepgram", clock=clock), connector=connector,
                            clock=clock, policy=ReconnectPolicy(), replay=ReplayBuffer(), sink=sink,
                            history=list, session_id="t")
        await link.open()
        record = fake.connections[0]

        def keepalives() -> int:
            return sum(1 for m in record.messages if isinstance(m, dict) and m.get("type") == "KeepAlive")

        async def settled_count() -> int:
            """Keepalives the fake got before a barrier frame sent now (frames arrive in order)."""
            await clock.settle()
            barriers = sum(1 for m in record.messages if isinstance(m, dict) and m.get("type") == "Finalize")
            assert await link.send_frames(['{"type":"Finalize"}'])
            await until(lambda: sum(1 for m in record.messages
                                    if isinstance(m, dict) and m.get("type") == "Finalize") > barriers)
            return keepalives()

        clock.advance(4.9)
        assert await settled_count() == 0
        await push(link, chunk(0))  # audio resets the idle timer
        clock.advance(4.9)
        assert await settled_count() == 0
        clock.advance(0.2)  # 5 s since the last audio
        assert await settled_count() == 1
        clock.advance(5.0)
        assert await settled_count() == 2
        await link.close()
