"""Audio formats and chunks. Invariant: PCM16 is signed 16-bit little-endian mono everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["pcm16", "mulaw", "alaw"]
ENCODINGS: tuple[str, ...] = ("pcm16", "mulaw", "alaw")
SAMPLE_RATES_HZ: tuple[int, ...] = (8000, 16000, 24000, 48000)


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioFormat:
    encoding: Encoding = "pcm16"
    sample_rate_hz: int = 16000
    channels: int = 1

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    # bytes_per_sample written out below: these run per frame (chunk offsets, replay stream time,
    # telephony playout), and each property call saved is ~0.1 µs
    @property
    def bytes_per_second(self) -> int:
        return (2 if self.encoding == "pcm16" else 1) * self.sample_rate_hz * self.channels

    def frame_bytes(self, ms: int = 20) -> int:
        """Bytes in `ms` milliseconds of audio (20 ms: μ-law 8k → 160, PCM16 16k → 640)."""
        return (2 if self.encoding == "pcm16" else 1) * self.sample_rate_hz * self.channels * ms // 1000

    def duration_s(self, n_bytes: int) -> float:
        return n_bytes / ((2 if self.encoding == "pcm16" else 1) * self.sample_rate_hz * self.channels)

    def to_wire(self) -> dict[str, object]:
        return {"encoding": self.encoding, "sample_rate": self.sample_rate_hz}


PCM16_8K = AudioFormat(encoding="pcm16", sample_rate_hz=8000)
PCM16_16K = AudioFormat(encoding="pcm16", sample_rate_hz=16000)
PCM16_24K = AudioFormat(encoding="pcm16", sample_rate_hz=24000)
MULAW_8K = AudioFormat(encoding="mulaw", sample_rate_hz=8000)
ALAW_8K = AudioFormat(encoding="alaw", sample_rate_hz=8000)


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioChunk:
    """One piece of call audio: its bytes, format, sequence number and offset in call time (s)."""

    data: bytes
    fmt: AudioFormat
    seq: int
    offset_s: float

    @property
    def duration_s(self) -> float:
        return self.fmt.duration_s(len(self.data))

    @property
    def end_s(self) -> float:
        return self.offset_s + self.fmt.duration_s(len(self.data))
