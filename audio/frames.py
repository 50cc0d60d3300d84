"""Re-chunking audio into fixed frames (20 ms by default) and PCM16 length checks.

Invariant: a FrameSplitter never loses, duplicates or reorders a byte: the concatenation of every
frame it returned plus `flush()` equals the concatenation of everything pushed.
"""

from __future__ import annotations

from audio.errors import AudioError
from audio.formats import AudioFormat


def check_pcm16(data: bytes) -> None:
    """AudioError if `data` cannot be whole PCM16 samples (odd length). Empty is fine."""
    if len(data) % 2:
        raise AudioError("PCM16 audio must have an even number of bytes")


class FrameSplitter:
    """Cuts a byte stream into frames of exactly `frame_ms` of `fmt`, carrying the remainder.

    For PCM16 the frame size is even, so frames are always whole samples; an odd byte simply waits
    in the remainder. Empty pushes return [].
    """

    def __init__(self, fmt: AudioFormat, frame_ms: int = 20) -> None:
        self.fmt = fmt
        self.frame_ms = frame_ms
        self.frame_bytes = fmt.frame_bytes(frame_ms)
        if frame_ms <= 0 or self.frame_bytes <= 0:
            raise ValueError(f"frame of {frame_ms} ms holds no audio in {fmt}")
        self._pending = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def push(self, data: bytes) -> list[bytes]:
        size = self.frame_bytes
        if not self._pending and len(data) == size:  # the common case: already one frame, no copy
            return [bytes(data)]
        self._pending += data
        whole = len(self._pending) - len(self._pending) % size
        if not whole:
            return []
        view = memoryview(self._pending)
        frames = [bytes(view[i : i + size]) for i in range(0, whole, size)]
        view.release()
        del self._pending[:whole]
        return frames

    def flush(self) -> bytes:
        """The partial frame still pending (maybe b""); the splitter is then empty."""
        rest = bytes(self._pending)
        self._pending.clear()
        return rest


def split_frames(data: bytes, fmt: AudioFormat, frame_ms: int = 20) -> tuple[list[bytes], bytes]:
    """Whole frames of `data` and the remainder shorter than a frame."""
    splitter = FrameSplitter(fmt, frame_ms)
    return splitter.push(data), splitter.flush()
