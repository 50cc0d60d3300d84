"""Re-chunking audio into fixed frames (20 ms by default) and PCM16 length checks.

Invariant: a FrameChunker never loses, duplicates or reorders a byte: the concatenation of every
frame it returned equals everything pushed, plus the silence `flush()` pads the last frame with.
"""

from __future__ import annotations

from audio.errors import AudioError
from audio.formats import AudioFormat

# The byte of digital silence per encoding (μ-law 0xFF, A-law 0xD5, PCM16 zero samples).
SILENCE_BYTE = {"mulaw": 0xFF, "alaw": 0xD5, "pcm16": 0x00}


def check_pcm16(data: bytes) -> None:
    """AudioError if `data` cannot be whole PCM16 samples (odd length). Empty is fine."""
    if len(data) % 2:
        raise AudioError("PCM16 audio must have an even number of bytes")


class FrameChunker:
    """Cuts a byte stream into frames of exactly `frame_ms` of `fmt`, carrying a partial tail to the
    next push. `flush()` pads the tail with the encoding's silence; `drop()` forgets it (after a clear).

    For PCM16 the frame size is even, so frames are always whole samples.
    """

    def __init__(self, fmt: AudioFormat, frame_ms: int = 20) -> None:
        self.fmt = fmt
        self.frame_ms = frame_ms
        self.frame_bytes = fmt.frame_bytes(frame_ms)
        if frame_ms <= 0 or self.frame_bytes <= 0:
            raise ValueError(f"frame of {frame_ms} ms holds no audio in {fmt}")
        self._silence = bytes([SILENCE_BYTE[fmt.encoding]])
        self._tail = b""

    @property
    def pending_bytes(self) -> int:
        return len(self._tail)

    def push(self, audio: bytes) -> list[bytes]:
        if not self._tail and len(audio) == self.frame_bytes:  # one whole frame in: itself out
            return [audio]
        data = self._tail + audio if self._tail else audio
        n = len(data) - len(data) % self.frame_bytes
        self._tail = data[n:]
        return [data[i:i + self.frame_bytes] for i in range(0, n, self.frame_bytes)]

    def flush(self) -> list[bytes]:
        """The partial frame still pending, padded with silence to a whole frame (or nothing)."""
        if not self._tail:
            return []
        frame = self._tail + self._silence * (self.frame_bytes - len(self._tail))
        self._tail = b""
        return [frame]

    def drop(self) -> None:
        self._tail = b""
