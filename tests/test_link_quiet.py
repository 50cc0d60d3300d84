"""The link's quiet watch, for protocols without turn-end events (GPT-Live), in virtual time over a
real socket: the reply is finished exactly `quiet_after_s` after the provider's last event."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from audio.dtmf import generate_dtmf
from audio.formats import PCM16_16K, AudioChunk
from gateway.breaker import BreakerPolicy, CircuitBreaker
from gateway.clock import VirtualClock
from gateway.events import ReplyAudio, Transcript, TurnCompleted
from gateway.link import LinkState, ProviderLink
from gateway.provider_socket import ProviderConnector
from gateway.replay import ReplayBuffer
from gateway.retry import ReconnectPolicy
from gateway.session_config import SessionConfig
from providers.base import Endpoint
from providers.fakes.openai_live import FakeOpenAILive
from providers.openai_live import OpenAILiveAdapter
from tests.test_link_schedule import Sink, drive, push, until

pytestmark = pytest.mark.timeout(30)
KEY = "sk-quiet-watch-test"


@contextlib.asynccontextmanager
async def live_link(clock: VirtualClock, sink: Sink) -> AsyncIterator[ProviderLink]:
    """A GPT-Live link (16 kHz caller audio) on the fake, up in virtual time."""
    connector = ProviderConnector()
    cfg = SessionConfig(provider="openai_live", input_format=PCM16_16K)
    try:
        async with FakeOpenAILive(api_key=KEY) as fake:
            endpoint = Endpoint(base_url=fake.url + "/v1", api_key=KEY)
            link = ProviderLink(provider="openai_live", adapter_factory=lambda: OpenAILiveAdapter(cfg, endpoint),
                                breaker=CircuitBreaker("openai_live", clock=clock, policy=BreakerPolicy()),
                                connector=connector, clock=clock, policy=ReconnectPolicy(), replay=ReplayBuffer(),
                                sink=sink, history=list, session_id="q")
            await link.open()
            await drive(clock, lambda: link.state is LinkState.UP)
            yield link
    finally:
        await connector.close()


async def test_reply_completes_exactly_when_the_provider_has_been_quiet() -> None:
    clock = VirtualClock()
    sink = Sink(clock)
    quiet = OpenAILiveAdapter.quiet_after_s
    assert quiet is not None
    async with live_link(clock, sink) as link:
        audio = generate_dtmf("12", 16000, lead_silence_ms=100, trail_silence_ms=600)
        for seq, offset in enumerate(range(0, len(audio), 640)):
            await push(link, AudioChunk(data=audio[offset:offset + 640], fmt=PCM16_16K, seq=seq,
                                        offset_s=seq * 0.02))

        def said() -> list[Transcript]:
            return [e for e in sink.provider_events if isinstance(e, Transcript) and e.role == "assistant"]

        await until(lambda: len(said()) == 2 and any(isinstance(e, ReplyAudio) for e in sink.provider_events))
        await clock.settle()
        last_event_at = clock.now()  # nothing moved virtual time while the reply arrived
        clock.advance(quiet - 0.01)
        await clock.settle()
        assert not any(isinstance(e, TurnCompleted) for e in sink.provider_events)
        clock.advance(0.01)
        await clock.settle()
        assert clock.now() - last_event_at == pytest.approx(quiet)
        assert sink.provider_events[-2:] == [Transcript(role="assistant", text="12", final=True),
                                             TurnCompleted(role="assistant")]
        user = [e for e in sink.provider_events if isinstance(e, Transcript) and e.role == "user" and e.final]
        assert [u.text for u in user] == ["12"]
        await link.close()


async def test_a_pause_in_the_callers_audio_does_not_cut_their_word_in_two() -> None:
    """The caller's audio stops for 2 s in the middle of "12" (a network hiccup, a starved client):
    the provider has said nothing for longer than `quiet_after_s`, but it has had no new audio either,
    so the caller's turn is not over. Found by the chaos run: words heard as "867" + "4"."""
    clock = VirtualClock()
    sink = Sink(clock)
    async with live_link(clock, sink) as link:
        audio = generate_dtmf("12", 16000, lead_silence_ms=100, trail_silence_ms=600)
        frames = [audio[i:i + 640] for i in range(0, len(audio), 640)]

        def user(final: bool) -> list[str]:
            return [e.text for e in sink.provider_events
                    if isinstance(e, Transcript) and e.role == "user" and e.final is final]

        for seq in range(13):  # the lead, tone "1" and half the gap after it
            await push(link, AudioChunk(data=frames[seq], fmt=PCM16_16K, seq=seq, offset_s=seq * 0.02))
        await until(lambda: user(False) == ["1"])
        await clock.settle()
        clock.advance(2.0)  # no audio for 2 s
        await clock.settle()
        assert user(True) == []
        for seq in range(13, len(frames)):
            await push(link, AudioChunk(data=frames[seq], fmt=PCM16_16K, seq=seq, offset_s=seq * 0.02))
        await until(lambda: len(user(True)) == 1)
        assert user(True) == ["12"]
        await link.close()
