"""Opus and WebM/Opus input (audio/compressed.py, `audio.input.encoding` opus|webm): DTMF digits survive
the codec, a WebM stream decodes from arbitrary pieces, bad input is a stable `bad_audio` error that
leaves the call usable, and both round-trip through the gateway to a fake provider."""

from __future__ import annotations

import random

import pytest

from audio.compressed import OpusDecoder, WebmOpusDecoder
from audio.dtmf import detect_dtmf, generate_dtmf
from audio.errors import AudioError as BadAudio
from tests.harness import Gateway
from tests.opus_media import opus_packets, webm_stream


def digits(pcm16: bytes, rate_hz: int) -> str:
    return "".join(d.digit for d in detect_dtmf(pcm16, rate_hz))


def utterance_48k(text: str) -> bytes:
    return generate_dtmf(text, 48000, lead_silence_ms=100, trail_silence_ms=800)


@pytest.mark.parametrize("rate_hz", [16000, 24000, 48000])
def test_opus_packets_decode_to_pcm_at_the_requested_rate(rate_hz: int) -> None:
    decoder = OpusDecoder(rate_hz)
    pcm = b"".join(decoder.decode(p) for p in opus_packets(utterance_48k("159#")))
    assert digits(pcm, rate_hz) == "159#"
    assert abs(len(pcm) / 2 / rate_hz - 1.8) < 0.1  # 100 ms + 4 × 200 ms + 800 ms (+ codec delay)


def test_a_webm_stream_decodes_from_pieces_of_any_size() -> None:
    data = webm_stream(utterance_48k("2580"))
    rng = random.Random(7)
    decoder, pcm, pos = WebmOpusDecoder(16000), b"", 0
    while pos < len(data):
        step = rng.randint(1, 300)
        pcm += decoder.feed(data[pos:pos + step])
        pos += step
    assert digits(pcm, 16000) == "2580"


def test_bad_input_is_bad_audio_and_the_decoder_goes_on() -> None:
    decoder = OpusDecoder(16000)
    assert decoder.decode(b"") == b""  # no audio, no error (as an empty PCM message)
    with pytest.raises(BadAudio):
        decoder.decode(b"\xff" * 3)
    packets = opus_packets(utterance_48k("7"))
    assert b"".join(decoder.decode(p) for p in packets)  # still decodes after the refusal
    with pytest.raises(BadAudio, match="not a WebM stream"):
        WebmOpusDecoder(16000).feed(b"RIFF\x00\x00\x00\x00WAVE")


@pytest.mark.parametrize("encoding", ["opus", "webm"])
async def test_compressed_upload_round_trips_dtmf_through_the_gateway(encoding: str) -> None:
    async with Gateway() as gw, gw.client() as client:
        started = await client.start("gemini", input_format=None,
                                     audio={"input": {"encoding": encoding, "sample_rate": 16000}})
        assert started["audio.input"] == {"encoding": encoding, "sample_rate": 16000}
        pcm = utterance_48k("159#")
        if encoding == "opus":
            for packet in opus_packets(pcm):
                assert client.ws is not None
                await client.ws.send(packet)
        else:
            data = webm_stream(pcm)
            for i in range(0, len(data), 1000):  # MediaRecorder timeslices arrive as pieces like these
                assert client.ws is not None
                await client.ws.send(data[i:i + 1000])
        await client.wait_until(lambda: client.user_finals() == "159#", timeout=10, what="digits")
        await client.wait_for("turn.completed", timeout=10)
        assert digits(bytes(client.audio), 24000) == "159#"  # the fake's reply, as PCM16 24 kHz
        assert gw.fakes["gemini"].connections[0].digits == "159#"


async def test_a_bad_opus_packet_is_refused_and_the_call_goes_on() -> None:
    async with Gateway() as gw, gw.client() as client:
        await client.start("gemini", audio={"input": {"encoding": "opus"}})
        assert client.ws is not None
        await client.ws.send(b"\xff" * 3)
        error = await client.wait_for("error")
        assert error["code"] == "bad_audio"
        for packet in opus_packets(utterance_48k("3")):
            await client.ws.send(packet)
        await client.wait_until(lambda: client.user_finals() == "3", timeout=10, what="digit after the error")
        assert gw.fakes["gemini"].connections[0].digits == "3"


def test_stereo_opus_is_mixed_down_to_mono() -> None:
    import av
    import numpy as np

    mono = np.frombuffer(utterance_48k("46"), dtype="<i2")
    stereo = np.stack([mono, mono], axis=1).reshape(1, -1)  # interleaved s16
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "stereo", "s16", 64000
    packets = []
    for i in range(0, len(mono) - 959, 960):
        frame = av.AudioFrame.from_ndarray(stereo[:, 2 * i:2 * (i + 960)], format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i
        packets += [bytes(p) for p in encoder.encode(frame)]
    decoder = OpusDecoder(16000, channels=2)
    assert digits(b"".join(decoder.decode(p) for p in packets), 16000) == "46"


def test_a_webm_stream_can_start_over_after_garbage() -> None:
    decoder = WebmOpusDecoder(16000)
    with pytest.raises(BadAudio):
        decoder.feed(b"garbage, not EBML")
    assert digits(decoder.feed(webm_stream(utterance_48k("5"))), 16000) == "5"  # a restarted recorder
