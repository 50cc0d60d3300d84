"""FormatConverter: the paths the gateway uses (Twilio ↔ Gemini/OpenAI), identity, bad formats."""

import numpy as np
import pytest

from audio.convert import FormatConverter, convert
from audio.errors import AudioError
from audio.formats import ALAW_8K, MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from audio.g711 import alaw_encode, ulaw_decode, ulaw_encode
from audio.resample import resample


def speechlike(rate_hz: int, seconds: float) -> bytes:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    wave = 6000 * np.sin(2 * np.pi * 220 * t) + 3000 * np.sin(2 * np.pi * 1330 * t)
    return wave.astype("<i2").tobytes()


def frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_identity_returns_the_same_object():
    converter = FormatConverter(MULAW_8K, MULAW_8K)
    payload = ulaw_encode(speechlike(8000, 0.02))
    assert converter.identity
    assert converter.convert(payload) is payload
    assert converter.flush() == b""
    assert convert(payload, PCM16_16K, AudioFormat(encoding="pcm16", sample_rate_hz=16000)) is payload


def test_twilio_uplink_mulaw_8k_to_pcm16_16k_streams_like_one_shot():
    mulaw = ulaw_encode(speechlike(8000, 0.2))
    converter = FormatConverter(MULAW_8K, PCM16_16K)
    assert not converter.identity
    streamed = b"".join(converter.convert(f) for f in frames(mulaw, 160)) + converter.flush()
    assert streamed == convert(mulaw, MULAW_8K, PCM16_16K) == resample(ulaw_decode(mulaw), 8000, 16000)
    assert len(streamed) == len(mulaw) * 4


def test_gemini_downlink_pcm16_24k_to_mulaw_8k_gives_160_byte_frames():
    pcm = speechlike(24000, 0.2)
    converter = FormatConverter(PCM16_24K, MULAW_8K)
    out = [converter.convert(f) for f in frames(pcm, 960)]
    assert [len(o) for o in out[1:]] == [160] * (len(out) - 1)
    tail = converter.flush()
    assert sum(map(len, out)) + len(tail) == len(pcm) // 6


def test_downlink_keeps_the_signal():
    pcm = speechlike(24000, 0.2)
    back = np.frombuffer(ulaw_decode(convert(pcm, PCM16_24K, MULAW_8K)), dtype="<i2").astype(float)
    expected = np.frombuffer(resample(pcm, 24000, 8000), dtype="<i2").astype(float)
    # μ-law keeps ~38 dB SNR on speech levels.
    noise = np.sqrt(np.mean((back - expected) ** 2))
    assert noise < np.sqrt(np.mean(expected**2)) / 50


def test_mulaw_to_alaw_at_8k_is_a_pure_transcode():
    pcm = speechlike(8000, 0.05)
    mulaw = ulaw_encode(pcm)
    assert convert(mulaw, MULAW_8K, ALAW_8K) == alaw_encode(ulaw_decode(mulaw))


def test_pcm16_source_carries_odd_bytes_between_chunks():
    pcm = speechlike(16000, 0.06)
    converter = FormatConverter(PCM16_16K, PCM16_8K)
    streamed = b"".join(converter.convert(c) for c in frames(pcm, 333)) + converter.flush()
    assert streamed == convert(pcm, PCM16_16K, PCM16_8K)


def test_empty_chunk_gives_empty_output():
    assert FormatConverter(MULAW_8K, PCM16_24K).convert(b"") == b""


@pytest.mark.parametrize("bad", [
    AudioFormat(encoding="pcm16", sample_rate_hz=44100),
    AudioFormat(encoding="pcm16", sample_rate_hz=16000, channels=2),
    AudioFormat(encoding="opus", sample_rate_hz=48000),  # type: ignore[arg-type]
])
def test_unsupported_formats_are_bad_audio(bad):
    with pytest.raises(AudioError):
        FormatConverter(bad, PCM16_16K)
    with pytest.raises(AudioError):
        FormatConverter(PCM16_16K, bad)
