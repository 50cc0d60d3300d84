"""GPT-Live (`openai_live`) through the gateway, over real sockets, with the DTMF dialect: a native
call and a Twilio call hear the reply digits and get transcripts; a tool call round trip (Responses
delegation) and a typed turn; barge-in; a cut mid-utterance loses and duplicates no word; switches
OpenAI Realtime → GPT-Live and GPT-Live → Gemini carry the conversation.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from audio.dtmf import detect_dtmf
from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K
from providers.fakes.common import Fault, FaultScript
from tests.e2e.test_telephony import converse, digits_in_pcm16k
from tests.harness import Gateway, VoiceClient, dtmf_utterance
from tests.telephony_clients import FakeTelnyxCaller, FakeTwilioCaller, FakeVonageCaller

pytestmark = pytest.mark.timeout(40)
SILENCE_1S = bytes(32000)  # PCM16 16 kHz
LOOKUP = {"name": "lookup", "description": "look up digits",
          "parameters": {"type": "object", "properties": {"digits": {"type": "string"}}}}


def heard(audio: bytes, rate_hz: int = 24000) -> str:
    return "".join(d.digit for d in detect_dtmf(audio, rate_hz))


def count(c: VoiceClient, kind: str, role: str) -> int:
    return len([e for e in c.events if e["type"] == kind and e.get("role") == role])


async def speak_turn(c: VoiceClient, digits: str) -> None:
    """One user turn and the assistant's whole answer (GPT-Live marks no turn ends: the gateway ends
    the reply once the provider has been quiet)."""
    users, replies = count(c, "transcript.final", "user"), count(c, "turn.completed", "assistant")
    await c.send_audio(dtmf_utterance(digits, PCM16_16K), PCM16_16K)
    await c.wait_until(lambda: count(c, "transcript.final", "user") > users, what=f"final for {digits}")
    await c.send_audio(SILENCE_1S, PCM16_16K)  # the reply's time on the session timeline passes
    await c.wait_until(lambda: count(c, "turn.completed", "assistant") > replies, what="assistant turn")


async def test_native_call_hears_digits_and_gets_transcripts() -> None:
    async with Gateway(fake_kwargs={"openai_live": {"usage_every_s": 1.0}}) as gw, gw.client() as c:
        started = await c.start("openai_live", input_format=PCM16_16K, output_format=PCM16_24K,
                                instructions="Answer in digits.", voice="cedar")
        assert started["provider"] == "openai_live" and started["capabilities"]["audio_output"] is True
        await speak_turn(c, "1234")
        user = c.of_type("transcript.final")[0]
        assert (user["role"], user["text"]) == ("user", "1234") and user["end"] > user["start"] >= 0
        assistant = [e for e in c.of_type("transcript.final") if e["role"] == "assistant"]
        assert [e["text"] for e in assistant] == ["1234"]
        assert heard(bytes(c.audio)) == "1234"
        record = gw.fakes["openai_live"].connections[0]
        assert record.path == "/v1/live/sessions" and record.digits == "1234"
        assert record.setup is not None and record.setup["audio"] == {
            "format": {"type": "audio/pcm", "rate": 16000}, "output": {"voice": "cedar"}}
        assert record.setup["instructions"] == "Answer in digits." and "delegation" not in record.setup
        assert not c.of_type("error")
        await c.send({"type": "session.end"})
        ended = await c.wait_for("session.ended")
        assert ended["totals"]["provider_billed_s"] >= 1  # session.usage.updated, billed by duration


async def test_tool_call_round_trip_and_typed_turn() -> None:
    async with Gateway() as gw, gw.client() as c:
        await c.start("openai_live", input_format=PCM16_16K, output_format=PCM16_24K, tools=[LOOKUP])
        record = gw.fakes["openai_live"].connections[0]
        assert record.setup is not None and record.setup["delegation"]["type"] == "responses"
        await c.send_audio(dtmf_utterance("7#", PCM16_16K), PCM16_16K)
        call = await c.wait_for("tool.call")
        assert (call["name"], call["arguments"]) == ("lookup", {"digits": "7"})
        await c.send({"type": "tool.result", "call_id": call["call_id"], "output": '{"found": "7"}'})
        await c.wait_for("transcript.final", lambda e: e["role"] == "assistant" and e["text"] == "7")
        assert record.extra["tool_outputs"] == ['{"found": "7"}']
        before = len(c.audio)
        await c.send({"type": "text", "text": "36"})
        await c.wait_for("transcript.final", lambda e: e["role"] == "assistant" and e["text"] == "36")
        assert heard(bytes(c.audio[before:])) == "36"
        typed = [m for m in record.messages if isinstance(m, dict) and m.get("type") == "session.instructions.append"]
        assert len(typed) == 1 and typed[0]["content"].endswith("36") and typed[0]["delegation_id"] is None


async def test_caller_speaking_over_the_reply_interrupts_it() -> None:
    async with Gateway() as gw, gw.client() as c:
        await c.start("openai_live", input_format=PCM16_16K)
        # "9" starts 200 ms after "12345678" ended: inside the 1.6 s reply on the session timeline
        audio = dtmf_utterance("12345678", PCM16_16K, trail_ms=600) + dtmf_utterance("9", PCM16_16K)
        await c.send_audio(audio, PCM16_16K)
        await c.wait_for("turn.interrupted")
        await c.wait_until(lambda: c.user_finals() == "123456789", what="both user turns")
        assert gw.fakes["openai_live"].connections[0].extra["interruptions"] == 1


@pytest.mark.parametrize("kind", ["drop", "close1011"])
async def test_cut_mid_utterance_loses_and_duplicates_no_word(kind: str) -> None:
    # decoded bytes at 16 kHz: the turn "56" and its second of silence, then 0.5 s into "1234"
    mid = len(dtmf_utterance("56", PCM16_16K)) + len(SILENCE_1S) + 16000
    fault = Fault(kind="drop", audio_bytes=mid) if kind == "drop" else \
        Fault(kind="close", code=1011, reason="Internal error occurred.", audio_bytes=mid)
    async with Gateway(faults={"openai_live": FaultScript().add(1, fault)}, fallback=("openai_live",)) as gw, \
            gw.client() as c:
        await c.start("openai_live", input_format=PCM16_16K)
        await speak_turn(c, "56")  # a finished turn before the cut: acknowledged, not replayed
        await c.send_audio(dtmf_utterance("1234", PCM16_16K), PCM16_16K)
        await c.wait_until(lambda: c.user_finals() == "561234", what="every word once", timeout=10)
        reconnected = c.of_type("connection.reconnected")
        # the words came back from the replay; what overflowed the 100-chunk window while the link was
        # down (the client sends faster than real time) was the unacknowledged silence after "56"
        assert len(reconnected) == 1 and reconnected[0]["replayed_audio_chunks"] > 0
        await c.send_audio(SILENCE_1S, PCM16_16K)
        await c.wait_until(lambda: count(c, "turn.completed", "assistant") >= 2, what="reply after the cut")
        assert c.user_finals() == "561234"
        fake = gw.fakes["openai_live"]
        assert len(fake.connections) == 2 and fake.connections[1].digits == "1234"
        carried = json.dumps(fake.connections[1].items)
        assert '"56"' in carried  # the finished turn went over as startup input, not as audio


async def test_twilio_call_on_gpt_live_passes_mulaw_through() -> None:
    async with Gateway() as gw:
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "openai_live", "fallback": "openai_live"},
                                  instant_playout=True)
        async with caller:
            await caller.send_audio(dtmf_utterance("1234", MULAW_8K))
            got = ""
            for _ in range(50):  # keep the line open; reply audio is paced to the caller in real time
                got = "".join(d.digit for d in detect_dtmf(_ulaw(bytes(caller.received_audio)), 8000))
                if got == "1234":
                    break
                await caller.send_silence(200)
                with contextlib.suppress(TimeoutError):
                    await caller.wait_until(lambda c: len(c.received_audio) >= 6400, timeout=0.2)
            assert got == "1234"
            record = gw.fakes["openai_live"].connections[0]
            assert record.setup is not None and record.setup["audio"]["format"] == {"type": "audio/pcmu", "rate": 8000}
            session = next(iter(gw.runtime.sessions.values()))
            assert [type(t).__name__ for t in session.conversation][:1] == ["UserTurn"]
            assert session.conversation[0].text == "1234"
            assert not caller.protocol_errors and set(caller.media_frame_sizes) == {160}


async def test_telnyx_and_vonage_calls_on_gpt_live() -> None:
    async with Gateway() as gw:
        telnyx = FakeTelnyxCaller(gw.url + "/v1/telnyx", {"provider": "openai_live"}, instant_playout=True)
        async with telnyx:
            await telnyx.send_audio(dtmf_utterance("86", MULAW_8K))
            assert await converse(telnyx, "86") == "86"
            assert not telnyx.protocol_errors
            await telnyx.hangup()
        vonage = FakeVonageCaller(gw.url + "/v1/vonage", {"provider": "openai_live"}, sample_rate=16000,
                                  instant_playout=True)
        async with vonage:
            await vonage.send_audio(dtmf_utterance("31", PCM16_16K))
            assert await converse(vonage, "31", digits_in_pcm16k) == "31"
            assert not vonage.protocol_errors
            await vonage.hangup()
        first, second = gw.fakes["openai_live"].connections[:2]
        assert first.setup is not None and first.setup["audio"]["format"] == {"type": "audio/pcmu", "rate": 8000}
        assert second.setup is not None and second.setup["audio"]["format"] == {"type": "audio/pcm", "rate": 16000}


def _ulaw(data: bytes) -> bytes:
    from audio.g711 import ulaw_decode

    return ulaw_decode(data)


async def test_switch_openai_realtime_to_gpt_live_carries_the_conversation() -> None:
    async with Gateway(fallback=("openai", "openai_live")) as gw, gw.client() as c:
        await c.start("openai", input_format=PCM16_16K, fallback=["openai", "openai_live"])
        await speak_turn(c, "12")
        await c.send({"type": "provider.switch", "provider": "openai_live"})
        switched = await c.wait_for("provider.switched")
        assert (switched["from"], switched["to"], switched["carried_turns"]) == ("openai", "openai_live", 2)
        before = len(c.audio)
        await speak_turn(c, "34")
        assert c.user_finals() == "1234"
        assert heard(bytes(c.audio[before:])) == "34"
        live = gw.fakes["openai_live"].connections[0]
        assert [(i["role"], i["content"][0]["text"]) for i in live.items] == [("user", "12"), ("assistant", "12")]


async def test_switch_gpt_live_to_gemini_carries_the_conversation() -> None:
    async with Gateway(fallback=("openai_live", "gemini")) as gw, gw.client() as c:
        await c.start("openai_live", input_format=PCM16_16K, fallback=["openai_live", "gemini"])
        await speak_turn(c, "56")
        await c.send({"type": "provider.switch", "provider": "gemini"})
        switched = await c.wait_for("provider.switched")
        assert (switched["from"], switched["to"], switched["carried_turns"]) == ("openai_live", "gemini", 2)
        await speak_turn(c, "78")
        assert c.user_finals() == "5678"
        carried = json.dumps(gw.fakes["gemini"].connections[0].items)
        assert "56" in carried
        closing = [m for m in gw.fakes["openai_live"].connections[0].messages
                   if isinstance(m, dict) and m.get("type") == "session.close"]
        assert closing  # the old session was closed on purpose, not dropped


async def test_wrong_key_one_attempt_breaker_open_and_the_log_names_openai_api_key(
        caplog: pytest.LogCaptureFixture) -> None:
    bad = "sk-WRONG-live-key-000000000"
    async with Gateway(keys={"openai_live": bad}, fallback=("openai_live",)) as gw, gw.client() as c:
        await c.send({"type": "session.start", "provider": "openai_live"})
        failed = await c.wait_for("connection.failed")
        assert "auth" in failed["reason"] and failed["total_attempts"] == 1
        assert gw.fakes["openai_live"].connections[0].refused == 401
        assert len(gw.fakes["openai_live"].connections) == 1  # no retry loop
        live = gw.runtime.breakers.get("openai_live").snapshot()
        assert (live["name"], live["state"], live["opened_reason"]) == ("openai_live_provider", "OPEN", "auth")
        assert gw.runtime.breakers.get("openai").snapshot()["state"] == "CLOSED"  # its own breaker
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "OPENAI_API_KEY" in text and "OPENAI_LIVE_API_KEY" not in text and bad not in text


async def test_expired_session_is_a_planned_handover_with_the_conversation_carried() -> None:
    # expire right after the first turn and its second of silence: session.closed(reason=expired)
    at = len(dtmf_utterance("24", PCM16_16K)) + len(SILENCE_1S)
    faults = FaultScript().add(1, Fault(kind="expire", audio_bytes=at))
    async with Gateway(faults={"openai_live": faults}, fallback=("openai_live",)) as gw, gw.client() as c:
        await c.start("openai_live", input_format=PCM16_16K)
        await speak_turn(c, "24")
        fake = gw.fakes["openai_live"]
        await c.wait_until(lambda: len(fake.connections) == 2, what="the successor session")
        await speak_turn(c, "68")
        assert c.user_finals() == "2468"
        assert not c.of_type("connection.reconnecting") and not c.of_type("connection.failed")
        assert [(i["role"], i["content"][0]["text"]) for i in fake.connections[1].items] == [
            ("user", "24"), ("assistant", "24")]
        assert fake.connections[1].digits == "68"
        breaker = gw.runtime.breakers.get("openai_live").snapshot()
        assert (breaker["state"], breaker["failures"]) == ("CLOSED", 0)


async def test_embedded_default_serves_gpt_live_without_a_key() -> None:
    import signal

    import aiohttp

    from tests.e2e.test_serve_process import start_gateway

    proc, port = await start_gateway({})
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as r:
            assert (await r.json())["providers"]["openai_live"]["mode"] == "simulated"
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as c:
            await c.start("openai_live", input_format=PCM16_16K, output_format=PCM16_24K)
            await speak_turn(c, "59")
            assert c.user_finals() == "59" and heard(bytes(c.audio)) == "59"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
