"""The fake OpenAI Realtime server's speech: decoding input audio in the session's format,
recognising a committed buffer in the DTMF dialect, and rendering a reply as DTMF tones or a
parrot echo in the output format. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from audio.convert import convert
from audio.dtmf import generate_dtmf
from audio.formats import PCM16_24K, AudioFormat
from audio.g711 import alaw_decode, ulaw_decode
from audio.resample import resample
from providers.fakes.common import MAX_REPLY_DIGITS, DialectRecognizer, Utterance

TONE_MS = 100  # reply digits: 100 ms tone + 100 ms gap each (audio.dtmf.generate_dtmf)
GAP_MS = 100
CHUNK_MS = 100  # reply audio goes out in 100 ms deltas


class InputDecoder:
    """Client audio in the session's input format → PCM16 at the format's rate (an odd PCM byte waits)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._carry = b""

    @property
    def rate_hz(self) -> int:
        return self.fmt.sample_rate_hz

    def decode(self, raw: bytes) -> bytes:
        if self.fmt.encoding == "mulaw":
            return ulaw_decode(raw)
        if self.fmt.encoding == "alaw":
            return alaw_decode(raw)
        data = self._carry + raw
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        return data[:cut]


def recognize_buffer(pcm16: bytes, rate_hz: int, end_silence_ms: int) -> tuple[str, bytes]:
    """A committed buffer (no server VAD): (DTMF digits heard, plain-speech audio to echo)."""
    recognizer = DialectRecognizer(rate_hz, end_silence_ms=end_silence_ms)
    utterances = [e for e in recognizer.feed(pcm16) + recognizer.flush() if isinstance(e, Utterance)]
    digits = "".join(u.text for u in utterances if u.is_dtmf)
    plain = b"".join(u.audio for u in utterances if not u.is_dtmf)
    return digits, plain


@dataclass(frozen=True, slots=True)
class SpokenReply:
    """What one reply says: its transcript, its audio in the output format, and when each transcript
    character starts sounding (so a truncation knows what the caller heard)."""

    transcript: str
    audio: bytes
    bytes_per_second: int
    onsets_ms: tuple[int, ...]

    @classmethod
    def silent(cls) -> SpokenReply:
        return cls("", b"", PCM16_24K.bytes_per_second, ())

    @property
    def duration_ms(self) -> int:
        return len(self.audio) * 1000 // self.bytes_per_second

    def heard_until(self, audio_end_ms: int) -> str:
        return self.transcript[: sum(1 for onset in self.onsets_ms if onset < audio_end_ms)]

    def chunks(self) -> Iterator[tuple[bytes, str]]:
        """(audio chunk, transcript characters that start sounding within it), in order."""
        size = self.bytes_per_second * CHUNK_MS // 1000
        count = max(1, math.ceil(len(self.audio) / size))
        for index in range(count):
            last = index == count - 1
            words = "".join(word for word, onset in zip(self.transcript, self.onsets_ms, strict=True)
                            if index * CHUNK_MS <= onset < (index + 1) * CHUNK_MS or (last and onset >= count * CHUNK_MS))
            yield self.audio[index * size:(index + 1) * size], words


def render_reply(digits: str, echo_pcm16: bytes, echo_rate_hz: int, out_fmt: AudioFormat) -> SpokenReply:
    """The digits spoken back as DTMF (at most MAX_REPLY_DIGITS), else the plain speech echoed
    (parrot), in `out_fmt`."""
    rate = out_fmt.sample_rate_hz
    digits = digits[:MAX_REPLY_DIGITS]
    if digits:
        pcm = generate_dtmf(digits, rate, tone_ms=TONE_MS, gap_ms=GAP_MS)
        onsets = tuple(i * (TONE_MS + GAP_MS) for i in range(len(digits)))
    else:
        pcm = resample(echo_pcm16, echo_rate_hz, rate) if echo_pcm16 and echo_rate_hz != rate else echo_pcm16
        onsets = ()
    audio = convert(pcm, AudioFormat(encoding="pcm16", sample_rate_hz=rate), out_fmt) if pcm else b""
    return SpokenReply(digits, audio, out_fmt.bytes_per_second, onsets)
