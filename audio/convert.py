"""Streaming conversion between two `AudioFormat`s: decode G.711 → PCM16, resample, encode.

Invariant: a converter serves one stream (filter history and a pending odd byte live in it);
src == dst is the identity and returns the very bytes object it was given. Mono only.
"""

from __future__ import annotations

from collections.abc import Callable

from audio.errors import AudioError
from audio.formats import ENCODINGS, AudioFormat
from audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audio.resample import ResampleStream, check_rate

_DECODERS: dict[str, Callable[[bytes], bytes]] = {"mulaw": ulaw_decode, "alaw": alaw_decode}
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"mulaw": ulaw_encode, "alaw": alaw_encode}


def check_format(fmt: AudioFormat) -> None:
    """AudioError unless the gateway can convert from/to `fmt`."""
    if fmt.encoding not in ENCODINGS:
        raise AudioError(f"unsupported audio encoding {fmt.encoding!r} (supported: {ENCODINGS})")
    check_rate(fmt.sample_rate_hz)
    if fmt.channels != 1:
        raise AudioError("only mono audio is supported")


class FormatConverter:
    """Converts one stream from `src` to `dst`, chunk by chunk.

    `convert` returns what is ready (may be b"" while the resampler fills); `flush` returns the rest
    and resets the converter. For PCM16 sources an odd trailing byte waits for the next chunk (and is
    dropped at `flush`). Empty input returns b"".
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        check_format(src)
        check_format(dst)
        self.src = src
        self.dst = dst
        self._decode = _DECODERS.get(src.encoding)
        self._encode = _ENCODERS.get(dst.encoding)
        # The resampler also carries the odd byte, so PCM16 sources always go through it (at equal
        # rates it only does that carrying).
        self._resampler = ResampleStream(src.sample_rate_hz, dst.sample_rate_hz)

    @property
    def identity(self) -> bool:
        return self.src == self.dst

    def convert(self, data: bytes) -> bytes:
        if self.identity:
            return data
        pcm16 = self._decode(data) if self._decode else data
        return self._finish(self._resampler.process(pcm16))

    def flush(self) -> bytes:
        if self.identity:
            return b""
        return self._finish(self._resampler.flush())

    def _finish(self, pcm16: bytes) -> bytes:
        return self._encode(pcm16) if self._encode else pcm16


def convert(data: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
    """Convert a whole buffer (one-shot, tail included)."""
    converter = FormatConverter(src, dst)
    if converter.identity:
        return data
    return converter.convert(data) + converter.flush()
