"""Calls on `deepgram` through the gateway land on the Deepgram Voice Agent fake and talk back, over real
sockets: reply digits decoded from the reply audio, assistant transcripts, a tool round trip, a typed
turn, the Twilio path with μ-law passed through both ways, a cut mid-utterance without loss or
duplicates, and a switch Gemini → agent with the conversation carried in the agent's Settings."""

from __future__ import annotations

import asyncio

import pytest

from audio.dtmf import detect_dtmf, generate_dtmf
from audio.formats import MULAW_8K, PCM16_16K
from audio.g711 import ulaw_decode
from gateway.events import UserTurn
from providers.fakes.common import Fault, FaultScript
from tests.e2e.test_switching import fail_provider, speak_turn
from tests.harness import Gateway, VoiceClient, dtmf_utterance
from tests.telephony_clients import FakeTelnyxCaller, FakeTwilioCaller, FakeVonageCaller

pytestmark = pytest.mark.timeout(40)
LOOKUP = {"name": "lookup", "description": "the digits to say",
          "parameters": {"type": "object", "properties": {"digits": {"type": "string"}}}}


def reply_digits(c: VoiceClient, rate_hz: int = 24000) -> str:
    return "".join(d.digit for d in detect_dtmf(bytes(c.audio), rate_hz))


def assistant_final(text: str):  # noqa: ANN201
    return lambda e: e["role"] == "assistant" and e["text"] == text


async def test_native_call_on_deepgram_hears_digits_transcripts_a_tool_round_trip_and_a_text_turn() -> None:
    async with Gateway(agent=True, fallback=("deepgram",)) as gw, gw.client() as c:
        started = await c.start("deepgram", input_format=PCM16_16K, tools=[LOOKUP])
        assert started["provider"] == "deepgram_agent"
        assert started["capabilities"] == {"audio_output": True, "transcripts": True,
                                           "assistant_transcripts": True, "tools": True}
        await c.send_audio(dtmf_utterance("12", PCM16_16K), PCM16_16K)
        await c.wait_for("transcript.final", assistant_final("12"))
        await c.wait_until(lambda: reply_digits(c) == "12", what="reply digits 12")

        await c.send_audio(dtmf_utterance("34#", PCM16_16K), PCM16_16K)
        call = await c.wait_for("tool.call")
        assert (call["name"], call["arguments"], call["provider"]) == ("lookup", {"digits": "34"}, "deepgram_agent")
        await c.send({"type": "tool.result", "call_id": call["call_id"], "output": "found"})
        await c.wait_for("transcript.final", assistant_final("34"))
        await c.wait_until(lambda: reply_digits(c) == "1234", what="reply digits after the tool")

        await c.send_audio(generate_dtmf("7", 16000, lead_silence_ms=100), PCM16_16K)  # no trailing silence...
        await c.send({"type": "audio.commit"})  # ...the client's own VAD ends the turn
        await c.wait_for("transcript.final", assistant_final("7"))
        await c.wait_until(lambda: reply_digits(c) == "12347", what="reply to the committed turn")

        await c.send({"type": "text", "text": "56"})
        await c.wait_for("transcript.final", assistant_final("56"))
        await c.wait_until(lambda: reply_digits(c) == "1234756", what="reply to the typed turn")

        assert c.user_finals() == "1234#7"  # spoken turns only; the typed one is not echoed back
        session = next(iter(gw.runtime.sessions.values()))
        assert [i.text for i in session.conversation if isinstance(i, UserTurn)] == ["12", "34#", "7", "56"]
        record = gw.fakes["deepgram_agent"].connections[0]
        assert record.setup["audio"] == {"input": {"encoding": "linear16", "sample_rate": 16000},
                                         "output": {"encoding": "linear16", "sample_rate": 24000, "container": "none"}}
        assert record.setup["agent"]["think"]["provider"]["type"] == "google"
        assert record.setup["agent"]["think"]["functions"][0]["name"] == "lookup"
        assert not gw.fakes["deepgram"].connections  # the listen-only STT was not used


async def test_transcribe_mode_keeps_the_listen_only_stt() -> None:
    async with Gateway(agent=True, fallback=("deepgram",)) as gw, gw.client() as c:
        started = await c.start("deepgram", input_format=PCM16_16K,
                                provider_options={"deepgram": {"mode": "transcribe"}})
        assert started["provider"] == "deepgram" and started["capabilities"]["audio_output"] is False
        await c.send_audio(dtmf_utterance("78", PCM16_16K), PCM16_16K)
        await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        assert c.user_finals() == "78" and not gw.fakes["deepgram_agent"].connections
        assert "mode" not in gw.fakes["deepgram"].connections[0].query  # agent options stay off /v1/listen


