"""G.711 codecs: bit-exact with CPython audioop (the oracle) on every input, and docs/audio.md's vectors."""

import warnings

import numpy as np
import pytest

from audio.errors import AudioError
from audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib up to 3.12, `audioop-lts` on 3.13+; a test oracle only

ALL_PCM16 = np.arange(1 << 16, dtype=np.uint16).view("<i2").tobytes()
ALL_CODES = bytes(range(256))


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def samples(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<i2").tolist()


def test_ulaw_encode_matches_audioop_on_all_65536_inputs():
    assert ulaw_encode(ALL_PCM16) == audioop.lin2ulaw(ALL_PCM16, 2)


def test_alaw_encode_matches_audioop_on_all_65536_inputs():
    assert alaw_encode(ALL_PCM16) == audioop.lin2alaw(ALL_PCM16, 2)


def test_ulaw_decode_matches_audioop_on_all_256_codes():
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_on_all_256_codes():
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


# docs/audio.md §3 "Test vectors [verified with audioop]".
ULAW_VECTORS = [
    (0, 0xFF, 0), (1, 0xFF, 0), (-1, 0x7E, -8), (8, 0xFE, 8), (100, 0xF2, 104), (-100, 0x72, -104),
    (1000, 0xCE, 988), (-1000, 0x4E, -988), (4000, 0xAF, 4092), (12345, 0x97, 12412),
    (-12345, 0x17, -12412), (32767, 0x80, 32124), (-32768, 0x00, -32124),
]


@pytest.mark.parametrize(("sample", "code", "decoded"), ULAW_VECTORS)
def test_ulaw_vectors_from_audio_md(sample, code, decoded):
    assert ulaw_encode(pcm(sample)) == bytes([code])
    assert samples(ulaw_decode(bytes([code]))) == [decoded]


@pytest.mark.parametrize(("code", "decoded"), [
    (0x00, -32124), (0x0F, -16764), (0x10, -15996), (0x7F, 0), (0x80, 32124), (0x8F, 16764),
    (0xFE, 8), (0xFF, 0),
])
def test_ulaw_decode_only_vectors_from_audio_md(code, decoded):
    assert samples(ulaw_decode(bytes([code]))) == [decoded]


def test_silence_codes_from_audio_md():
    assert ulaw_encode(bytes(320)) == b"\xff" * 160
    assert alaw_encode(bytes(320)) == b"\xd5" * 160
    assert samples(alaw_decode(b"\xd5")) == [8]


def test_ulaw_round_trip_error_is_within_half_a_top_segment_step():
    values = np.frombuffer(ALL_PCM16, dtype="<i2").astype(np.int32)
    back = np.frombuffer(ulaw_decode(ulaw_encode(ALL_PCM16)), dtype="<i2").astype(np.int32)
    inside = np.abs(values) <= 32124
    assert np.abs(back - values)[inside].max() <= 515  # docs/audio.md: 515 for the audioop formulation


@pytest.mark.parametrize("encode", [ulaw_encode, alaw_encode])
def test_odd_length_pcm16_is_bad_audio(encode):
    with pytest.raises(AudioError):
        encode(b"\x00\x01\x02")


@pytest.mark.parametrize("codec", [ulaw_encode, ulaw_decode, alaw_encode, alaw_decode])
def test_empty_input_gives_empty_output(codec):
    assert codec(b"") == b""


def test_codecs_accept_memoryview_and_bytearray():
    frame = pcm(100, -100, 1000)
    assert ulaw_encode(bytearray(frame)) == ulaw_encode(memoryview(frame)) == bytes([0xF2, 0x72, 0xCE])
