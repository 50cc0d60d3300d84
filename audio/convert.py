"""Streaming conversion between two `AudioFormat`s: decode G.711 → PCM16, resample, encode.

Invariant: a converter serves one stream (filter history and a pending odd byte live in it);
src == dst is the identity and returns the very bytes object it was given. Mono only.
When the rate changes, decoding and encoding run inside the resampler's pass (its input is read
through the G.711 decode table, its output written through the encode table): same output as
decode → resample → encode, one pass per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from audio.errors import AudioError
from audio.formats import ENCODINGS, AudioFormat
from audio.g711 import DECODE_TABLES_F32, ENCODE_TABLES, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audio.resample import ResampleStream, check_rate, widen

_DECODERS: dict[str, Callable[[bytes], bytes]] = {"mulaw": ulaw_decode, "alaw": alaw_decode}
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"mulaw": ulaw_encode, "alaw": alaw_encode}


def check_format(fmt: AudioFormat) -> None:
    """AudioError unless the gateway can convert from/to `fmt`."""
    if fmt.encoding not in ENCODINGS:
        raise AudioError(f"unsupported audio encoding {fmt.encoding!r} (supported: {ENCODINGS})")
    check_rate(fmt.sample_rate_hz)
    if fmt.channels != 1:
        raise AudioError("only mono audio is supported")


@cache
def _wide_encode_table(encoding: str) -> np.ndarray:
    return widen(ENCODE_TABLES[encoding])


def _same(data: bytes) -> bytes:
    return data


def _nothing() -> bytes:
    return b""


class FormatConverter:
    """Converts one stream from `src` to `dst`, chunk by chunk.

    `convert(data)` returns what is ready (may be b"" while the resampler fills); `flush()` returns
    the rest and resets the converter. For PCM16 sources an odd trailing byte waits for the next chunk
    (and is dropped at `flush`). Empty input returns b"". `identity` (src == dst) is a plain attribute.
    `convert` and `flush` are attributes too, set to the function this pair of formats needs (the
    stream's own `process` when the rate changes): a frame pays no layer of ours in between.
    """

    convert: Callable[[bytes], bytes]
    flush: Callable[[], bytes]

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        check_format(src)
        check_format(dst)
        self.src = src
        self.dst = dst
        self.identity = src == dst  # computed once: callers read it per frame
        self.convert = _same
        self.flush = _nothing
        if self.identity:
            return
        decode, encode = _DECODERS.get(src.encoding), _ENCODERS.get(dst.encoding)
        if src.sample_rate_hz != dst.sample_rate_hz:  # one fused pass per chunk
            stream = ResampleStream(
                src.sample_rate_hz, dst.sample_rate_hz,
                decode_table=DECODE_TABLES_F32[src.encoding] if decode else None,
                encode_table=_wide_encode_table(dst.encoding) if encode else None)
            self.convert, self.flush = stream.process, stream.flush
            return
        # Equal rates: a transcode, or PCM16 → PCM16-carrying-odd-bytes (src != dst, so one side is
        # G.711). The pass-through resampler carries a PCM16 source's odd byte.
        carrier = ResampleStream(src.sample_rate_hz, dst.sample_rate_hz)
        if decode and encode:
            self.convert = lambda data: encode(decode(data))
        elif decode:
            self.convert = decode
        else:
            assert encode is not None
            self.convert = lambda data: encode(carrier.process(data))
            self.flush = carrier.flush  # drops a pending odd byte; b"" at equal rates


def convert(data: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
    """Convert a whole buffer (one-shot, tail included)."""
    converter = FormatConverter(src, dst)
    if converter.identity:
        return data
    return converter.convert(data) + converter.flush()
