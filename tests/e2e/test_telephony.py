"""Phone calls through the gateway: Twilio, Telnyx and Vonage callers over real sockets.

The fake callers (tests/telephony_clients.py) play the vendor's side: 20 ms frames, marks echoed
after simulated playout, `clear` honoured. The fake providers hear the caller's DTMF digits and
answer with digits, which we decode from what the caller received.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import websockets

from audio.dtmf import detect_dtmf
from audio.formats import MULAW_8K, PCM16_16K
from audio.g711 import ulaw_decode
from tests.harness import Gateway, dtmf_utterance
from tests.telephony_clients import (
    FakeCaller,
    FakeTelnyxCaller,
    FakeTwilioCaller,
    FakeVonageCaller,
    sign_twilio,
)

pytestmark = pytest.mark.timeout(40)


def digits_in_mulaw(audio: bytes) -> str:
    return "".join(d.digit for d in detect_dtmf(ulaw_decode(audio), 8000))


def digits_in_pcm16k(audio: bytes) -> str:
    return "".join(d.digit for d in detect_dtmf(audio, 16000))


async def converse(caller: FakeCaller, expected: str, decode: Callable[[bytes], str] = digits_in_mulaw, *,
                   max_s: float = 10.0) -> str:
    """Keep the line open (200 ms of silence at a time, so stream time moves) until the caller has
    received a reply that decodes to `expected`, or `max_s` of wall time passed."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    while (got := decode(bytes(caller.received_audio))) != expected and loop.time() < deadline:
        await caller.send_silence(200)
        try:
            await caller.wait_until(lambda c: decode(bytes(c.received_audio)) == expected, timeout=0.2)
        except TimeoutError:
            pass
    return got


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_twilio_call_round_trip(provider: str) -> None:
    async with Gateway() as gw:
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": provider, "fallback": provider},
                                  instant_playout=True)
        async with caller:
            await caller.send_audio(dtmf_utterance("1234", MULAW_8K))
            await caller.send_dtmf("5")
            fake = gw.fakes[provider]
            assert await converse(caller, "1234") == "1234"
            assert fake.connections[0].digits.startswith("1234")
            assert caller.media_frame_sizes and set(caller.media_frame_sizes) == {160}
            assert not caller.protocol_errors
            assert caller.marks_received  # playback is tracked with marks
            session = next(iter(gw.runtime.sessions.values()))
            assert any(e.get("type") == "dtmf" and e.get("digit") == "5" for e in session.recent_events)
            if provider == "openai":  # μ-law straight through: no transcoding either way
                audio_cfg = fake.connections[0].setup["session"]["audio"] if "session" in (
                    fake.connections[0].setup or {}) else fake.connections[0].setup["audio"]
                assert audio_cfg["input"]["format"]["type"] == "audio/pcmu"
                assert audio_cfg["output"]["format"]["type"] == "audio/pcmu"
            await caller.hangup()
        await _until(lambda: not gw.runtime.sessions)


async def _until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    import asyncio

    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - state lives in other objects; poll briefly
            await asyncio.sleep(0.01)


async def test_twilio_barge_in_clears_and_truncates_to_what_was_heard() -> None:
    async with Gateway() as gw:
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "openai", "fallback": "openai"})
        async with caller:
            await caller.send_audio(dtmf_utterance("123456", MULAW_8K, trail_ms=500))
            # the reply (6 digits ≈ 1.2 s) starts playing; let ~0.5 s of it play, then talk over it
            await caller.wait_until(lambda c: len(c.received_audio) >= 8000 * 0.9, timeout=5)
            await caller.send_silence(500)
            await caller.send_audio(dtmf_utterance("9", MULAW_8K, trail_ms=100))
            await caller.wait_until(lambda c: c.clears >= 1, timeout=5)
            session = next(iter(gw.runtime.sessions.values()))
            fake = gw.fakes["openai"].connections[0]
            await _until(lambda: fake.extra.get("truncations"))
            cut = fake.extra["truncations"][0]
            assert 0 < cut["audio_end_ms"] < 1200
            heard = digits_in_mulaw(caller.played_audio)
            assert heard and "123456".startswith(heard) and heard != "123456"
            assistant = [i for i in session.conversation if type(i).__name__ == "AssistantTurn"]
            assert assistant and assistant[-1].text != "123456" and "123456".startswith(assistant[-1].text)


async def test_telnyx_call_round_trip() -> None:
    async with Gateway() as gw:
        caller = FakeTelnyxCaller(gw.url + "/v1/telnyx", {"provider": "gemini"}, instant_playout=True)
        async with caller:
            await caller.send_audio(dtmf_utterance("86", MULAW_8K))
            assert await converse(caller, "86") == "86"
            assert gw.fakes["gemini"].connections[0].digits.startswith("86")
            assert set(caller.media_frame_sizes) == {160} and not caller.protocol_errors
            await caller.hangup()


async def test_vonage_call_round_trip() -> None:
    fmt = PCM16_16K
    async with Gateway() as gw:
        caller = FakeVonageCaller(gw.url + "/v1/vonage", {"provider": "openai"}, sample_rate=16000,
                                  instant_playout=True)
        async with caller:
            await caller.send_audio(dtmf_utterance("31", fmt))
            assert await converse(caller, "31", digits_in_pcm16k) == "31"
            assert gw.fakes["openai"].connections[0].digits.startswith("31")
            assert set(caller.media_frame_sizes) == {640} and not caller.protocol_errors
            await caller.hangup()


async def test_twilio_signature_is_checked_before_accept() -> None:
    token = "twilio-auth-token-abc123"
    async with Gateway(twilio_auth_token=token, public_url="wss://gw.example.com") as gw:
        with pytest.raises(websockets.InvalidStatus) as e:
            async with FakeTwilioCaller(gw.url + "/v1/twilio", headers={"X-Twilio-Signature": "bad"}):
                pass
        assert e.value.response.status_code == 403
        good = sign_twilio(token, "wss://gw.example.com/v1/twilio")
        async with FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "deepgram"},
                                    headers={"X-Twilio-Signature": good}) as caller:
            await caller.send_audio(dtmf_utterance("7", MULAW_8K))
            await _until(lambda: gw.fakes["deepgram"].connections and
                         gw.fakes["deepgram"].connections[0].digits == "7")