async def _converse(caller: FakeTwilioCaller, expected: str, *, max_s: float = 10.0, l16_hz: int = 0) -> str:
    """Keep the line open (200 ms of silence at a time) until the reply decodes to `expected`."""
    def heard() -> str:
        audio = bytes(caller.received_audio)
        pcm, rate = (audio, l16_hz) if l16_hz else (ulaw_decode(audio), 8000)
        return "".join(d.digit for d in detect_dtmf(pcm, rate))

    deadline = asyncio.get_running_loop().time() + max_s
    while heard() != expected and asyncio.get_running_loop().time() < deadline:
        await caller.send_silence(200)
        try:
            await caller.wait_until(lambda _c: heard() == expected, timeout=0.2)
        except TimeoutError:
            pass
    return heard()


async def test_twilio_call_on_deepgram_passes_mulaw_through_and_hears_the_reply() -> None:
    async with Gateway(agent=True) as gw:
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "deepgram", "fallback": "deepgram"},
                                  instant_playout=True)
        async with caller:
            await caller.send_audio(dtmf_utterance("1234", MULAW_8K))
            assert await _converse(caller, "1234") == "1234"
            record = gw.fakes["deepgram_agent"].connections[0]
            assert record.setup["audio"] == {"input": {"encoding": "mulaw", "sample_rate": 8000},
                                             "output": {"encoding": "mulaw", "sample_rate": 8000, "container": "none"}}
            assert record.digits == "1234"
            session = next(iter(gw.runtime.sessions.values()))
            assert session.provider == "deepgram_agent"
            assert any(e["type"] == "transcript.final" and e["role"] == "assistant" and e["text"] == "1234"
                       for e in session.recent_events)
            assert set(caller.media_frame_sizes) == {160} and not caller.protocol_errors
            await caller.hangup()


async def test_telnyx_and_vonage_calls_on_deepgram_hear_the_reply() -> None:
    async with Gateway(agent=True) as gw:
        async with FakeTelnyxCaller(gw.url + "/v1/telnyx", {"provider": "deepgram"}, instant_playout=True) as telnyx:
            await telnyx.send_audio(dtmf_utterance("86", MULAW_8K))
            assert await _converse(telnyx, "86") == "86"
            await telnyx.hangup()
        async with FakeVonageCaller(gw.url + "/v1/vonage", {"provider": "deepgram"}, sample_rate=16000,
                                    instant_playout=True) as vonage:
            await vonage.send_audio(dtmf_utterance("31", PCM16_16K))
            assert await _converse(vonage, "31", l16_hz=16000) == "31"
            await vonage.hangup()
        agent = gw.fakes["deepgram_agent"]
        assert [c.setup["audio"]["input"] for c in agent.connections] == [
            {"encoding": "mulaw", "sample_rate": 8000}, {"encoding": "linear16", "sample_rate": 16000}]
        assert agent.connections[1].setup["audio"]["output"]["sample_rate"] == 16000  # L16 straight through


@pytest.mark.parametrize("kind", ["drop", "close1011"])
async def test_cut_mid_utterance_loses_and_duplicates_no_word(kind: str) -> None:
    mid = 16000  # decoded bytes at 16 kHz: 0.5 s in, inside the digits "1234"
    fault = Fault(kind="drop", audio_bytes=mid) if kind == "drop" else \
        Fault(kind="close", code=1011, reason="internal", audio_bytes=mid)
    async with Gateway(agent=True, fallback=("deepgram",), faults={"deepgram_agent": FaultScript().add(1, fault)}
                       ) as gw, gw.client() as c:
        await c.start("deepgram", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("1234", PCM16_16K), PCM16_16K)
        await c.wait_for("transcript.final", assistant_final("1234"))
        reconnected = await c.wait_for("connection.reconnected")
        assert reconnected["replayed_audio_chunks"] > 0 and reconnected["dropped_audio_chunks"] == 0
        await c.send_audio(bytes(PCM16_16K.frame_bytes(20) * 40), PCM16_16K)  # room for a duplicate to show
        await c.wait_until(lambda: reply_digits(c) == "1234", what="the reply")
        fake = gw.fakes["deepgram_agent"]
        assert c.user_finals() == "1234" and len(fake.connections) == 2
        assert fake.connections[0].transcripts == [] and fake.connections[1].transcripts == ["1234"]
        assert fake.connections[1].setup["type"] == "Settings"  # Settings re-sent on the new connection


