"""Loss tests over real sockets with the DTMF dialect (issue: provider links that survive faults).

Every test speaks digits through client → gateway → fake provider and reads the user transcript
back: the words must arrive once each — 0 lost, 0 duplicated — across drops, closes, outages and
planned handovers.
"""

from __future__ import annotations

import dataclasses

import pytest

from audio.convert import convert
from audio.dtmf import generate_dtmf
from audio.formats import PCM16_16K, AudioFormat
from providers.fakes.common import Fault, FaultScript
from tests.harness import FAKE_KEYS, FAST_RECONNECT, Gateway, dtmf_utterance

pytestmark = pytest.mark.timeout(40)
PROVIDERS = ["gemini", "openai", "deepgram"]
# bytes of decoded audio each fake counts for 1 s of input (its own input rate, PCM16)
FAKE_BYTES_PER_S = {"gemini": 32000, "openai": 48000, "deepgram": 32000}


def only(provider: str) -> tuple[str, ...]:
    return (provider,)


@pytest.mark.parametrize("kind", ["drop", "close1011"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_drop_mid_utterance_loses_and_duplicates_nothing(provider: str, kind: str) -> None:
    mid = FAKE_BYTES_PER_S[provider] // 2  # 0.5 s in: inside the digits "1234"
    fault = Fault(kind="drop", audio_bytes=mid) if kind == "drop" else \
        Fault(kind="close", code=1011, reason="Internal error occurred.", audio_bytes=mid)
    async with Gateway(faults={provider: FaultScript().add(1, fault)}, fallback=only(provider)) as gw, \
            gw.client() as c:
        await c.start(provider, input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("1234", PCM16_16K), PCM16_16K)
        await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        reconnecting = c.of_type("connection.reconnecting")
        reconnected = c.of_type("connection.reconnected")
        assert [e["attempt"] for e in reconnecting] == [1]
        assert reconnecting[0]["max_attempts"] == 5 and reconnecting[0]["buffered_audio_chunks"] >= 1
        assert len(reconnected) == 1 and reconnected[0]["dropped_audio_chunks"] == 0
        assert reconnected[0]["replayed_audio_chunks"] > 0
        # a second final would be a duplicate: give the fakes time to say anything more
        await c.send_audio(bytes(PCM16_16K.frame_bytes(20) * 40), PCM16_16K)
        await c.wait_until(lambda: len(gw.fakes[provider].connections) == 2, what="second connection")
        assert c.user_finals() == "1234"
        assert len(gw.fakes[provider].connections) == 2


def _outage_audio() -> bytes:
    """151 chunks of 20 ms at 16 kHz: '12' in the first 51 chunks, '789' in the last 100."""
    head = generate_dtmf("12", 16000, lead_silence_ms=200, trail_silence_ms=1020 - 200 - 400)
    tail = generate_dtmf("789", 16000, lead_silence_ms=200, trail_silence_ms=2000 - 200 - 600)
    audio = head + tail
    assert len(audio) == 151 * 640
    return audio


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_outage_longer_than_the_replay_window_reports_exact_drops(provider: str) -> None:
    # the first connection dies on the very first chunk; the next attempt waits 0.5 s, long enough
    # for the client to send 150 more chunks into the outage
    slow = dataclasses.replace(FAST_RECONNECT, initial_backoff_s=0.5, max_backoff_s=8.0)
    faults = FaultScript().add(1, Fault(kind="drop", audio_bytes=1))
    audio = _outage_audio()
    async with Gateway(faults={provider: faults}, reconnect=slow, fallback=only(provider)) as gw, \
            gw.client() as c:
        await c.start(provider, input_format=PCM16_16K)
        await c.send_audio(audio[:640], PCM16_16K)
        await c.wait_for("connection.reconnecting")
        await c.send_audio(audio[640:], PCM16_16K)
        done = await c.wait_for("connection.reconnected", timeout=10)
        assert done["dropped_audio_chunks"] == 51  # 151 buffered, 100 kept
        assert done["replayed_audio_chunks"] == 100
        await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        assert c.user_finals() == "789"
        assert gw.fakes[provider].connections[1].audio_chunks >= 100


async def test_gemini_goaway_hands_over_without_loss_or_reconnecting() -> None:
    fault = Fault(kind="goaway", audio_bytes=FAKE_BYTES_PER_S["gemini"] // 2, time_left=5.0)
    async with Gateway(faults={"gemini": FaultScript().add(1, fault)}, fallback=only("gemini")) as gw, \
            gw.client() as c:
        await c.start("gemini", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("2468", PCM16_16K), PCM16_16K, pace_s=0.002)
        await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        await c.wait_until(lambda: len(gw.fakes["gemini"].connections) == 2, what="handover connection")
        assert c.user_finals() == "2468"
        assert not c.of_type("connection.reconnecting")
        second = gw.fakes["gemini"].connections[1]
        assert second.setup is not None
        resumption = second.setup.get("session_resumption") or second.setup.get("sessionResumption") or {}
        assert resumption.get("handle"), "the handover must resume with the newest handle"


async def test_openai_rotation_carries_the_call_without_loss() -> None:
    async with Gateway(fallback=only("openai"), openai_rotate_after_s=0.4) as gw, gw.client() as c:
        await c.start("openai", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("1357", PCM16_16K), PCM16_16K, pace_s=0.02)
        await c.wait_for("transcript.final", lambda e: e["role"] == "user", timeout=10)
        await c.wait_until(lambda: len(gw.fakes["openai"].connections) >= 2, what="rotation")
        assert c.user_finals() == "1357"
        assert not c.of_type("connection.reconnecting")


async def test_wrong_api_key_one_attempt_no_loop_and_auth_reason(caplog: pytest.LogCaptureFixture) -> None:
    bad = "AIzaWRONG-key-0000000000000"
    async with Gateway(keys={"gemini": bad}, fallback=only("gemini")) as gw, gw.client() as c:
        await c.send({"type": "session.start", "provider": "gemini"})
        failed = await c.wait_for("connection.failed")
        assert "auth" in failed["reason"] and failed["total_attempts"] == 1
        err = await c.wait_for("error", lambda e: e["code"] == "provider_unavailable")
        assert "retry_after" in err
        assert len(gw.fakes["gemini"].connections) == 1  # exactly one attempt, no loop
        circuits = gw.runtime.breakers.get("gemini").snapshot()
        assert circuits["state"] == "OPEN"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GEMINI_API_KEY" in text
    assert bad not in text


async def test_bad_client_input_gets_stable_error_codes_and_the_call_survives() -> None:
    async with Gateway(fallback=only("gemini")) as gw, gw.client() as c:
        await c.ws.send(bytes(640))  # audio before session.start
        e1 = await c.wait_for("error")
        assert e1["code"] == "session_not_started"
        await c.start("gemini", input_format=PCM16_16K)
        await c.ws.send("{not json")
        await c.wait_for("error", lambda e: e["code"] == "bad_message", start=1)
        await c.send({"type": "no.such.thing"})
        await c.wait_for("error", lambda e: e["code"] == "unknown_type")
        await c.ws.send(bytes(641))  # odd-length PCM16
        await c.wait_for("error", lambda e: e["code"] == "bad_audio")
        await c.send({"type": "audio.append", "audio": "!!!not base64"})
        await c.wait_for("error", lambda e: e["code"] == "bad_audio" and "base64" in e["message"])
        # the call and its provider link are still fine
        await c.send_audio(dtmf_utterance("42", PCM16_16K), PCM16_16K)
        final = await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        assert final["text"] == "42"
        assert len(gw.fakes["gemini"].connections) == 1


@pytest.mark.parametrize("fmt", [AudioFormat(encoding="mulaw", sample_rate_hz=8000),
                                 AudioFormat(encoding="pcm16", sample_rate_hz=24000)])
async def test_input_formats_are_converted_for_each_provider(fmt: AudioFormat) -> None:
    async with Gateway(fallback=("gemini",)) as gw, gw.client() as c:
        await c.start("gemini", input_format=fmt)
        pcm = generate_dtmf("90", 8000 if fmt.encoding == "mulaw" else fmt.sample_rate_hz,
                            lead_silence_ms=100, trail_silence_ms=600)
        src = AudioFormat(encoding="pcm16", sample_rate_hz=8000 if fmt.encoding == "mulaw" else fmt.sample_rate_hz)
        await c.send_audio(convert(pcm, src, fmt), fmt)
        final = await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        assert final["text"] == "90"




async def test_reconnect_and_replay_log_lines_carry_their_fields(caplog: pytest.LogCaptureFixture) -> None:
    import orjson

    from gateway.logs import JsonFormatter

    fault = Fault(kind="drop", audio_bytes=FAKE_BYTES_PER_S["gemini"] // 2)
    caplog.set_level("INFO")
    async with Gateway(faults={"gemini": FaultScript().add(1, fault)}, fallback=only("gemini")) as gw, \
            gw.client() as c:
        started = await c.start("gemini", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("1234", PCM16_16K), PCM16_16K)
        await c.wait_for("connection.reconnected")
    fmt = JsonFormatter()
    lines = [orjson.loads(fmt.format(r)) for r in caplog.records]
    attempt = next(x for x in lines if x["event"] == "reconnect.attempt")
    assert attempt["provider"] == "gemini" and attempt["session_id"] == started["session_id"]
    assert (attempt["attempt"], attempt["max_attempts"]) == (1, 5)
    assert attempt["backoff_delay"] == FAST_RECONNECT.base_delay_s(1)
    replayed = next(x for x in lines if x["event"] == "audio.replayed")
    assert replayed["replayed_count"] > 0 and replayed["total_count"] >= replayed["replayed_count"]
    success = next(x for x in lines if x["event"] == "reconnect.succeeded")
    assert success["session_id"] == started["session_id"] and success["replayed_count"] == replayed["replayed_count"]
    text = "\n".join(orjson.dumps(x).decode() for x in lines)
    assert FAKE_KEYS["gemini"] not in text
