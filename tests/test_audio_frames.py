"""Framing: exact 20 ms frames per format, nothing lost or reordered, silence padding, PCM16 length checks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.errors import AudioError
from audio.formats import ALAW_8K, MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from audio.frames import FrameChunker, check_pcm16


@pytest.mark.parametrize(("fmt", "size"), [
    (MULAW_8K, 160), (ALAW_8K, 160), (PCM16_8K, 320), (PCM16_16K, 640), (PCM16_24K, 960),
    (AudioFormat(encoding="pcm16", sample_rate_hz=48000), 1920),
])
def test_20ms_frame_sizes_match_the_formats(fmt, size):
    chunker = FrameChunker(fmt)
    frames = chunker.push(bytes(range(256)) * 20)
    assert {len(f) for f in frames} == {size}
    assert chunker.pending_bytes == 5120 % size


def test_provider_bursts_are_rechunked_for_twilio():
    """A 24 kHz provider burst, converted to μ-law, arrives in odd sizes; Twilio wants 160 bytes."""
    chunker = FrameChunker(MULAW_8K)
    out = []
    for burst in (b"a" * 100, b"b" * 500, b"c" * 61):
        out += chunker.push(burst)
    assert [len(f) for f in out] == [160] * 4
    assert out[0] == b"a" * 100 + b"b" * 60
    assert chunker.pending_bytes == 661 - 640
    assert chunker.flush() == [b"c" * 21 + b"\xff" * 139]  # padded with μ-law silence
    assert chunker.pending_bytes == 0 and chunker.flush() == []


@pytest.mark.parametrize(("fmt", "silence"), [(MULAW_8K, b"\xff"), (ALAW_8K, b"\xd5"), (PCM16_8K, b"\x00")])
def test_flush_pads_with_the_encodings_silence(fmt, silence):
    chunker = FrameChunker(fmt)
    chunker.push(b"\x01\x02")
    assert chunker.flush() == [b"\x01\x02" + silence * (fmt.frame_bytes(20) - 2)]


def test_exact_frame_passes_through_and_drop_forgets_the_tail():
    chunker = FrameChunker(PCM16_16K)
    frame = bytes(640)
    assert chunker.push(frame) == [frame]
    assert chunker.push(b"") == []
    chunker.push(b"\x01" * 10)
    chunker.drop()
    assert chunker.pending_bytes == 0 and chunker.flush() == []


def test_other_frame_lengths():
    chunker = FrameChunker(PCM16_16K, frame_ms=10)
    assert [len(f) for f in chunker.push(bytes(1000))] == [320, 320, 320] and chunker.pending_bytes == 40


@pytest.mark.parametrize("frame_ms", [0, -20])
def test_empty_frames_are_a_programming_error(frame_ms):
    with pytest.raises(ValueError):
        FrameChunker(PCM16_16K, frame_ms)


def test_check_pcm16():
    check_pcm16(b"")
    check_pcm16(b"\x00\x01")
    with pytest.raises(AudioError):
        check_pcm16(b"\x00\x01\x02")


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=2000), max_size=20),
       fmt=st.sampled_from([MULAW_8K, PCM16_8K, PCM16_24K]), frame_ms=st.sampled_from([10, 20, 40]))
def test_never_loses_duplicates_or_reorders_bytes(chunks, fmt, frame_ms):
    chunker = FrameChunker(fmt, frame_ms)
    frames = [f for chunk in chunks for f in chunker.push(chunk)]
    tail = chunker.pending_bytes
    frames += chunker.flush()
    assert all(len(f) == fmt.frame_bytes(frame_ms) for f in frames)
    whole = b"".join(chunks)
    assert b"".join(frames)[: len(whole)] == whole
    assert len(b"".join(frames)) - len(whole) == (fmt.frame_bytes(frame_ms) - tail if tail else 0)