async def test_switch_from_gemini_to_the_agent_carries_the_conversation_and_keeps_talking() -> None:
    async with Gateway(agent=True, fallback=("gemini", "deepgram")) as gw, gw.client() as c:
        await c.start("gemini", input_format=PCM16_16K)
        await speak_turn(c, "12")
        await fail_provider(gw, "gemini")
        await c.send_audio(dtmf_utterance("34", PCM16_16K), PCM16_16K)
        switched = await c.wait_for("provider.switched", timeout=10)
        assert (switched["from"], switched["to"]) == ("gemini", "deepgram_agent")
        assert switched["capabilities"]["audio_output"] is True and switched["carried_turns"] == 2
        await c.wait_for("transcript.final", assistant_final("34"), timeout=10)
        agent = gw.fakes["deepgram_agent"].connections[0]
        assert agent.items == [{"type": "History", "role": "user", "content": "12"},
                               {"type": "History", "role": "assistant", "content": "12"}]
        assert agent.digits == "34"  # the replayed audio reached the agent, once
        await c.wait_until(lambda: c.user_finals() == "1234", what="the transcript across the switch")


async def test_native_barge_in_while_the_agent_speaks_interrupts_the_turn() -> None:
    async with Gateway(agent=True, fallback=("deepgram",)) as gw, gw.client() as c:
        await c.start("deepgram", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("123456789", PCM16_16K, trail_ms=400), PCM16_16K)
        await c.wait_for("transcript.final", assistant_final("123456789"))  # ≈ 1.8 s of reply audio
        await c.send_audio(dtmf_utterance("5", PCM16_16K), PCM16_16K)  # talks over it
        await c.wait_for("turn.interrupted")
        await c.wait_for("transcript.final", assistant_final("5"))
        assert gw.fakes["deepgram_agent"].connections[0].extra["barge_ins"] == 1


async def test_twilio_barge_in_on_the_agent_sends_clear_and_keeps_what_was_heard() -> None:
    async with Gateway(agent=True) as gw:
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "deepgram", "fallback": "deepgram"})
        async with caller:
            await caller.send_audio(dtmf_utterance("123456", MULAW_8K, trail_ms=500))
            # the reply (≈ 1.2 s) starts playing; let ~0.5 s of it play, then talk over it
            await caller.wait_until(lambda c: len(c.received_audio) >= 8000 * 0.9, timeout=5)
            await caller.send_silence(500)
            await caller.send_audio(dtmf_utterance("9", MULAW_8K, trail_ms=100))
            await caller.wait_until(lambda c: c.clears >= 1, timeout=5)
            session = next(iter(gw.runtime.sessions.values()))
            heard = "".join(d.digit for d in detect_dtmf(ulaw_decode(bytes(caller.played_audio)), 8000))
            assert heard and "123456".startswith(heard) and heard != "123456"
            assistant = [i for i in session.conversation if type(i).__name__ == "AssistantTurn"]
            assert assistant and "123456".startswith(assistant[0].text) and assistant[0].text != "123456"


async def test_a_wrong_deepgram_key_opens_the_agents_own_breaker_and_names_the_variable(
        caplog: pytest.LogCaptureFixture) -> None:
    bad = "dgWRONG-agent-key-000000"
    async with Gateway(agent=True, keys={"deepgram_agent": bad}, fallback=("deepgram",)) as gw, gw.client() as c:
        await c.send({"type": "session.start", "provider": "deepgram"})
        failed = await c.wait_for("connection.failed")
        assert failed["provider"] == "deepgram_agent" and "auth" in failed["reason"] and failed["total_attempts"] == 1
        snapshot = gw.runtime.breakers.get("deepgram_agent").snapshot()
        assert snapshot["state"] == "OPEN" and snapshot["name"] == "deepgram_agent"
        assert gw.runtime.breakers.get("deepgram").state.name == "CLOSED"  # the STT's breaker is its own
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "check the DEEPGRAM_API_KEY setting" in text and bad not in text
