"""Streaming resampler: chunking-invariant, time-aligned, complete after flush, band-limited."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.errors import AudioError
from audio.formats import SAMPLE_RATES_HZ
from audio.resample import (
    CHUNKING_MAX_ABS_DIFF,
    WIDE_TABLE_SIZE,
    ResampleStream,
    group_delay_s,
    resample,
    widen,
)

RATE_PAIRS = [(a, b) for a, b in itertools.permutations(SAMPLE_RATES_HZ, 2)]


def noise(rate_hz: int, seconds: float, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(rate_hz * seconds)) * 6000).clip(-32768, 32767).astype("<i2").tobytes()


def tone(freq_hz: float, rate_hz: int, seconds: float, amplitude: float = 12000.0) -> bytes:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def as_array(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.int64)


def run_chunked(data: bytes, in_rate: int, out_rate: int, chunk_bytes: int) -> bytes:
    stream = ResampleStream(in_rate, out_rate)
    parts = [stream.process(data[i : i + chunk_bytes]) for i in range(0, len(data), chunk_bytes)]
    return b"".join(parts) + stream.flush()


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_20ms_chunks_match_whole_buffer_and_length_follows_the_ratio(in_rate, out_rate):
    data = noise(in_rate, 0.3)
    whole = resample(data, in_rate, out_rate)
    chunked = run_chunked(data, in_rate, out_rate, in_rate // 50 * 2)
    assert len(whole) == len(chunked) == len(data) * out_rate // in_rate
    assert np.abs(as_array(whole) - as_array(chunked)).max() <= CHUNKING_MAX_ABS_DIFF


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (24000, 8000), (24000, 16000)])
def test_odd_sized_chunks_match_whole_buffer(in_rate, out_rate):
    data = noise(in_rate, 0.1) + b"\x10\x00" * 3  # not a whole number of output samples either
    whole = resample(data, in_rate, out_rate)
    chunked = run_chunked(data, in_rate, out_rate, 7)
    assert len(whole) == len(chunked) == 2 * math.ceil(len(data) // 2 * out_rate / in_rate)
    assert np.abs(as_array(whole) - as_array(chunked)).max() <= CHUNKING_MAX_ABS_DIFF


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_holds_back_only_the_group_delay_then_every_frame_gives_one_frame(in_rate, out_rate):
    """Real-time property: 20 ms in → 20 ms out from the second frame on; flush returns the rest."""
    stream = ResampleStream(in_rate, out_rate)
    frame = noise(in_rate, 0.02)
    out_frame_bytes = out_rate // 50 * 2
    held_back = out_frame_bytes - len(stream.process(frame))
    # At most the filter delay plus one input sample (outputs come in whole polyphase groups).
    assert 0 < held_back <= 2 * (math.ceil(group_delay_s(in_rate, out_rate) * out_rate) + math.ceil(out_rate / in_rate))
    assert group_delay_s(in_rate, out_rate) < 0.002
    assert [len(stream.process(frame)) for _ in range(5)] == [out_frame_bytes] * 5
    assert len(stream.flush()) == held_back


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_output_is_time_aligned_with_input(in_rate, out_rate):
    """A click at t = 50 ms comes out at t = 50 ms: transcripts and replay offsets stay valid."""
    click = np.zeros(in_rate // 10, dtype="<i2")
    click[in_rate // 20] = 30000
    out = as_array(resample(click.tobytes(), in_rate, out_rate))
    assert abs(int(np.argmax(out)) - out_rate // 20) <= 1


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_speech_band_tone_keeps_its_level(in_rate, out_rate):
    out = as_array(resample(tone(1000, in_rate, 0.2), in_rate, out_rate))[200:-200]
    level = np.sqrt(np.mean(out.astype(float) ** 2)) * math.sqrt(2)
    assert level == pytest.approx(12000, rel=0.01)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 8000), (48000, 16000), (16000, 8000)])
def test_downsampling_removes_tones_above_the_new_nyquist(in_rate, out_rate):
    """No aliasing whistle: a tone at 1.5 × the new Nyquist frequency is at least 60 dB down."""
    out = as_array(resample(tone(0.75 * out_rate, in_rate, 0.2), in_rate, out_rate))[200:-200]
    level = np.sqrt(np.mean(out.astype(float) ** 2)) * math.sqrt(2)
    assert 20 * math.log10(max(level, 1e-9) / 12000) < -60


def test_equal_rates_pass_through_and_carry_odd_bytes():
    stream = ResampleStream(16000, 16000)
    frame = noise(16000, 0.02)
    assert stream.process(frame) is frame
    assert stream.process(b"\x01") == b""
    assert stream.process(b"\x02\x03") == b"\x01\x02"
    assert stream.flush() == b""  # the dangling half sample "\x03" is dropped


def test_odd_byte_is_carried_to_the_next_chunk():
    data = noise(8000, 0.05)
    stream = ResampleStream(8000, 16000)
    out = stream.process(data[:101]) + stream.process(data[101:]) + stream.flush()
    assert out == resample(data, 8000, 16000)


def test_flush_resets_the_stream_for_reuse():
    data = noise(24000, 0.05)
    stream = ResampleStream(24000, 8000)
    first = stream.process(data) + stream.flush()
    assert stream.process(data) + stream.flush() == first


def test_empty_input_gives_empty_output():
    stream = ResampleStream(8000, 24000)
    assert stream.process(b"") == b""
    assert stream.flush() == b""
    assert resample(b"", 24000, 8000) == b""


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 16000), (16000, 22050), (0, 8000)])
def test_unsupported_rates_are_bad_audio(in_rate, out_rate):
    with pytest.raises(AudioError):
        ResampleStream(in_rate, out_rate)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
       pair=st.sampled_from(RATE_PAIRS))
def test_any_chunking_matches_whole_buffer(cuts, pair):
    in_rate, out_rate = pair
    data = noise(in_rate, 4000 / 2 / in_rate, seed=len(cuts))
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    stream = ResampleStream(in_rate, out_rate)
    chunked = b"".join(stream.process(data[a:b]) for a, b in itertools.pairwise(bounds)) + stream.flush()
    whole = resample(data, in_rate, out_rate)
    assert len(chunked) == len(whole)
    assert np.abs(as_array(whole) - as_array(chunked)).max(initial=0) <= CHUNKING_MAX_ABS_DIFF


@pytest.mark.parametrize("table", [np.arange(1 << 16, dtype=np.uint16).view("<i2"),
                                   np.random.default_rng(2).integers(0, 256, 1 << 16, dtype=np.uint8)])
def test_widened_table_rounds_to_nearest_and_clips(table):
    """The output tables: entry j (mod the size) is the entry of j / 2 rounded (ties away from zero)
    and clipped to PCM16, over the whole range the filter's output can reach."""
    j = np.arange(-(WIDE_TABLE_SIZE // 2), WIDE_TABLE_SIZE // 2, dtype=np.int64)
    rounded = np.sign(j) * ((np.abs(j) + 1) // 2)
    expected = table[np.clip(rounded, -32768, 32767).astype("<i2").view(np.uint16)]
    assert (widen(table).take(j, mode="wrap") == expected).all()
