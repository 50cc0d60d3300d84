"""Client → gateway → fake provider → gateway → client, over real sockets, with the DTMF dialect."""

from __future__ import annotations

import pytest

from audio.dtmf import detect_dtmf
from audio.formats import PCM16_16K, PCM16_24K
from tests.harness import Gateway, dtmf_utterance

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("provider", ["gemini", "openai"])
async def test_dtmf_round_trip_speech_to_speech(provider: str) -> None:
    async with Gateway() as gw, gw.client() as c:
        started = await c.start(provider, input_format=PCM16_16K, output_format=PCM16_24K)
        assert started["provider"] == provider
        assert started["capabilities"]["audio_output"] is True
        await c.send_audio(dtmf_utterance("1234", PCM16_16K), PCM16_16K)
        final = await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        assert final["text"] == "1234"
        await c.wait_for("turn.completed", lambda e: e["role"] == "assistant")
        heard = "".join(d.digit for d in detect_dtmf(bytes(c.audio), 24000))
        assert heard == "1234"
        fake = gw.fakes[provider]
        assert fake.connections[0].digits == "1234"


async def test_dtmf_transcript_deepgram() -> None:
    async with Gateway() as gw, gw.client() as c:
        started = await c.start("deepgram", input_format=PCM16_16K)
        assert started["capabilities"]["audio_output"] is False
        await c.send_audio(dtmf_utterance("5678", PCM16_16K), PCM16_16K)
        final = await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        assert final["text"] == "5678"
        assert final["end"] > final["start"] >= 0
