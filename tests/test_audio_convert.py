"""FormatConverter: the paths the gateway uses (Twilio ↔ Gemini/OpenAI), identity, bad formats."""

import itertools
import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.convert import FormatConverter, convert
from audio.errors import AudioError
from audio.formats import ALAW_8K, MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audio.resample import CHUNKING_MAX_ABS_DIFF, _prototype_filter, resample


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


# -- the fused fast path against a straightforward reference ------------------------------------------
ENCODINGS_CODECS = {"pcm16": (None, None), "mulaw": (ulaw_decode, ulaw_encode), "alaw": (alaw_decode, alaw_encode)}


def reference_resample(pcm16: bytes, in_rate: int, out_rate: int) -> np.ndarray:
    """The filter applied the textbook way, in float64 on the whole stream: zero-stuff by L, convolve
    with the prototype, keep every M-th sample from the group delay on (trimmed: time-aligned)."""
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    taps = _prototype_filter(in_rate, out_rate, up)
    delay = (len(taps) - 1) // 2
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    stuffed = np.zeros(len(x) * up)
    stuffed[::up] = x
    filtered = np.convolve(stuffed, taps)
    n_out = -(-len(x) * up // down)
    picked = np.zeros(n_out)
    positions = np.arange(n_out) * down + delay
    inside = positions < len(filtered)
    picked[inside] = filtered[positions[inside]]
    return np.clip(np.rint(picked), -32768, 32767).astype(np.int64)


def assert_matches_reference(out: bytes, reference_pcm: np.ndarray, encoding: str) -> None:
    """PCM16 within CHUNKING_MAX_ABS_DIFF of the reference; G.711 the code of a sample that is."""
    decode, encode = ENCODINGS_CODECS[encoding]
    if encode is None:
        got = np.frombuffer(out, dtype="<i2").astype(np.int64)
        assert len(got) == len(reference_pcm)
        assert np.abs(got - reference_pcm).max(initial=0) <= CHUNKING_MAX_ABS_DIFF
        return
    assert len(out) == len(reference_pcm)
    codes = np.frombuffer(out, dtype=np.uint8)
    allowed = [np.frombuffer(encode(np.clip(reference_pcm + d, -32768, 32767).astype("<i2").tobytes()), np.uint8)
               for d in range(-CHUNKING_MAX_ABS_DIFF, CHUNKING_MAX_ABS_DIFF + 1)]
    assert np.any([codes == a for a in allowed], axis=0).all()


RATE_PAIRS = [(a, b) for a in (8000, 16000, 24000, 48000) for b in (8000, 16000, 24000, 48000) if a != b]


@settings(max_examples=60, deadline=None)
@given(pair=st.sampled_from(RATE_PAIRS), src_enc=st.sampled_from(["pcm16", "mulaw", "alaw"]),
       dst_enc=st.sampled_from(["pcm16", "mulaw", "alaw"]), level=st.sampled_from([300.0, 6000.0, 40000.0]),
       seconds=st.floats(0.0, 0.12), cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=10),
       seed=st.integers(0, 1000))
def test_fused_converter_matches_the_reference_filter_over_any_chunking(pair, src_enc, dst_enc, level, seconds,
                                                                         cuts, seed):
    in_rate, out_rate = pair
    rng = np.random.default_rng(seed)
    pcm = (rng.standard_normal(int(in_rate * seconds)) * level).clip(-32768, 32767).astype("<i2").tobytes()
    decode, encode = ENCODINGS_CODECS[src_enc]
    data = encode(pcm) if encode else pcm
    pcm_in = decode(data) if decode else pcm  # what the filter sees (G.711 is lossy)
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    converter = FormatConverter(AudioFormat(encoding=src_enc, sample_rate_hz=in_rate),
                                AudioFormat(encoding=dst_enc, sample_rate_hz=out_rate))
    out = b"".join(converter.convert(data[a:b]) for a, b in itertools.pairwise(bounds)) + converter.flush()
    assert_matches_reference(out, reference_resample(pcm_in, in_rate, out_rate), dst_enc)


@pytest.mark.parametrize(("src", "dst"), [(MULAW_8K, PCM16_16K), (PCM16_24K, MULAW_8K), (ALAW_8K, PCM16_24K),
                                          (PCM16_16K, PCM16_8K)])
def test_interleaved_streams_do_not_disturb_each_other(src, dst):
    """Streams of a thread share scratch memory: a hundred calls' frames interleaved give each call
    exactly what it gives alone, and a flushed converter starts over cleanly."""
    frame = src.frame_bytes(20)
    rng = np.random.default_rng(3)
    inputs = [rng.integers(0, 256, frame * 12, dtype=np.uint8).tobytes() for _ in range(100)]
    alone = []
    for data in inputs:
        converter = FormatConverter(src, dst)
        alone.append(b"".join(converter.convert(f) for f in frames(data, frame)) + converter.flush())
    converters = [FormatConverter(src, dst) for _ in inputs]
    together = [b""] * len(inputs)
    for i in range(0, len(inputs[0]), frame):
        for k, (converter, data) in enumerate(zip(converters, inputs, strict=True)):
            together[k] += converter.convert(data[i : i + frame])
    together = [t + c.flush() for t, c in zip(together, converters, strict=True)]
    assert together == alone
    again = [c.convert(d) + c.flush() for c, d in zip(converters, inputs, strict=True)]
    assert again == [convert(d, src, dst) for d in inputs]


def test_streams_in_two_threads_each_get_their_own_scratch():
    data = np.random.default_rng(9).integers(0, 256, 160 * 200, dtype=np.uint8).tobytes()
    alone = FormatConverter(MULAW_8K, PCM16_16K)
    expected = b"".join(alone.convert(f) for f in frames(data, 160))
    results: list[bytes] = []

    def run() -> None:
        converters = [FormatConverter(MULAW_8K, PCM16_16K) for _ in range(20)]
        outs = [b"".join(c.convert(f) for f in frames(data, 160)) for c in converters]
        results.extend(outs)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 40
