"""The link runner with the Deepgram Voice Agent adapter, in virtual time over real sockets to the fake
agent: KeepAlive after exactly 5 s without audio, and a reconnect that re-sends Settings with the
conversation restored in `agent.context.messages`; the agent's breaker is its own (`deepgram_agent`)."""

from __future__ import annotations

import pytest

from audio.formats import PCM16_16K
from gateway.breaker import BreakerRegistry, CircuitBreaker
from gateway.clock import VirtualClock
from gateway.events import AssistantTurn, ConnectionReconnected, ConnectionReconnecting, UserTurn
from gateway.link import LinkState, ProviderLink
from gateway.provider_socket import ProviderConnector
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from gateway.session_config import SessionConfig
from providers.deepgram_agent import DeepgramAgentAdapter
from providers.deepgram_agent_wire import AgentEndpoint
from providers.fakes.deepgram_agent import FakeDeepgramAgent
from tests.test_link_schedule import Sink, chunk, drive, until

pytestmark = pytest.mark.timeout(30)
KEY = "dgFAKE-deepgram-key-1a2b3c4d5e6f"


@pytest.fixture
async def connector():  # noqa: ANN201
    c = ProviderConnector()
    yield c
    await c.close()


def agent_link(fake: FakeDeepgramAgent, clock: VirtualClock, sink: Sink, connector: ProviderConnector,
               history: list) -> ProviderLink:  # type: ignore[type-arg]
    cfg = SessionConfig(provider="deepgram_agent", input_format=PCM16_16K)
    endpoint = AgentEndpoint(base_url=fake.url, api_key=KEY)
    return ProviderLink(provider="deepgram_agent", adapter_factory=lambda: DeepgramAgentAdapter(cfg, endpoint),
                        breaker=CircuitBreaker("deepgram_agent", clock=clock), connector=connector, clock=clock,
                        policy=ReconnectPolicy(), replay=ReplayBuffer(), sink=sink, history=lambda: list(history),
                        session_id="t")


async def test_agent_gets_keepalive_after_5_s_without_audio_and_not_before(connector: ProviderConnector) -> None:
    clock = VirtualClock()
    async with FakeDeepgramAgent(api_key=KEY, idle_timeout_s=60) as fake:
        link = agent_link(fake, clock, Sink(clock), connector, [])
        await link.open()
        record = fake.connections[0]

        async def settled_count() -> int:
            """KeepAlives the fake got before a barrier frame sent now (frames arrive in order)."""
            await clock.settle()
            barriers = len(record.extra["prompts"])
            assert await link.send_frames(['{"type":"UpdatePrompt","prompt":"barrier"}'])
            await until(lambda: len(record.extra["prompts"]) > barriers)
            return record.extra["keepalives"]

        clock.advance(4.9)
        assert await settled_count() == 0
        await link.send_audio(chunk(0))  # audio resets the idle timer
        clock.advance(4.9)
        assert await settled_count() == 0
        clock.advance(0.2)  # 5 s since the last audio
        assert await settled_count() == 1
        clock.advance(5.0)
        assert await settled_count() == 2
        await link.close()


async def test_reconnect_resends_settings_with_the_conversation_in_context(connector: ProviderConnector) -> None:
    clock = VirtualClock()
    sink = Sink(clock)
    record: list = []  # type: ignore[type-arg] - the call's conversation record, read by the link
    async with FakeDeepgramAgent(api_key=KEY, idle_timeout_s=60) as fake:
        link = agent_link(fake, clock, sink, connector, record)
        await link.open()
        record += [UserTurn("12"), AssistantTurn("12")]  # the conversation grew during the call
        await fake.cut()
        await drive(clock, lambda: any(isinstance(e, ConnectionReconnected) for _, e in sink.client))
        # the schedule itself is tested in test_link_schedule; here: one attempt, after the first backoff
        assert [(e.attempt, e.backoff_delay) for _, e in sink.client if isinstance(e, ConnectionReconnecting)] == [(1, 1.0)]
        assert [e.attempts for _, e in sink.client if isinstance(e, ConnectionReconnected)] == [1]
        assert link.state is LinkState.UP and len(fake.connections) == 2
        assert fake.connections[0].items == []
        assert fake.connections[1].items == [{"type": "History", "role": "user", "content": "12"},
                                             {"type": "History", "role": "assistant", "content": "12"}]
        await link.close()


def test_the_agent_has_its_own_breaker_name() -> None:
    registry = BreakerRegistry(VirtualClock())
    assert registry.get("deepgram_agent").name == "deepgram_agent"
    assert registry.get("deepgram").name == "deepgram_stt"
