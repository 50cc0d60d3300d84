"""Frame markers that survive the gateway's audio path: G.711 companding and resampling.

Every 20 ms frame the load generator sends carries its sequence number as four DC levels (4 ms
each, then 4 ms of silence as a guard), and the echo provider answers with a frame carrying the same
number in the same code. Why DC levels: the gateway's resamplers (audio/resample.py) are low-pass
FIRs with unity DC gain, so a level survives 8k→16k, 24k→8k and μ-law quantisation; measured worst
error in the middle half of a 4 ms segment is ~250 of 1600 between levels. The guard absorbs the
resampler hold-back (≤ 1.7 ms), so frame k is decodable as soon as the bytes up to 16 ms of it have
arrived, even when the gateway cut the stream elsewhere.

Code: 12 bits of sequence number (4096 frames = 81.9 s of audio per call, the longest run we allow)
plus a 4-bit check nibble, so a garbled frame is counted as garbled instead of being misread.
Frames are positioned by stream time: frame k is samples [k·F, (k+1)·F) of the stream at its rate.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from audio.dtmf import generate_dtmf
from audio.formats import AudioFormat
from audio.g711 import ulaw_decode, ulaw_encode

FRAME_MS = 20
SEGMENT_MS = 4
SEGMENTS = 4  # 3 nibbles of seq + 1 check nibble; the 5th 4 ms slot is the silent guard
SEQ_MODULUS = 4096
LEVELS = np.round(np.linspace(-12000.0, 12000.0, 16)).astype(np.float64)
_LEVEL0, _LEVEL_STEP = -12000.0, 1600.0  # LEVELS[i] == _LEVEL0 + i * _LEVEL_STEP
LEVEL_TOLERANCE = 600.0  # half the level spacing is 800; the resampler/μ-law error stays under 250
SILENCE_TOLERANCE = 300.0


def _check_nibble(n0: int, n1: int, n2: int) -> int:
    return (n0 * 3 + n1 * 5 + n2 * 7 + 0x9) & 0xF


def nibbles(seq: int) -> tuple[int, int, int, int]:
    s = seq % SEQ_MODULUS
    n0, n1, n2 = (s >> 8) & 0xF, (s >> 4) & 0xF, s & 0xF
    return n0, n1, n2, _check_nibble(n0, n1, n2)


def _pcm_levels(seq: int, rate_hz: int) -> np.ndarray:
    frame = rate_hz * FRAME_MS // 1000
    seg = rate_hz * SEGMENT_MS // 1000
    x = np.zeros(frame, dtype="<i2")
    for j, n in enumerate(nibbles(seq)):
        x[j * seg:(j + 1) * seg] = LEVELS[n]
    return x


@lru_cache(maxsize=16384)
def marker_frame(seq: int, fmt: AudioFormat) -> bytes:
    """One 20 ms frame in `fmt` (pcm16 or mulaw, any supported rate) carrying `seq`."""
    pcm = _pcm_levels(seq, fmt.sample_rate_hz).tobytes()
    return ulaw_encode(pcm) if fmt.encoding == "mulaw" else pcm


@lru_cache(maxsize=64)
def silence_frame(fmt: AudioFormat) -> bytes:
    n = fmt.frame_bytes(FRAME_MS)
    return (b"\xff" if fmt.encoding == "mulaw" else b"\x00") * n


@lru_cache(maxsize=256)
def tone_frames(digit: str, fmt: AudioFormat, tone_ms: int = 80) -> tuple[bytes, ...]:
    """A DTMF digit (the fakes' dialect) as whole 20 ms frames, at -10 dBFS."""
    pcm = generate_dtmf(digit, fmt.sample_rate_hz, tone_ms=tone_ms, gap_ms=0)
    data = ulaw_encode(pcm) if fmt.encoding == "mulaw" else pcm
    step = fmt.frame_bytes(FRAME_MS)
    data += silence_frame(fmt)[: -len(data) % step]  # pad the last frame with silence
    return tuple(data[i:i + step] for i in range(0, len(data), step))


MARKER, SILENCE, GARBLED = "marker", "silence", "garbled"
_MEMO_MAX = 20_000  # per format: every marker (4096) and silence, with room for what a path reshapes
# Decoded whole frames, by format: the frame's bytes as received → (kind, seq, its PCM16). Decoding is a
# pure function of an aligned frame's bytes, so a frame seen before needs no numpy: the load side's
# per-frame cost (it shares a core with the echo fake; the server under test must be the limit).
_MEMO: dict[AudioFormat, dict[bytes, tuple[str, int, bytes]]] = {}
_WINDOWS: dict[AudioFormat, dict[bytes, tuple[str, int]]] = {}  # a frame's decoded samples → (kind, seq)


@lru_cache(maxsize=16)
def _centre_sums(seg: int) -> np.ndarray:
    """0/1 weights: (weights @ samples)[j] is the sum of segment j's middle half (one BLAS call, a
    third of the cost of slicing and numpy's mean; the sums of int16 samples are exact in float64)."""
    q = seg // 4
    weights = np.zeros((SEGMENTS, SEGMENTS * seg))
    for j in range(SEGMENTS):
        weights[j, j * seg + q:(j + 1) * seg - q] = 1.0
    return weights


class Decoded(NamedTuple):  # a tuple: built per frame on the load side, where a dataclass costs 3x
    position: int  # frame index in the stream (stream time / 20 ms)
    kind: str  # MARKER | SILENCE | GARBLED (a tone, a cut, or a corrupted marker)
    seq: int  # valid for MARKER only (0..4095)


class MarkerStream:
    """Feed a stream's bytes as they arrive; get one `Decoded` per 20 ms frame position, in order,
    as soon as its marker segments are complete (16 ms into the frame).

    `resync=True` (client side): when a frame decodes as garbled, look up to half a frame either
    side (the previous frame's bytes are kept for that) for the offset at which it and the next
    frame decode as consecutive markers, and re-align there. The gateway may cut a few samples out
    of its output (a provider switch drops the old resampler's held-back tail, ≤ 1.7 ms), which would
    otherwise shift the 20 ms grid for the rest of the call. `realignments` counts them.
    """

    def __init__(self, fmt: AudioFormat, *, resync: bool = False) -> None:
        self.fmt = fmt
        self._mulaw = fmt.encoding == "mulaw"
        rate = fmt.sample_rate_hz
        self._frame = rate * FRAME_MS // 1000
        self._seg = rate * SEGMENT_MS // 1000
        self._need = self._seg * SEGMENTS  # samples of frame k needed to decode it
        q = self._seg // 4
        self._centre_n = self._seg - 2 * q
        self._centre_sums = _centre_sums(self._seg)
        self._pcm = bytearray()  # PCM16 from the start of frame `position`
        self._prev = b""  # the frame before it (resync only)
        self._odd = b""
        self._decoded_current = False
        self._resync = resync
        self.realignments = 0
        self.position = 0
        self._frame_in = fmt.frame_bytes(FRAME_MS)  # one frame as it arrives (μ-law: 1 byte a sample)
        self._memo = _MEMO.setdefault(fmt, {})
        self._windows = _WINDOWS.setdefault(fmt, {})

    def feed(self, data: bytes) -> list[Decoded]:
        whole = not self._pcm and not self._odd and len(data) == self._frame_in  # exactly the next frame
        if whole:
            hit = self._memo.get(data)
            if hit is not None:
                kind, seq, pcm = hit
                if self._resync:
                    self._prev = pcm
                d = Decoded(self.position, kind, seq)
                self.position += 1
                return [d]
        out = self._feed(data)
        if whole and len(out) == 1 and out[0].kind != GARBLED and not self._pcm and len(self._memo) < _MEMO_MAX:
            pcm = ulaw_decode(data) if self._mulaw else bytes(data)
            self._memo[bytes(data)] = (out[0].kind, out[0].seq, pcm)
        return out

    def _feed(self, data: bytes) -> list[Decoded]:
        if self._mulaw:
            self._pcm += ulaw_decode(data)
        else:
            if self._odd:
                data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            self._pcm += data
        out: list[Decoded] = []
        pcm, frame_bytes = self._pcm, self._frame * 2
        while True:
            if not self._decoded_current:
                if len(pcm) < self._need * 2:
                    break
                d = self._decode_start()
                if d.kind == GARBLED and self._resync:
                    if len(pcm) < (self._frame + self._need) * 2:
                        break  # the next frame's marker is needed to confirm an alignment
                    if self._realign():
                        d = self._decode(np.frombuffer(pcm, dtype="<i2", count=self._need))
                out.append(d)
                self._decoded_current = True
            if len(pcm) < frame_bytes:  # the rest of this frame is its guard, still to come
                break
            if self._resync:
                self._prev = bytes(pcm[:frame_bytes])
            del pcm[:frame_bytes]
            self.position += 1
            self._decoded_current = False
        return out

    def _decode_start(self) -> Decoded:
        """Decode the frame at the start of the buffer, remembering what its samples decoded to: on
        a transcoding path the frames never arrive whole, but the same marker comes out of the
        gateway as the same samples, call after call."""
        window = bytes(self._pcm[:self._need * 2])
        hit = self._windows.get(window)
        if hit is not None:
            return Decoded(self.position, hit[0], hit[1])
        d = self._decode(np.frombuffer(window, dtype="<i2"))
        if d.kind != GARBLED and len(self._windows) < _MEMO_MAX:
            self._windows[window] = (d.kind, d.seq)
        return d

    def _realign(self) -> bool:
        """Shift the stream to the nearest offset (within ±half a frame) at which this frame and
        the next are consecutive markers. False when there is none (a real gap or garbage)."""
        buf = self._prev + bytes(self._pcm)
        base = len(self._prev) // 2
        total = len(buf) // 2
        half = self._frame // 2
        for offset in sorted(range(-half, half), key=abs):
            start = base + offset
            if offset == 0 or start < 0 or start + self._frame + self._need > total:
                continue
            a = self._decode(np.frombuffer(buf, dtype="<i2", count=self._need, offset=start * 2))
            if a.kind != MARKER:
                continue
            b = self._decode(np.frombuffer(buf, dtype="<i2", count=self._need, offset=(start + self._frame) * 2))
            if b.kind == MARKER and b.seq == (a.seq + 1) % SEQ_MODULUS:
                self._pcm[:] = buf[start * 2:]
                self._prev = b""
                self.realignments += 1
                return True
        return False

    def _decode(self, samples: np.ndarray) -> Decoded:
        n = self._centre_n  # the mean of each segment's middle half: an exact integer sum, then / n
        means = [total / n for total in (self._centre_sums @ samples).tolist()]
        if all(-SILENCE_TOLERANCE < m < SILENCE_TOLERANCE for m in means):
            return Decoded(self.position, SILENCE, -1)
        idx = []
        for m in means:  # plain Python: 4 values, numpy's per-call overhead would dominate
            i = round((m - _LEVEL0) / _LEVEL_STEP)
            if not 0 <= i < 16 or abs(m - (_LEVEL0 + i * _LEVEL_STEP)) > LEVEL_TOLERANCE:
                return Decoded(self.position, GARBLED, -1)
            idx.append(i)
        n0, n1, n2, check = idx
        if _check_nibble(n0, n1, n2) != check:
            return Decoded(self.position, GARBLED, -1)
        return Decoded(self.position, MARKER, (n0 << 8) | (n1 << 4) | n2)
