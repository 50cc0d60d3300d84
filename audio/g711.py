"""G.711 μ-law and A-law codecs as lookup tables, bit-exact with CPython `audioop`.

Invariant: encoding maps every PCM16 sample through one 65 536-entry table and decoding every code
through one 256-entry table, so the gateway and the fake providers share one encoder (docs/audio.md §3:
two "correct" μ-law encoders differ on 381 negative inputs). PCM16 is signed little-endian.
"""

from __future__ import annotations

import numpy as np

from audio.errors import AudioError

_PCM16 = np.dtype("<i2")
_PCM16_AS_INDEX = np.dtype("<u2")

# Segment end points from the Sun reference code that CPython's Modules/audioop.c carries.
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_CLIP = 8159  # 14-bit magnitude clip (32635 >> 2)
_ULAW_BIAS = 0x84 >> 2


def _all_pcm16_samples() -> np.ndarray:
    """Every 16-bit sample, ordered by its unsigned bit pattern (the table index)."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode_table() -> np.ndarray:
    # audioop.lin2ulaw works on 14-bit values: an arithmetic shift right by 2 (rounds toward -inf).
    value = _all_pcm16_samples() >> 2
    negative = value < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(negative, -value, value), _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    # The clipped top (8159 + 33 = 0x2000) falls past the last segment: audioop maps it to 0x7F ^ mask.
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode_table() -> np.ndarray:
    # audioop.lin2alaw works on 13-bit values: an arithmetic shift right by 3.
    value = _all_pcm16_samples() >> 3
    negative = value < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    quantised = np.where(segment < 2, magnitude >> 1, magnitude >> np.maximum(segment, 1)) & 0x0F
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | quantised)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode_table() -> np.ndarray:
    u = np.arange(256, dtype=np.int32) ^ 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(_PCM16)


def _build_alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(_PCM16)


_ULAW_ENCODE = _build_ulaw_encode_table()
_ALAW_ENCODE = _build_alaw_encode_table()
_ULAW_DECODE = _build_ulaw_decode_table()
_ALAW_DECODE = _build_alaw_decode_table()

# For the resampler's fused decode/encode (audio/resample.py, audio/convert.py): the same tables, the
# decoders' as the float32 the filter runs in (exact: every decoded sample fits 24 bits).
ENCODE_TABLES: dict[str, np.ndarray] = {"mulaw": _ULAW_ENCODE, "alaw": _ALAW_ENCODE}
DECODE_TABLES_F32: dict[str, np.ndarray] = {"mulaw": _ULAW_DECODE.astype(np.float32),
                                            "alaw": _ALAW_DECODE.astype(np.float32)}


# Each codec is one table lookup written out (no shared helper): the decoders run on every telephony
# frame (μ-law 8k → PCM16 8k for Gemini is just this). take with mode="wrap" (every index is in range
# anyway) costs less per call than fancy indexing; empty input gives b"" without a check.
_ODD = "PCM16 audio must have an even number of bytes"
_U8 = np.dtype(np.uint8)


def ulaw_encode(pcm16: bytes) -> bytes:
    """PCM16 LE → μ-law, one byte per sample (same bytes as `audioop.lin2ulaw(pcm16, 2)`)."""
    if len(pcm16) & 1:
        raise AudioError(_ODD)
    return _ULAW_ENCODE.take(np.frombuffer(pcm16, dtype=_PCM16_AS_INDEX), mode="wrap").tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """μ-law → PCM16 LE (same bytes as `audioop.ulaw2lin(data, 2)`)."""
    return _ULAW_DECODE.take(np.frombuffer(data, dtype=_U8), mode="wrap").tobytes()


def alaw_encode(pcm16: bytes) -> bytes:
    """PCM16 LE → A-law, one byte per sample (same bytes as `audioop.lin2alaw(pcm16, 2)`)."""
    if len(pcm16) & 1:
        raise AudioError(_ODD)
    return _ALAW_ENCODE.take(np.frombuffer(pcm16, dtype=_PCM16_AS_INDEX), mode="wrap").tobytes()


def alaw_decode(data: bytes) -> bytes:
    """A-law → PCM16 LE (same bytes as `audioop.alaw2lin(data, 2)`)."""
    return _ALAW_DECODE.take(np.frombuffer(data, dtype=_U8), mode="wrap").tobytes()
