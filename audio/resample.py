"""Streaming PCM16 resampling between 8, 16, 24 and 48 kHz with a polyphase FIR.

Invariants: output is time-aligned with input (the filter's group delay is trimmed at the start and
returned by `flush`), so sample n of the output is at n / out_rate seconds of the same stream; after
the first chunk every whole 20 ms chunk in gives exactly 20 ms out; chunking never changes the result
by more than `CHUNKING_MAX_ABS_DIFF`.

Why not `soxr.ResampleStream`: libsoxr processes in large internal blocks, so fed 20 ms frames it
returns nothing for several frames and then bursts (python-soxr 1.1, HQ, speech in 20 ms frames:
12-115 ms held back on 8k→16k, 12-73 ms on 24k→8k; see benchmarks/audio.py). A real-time gateway
wants a fixed, short delay: this filter's is ~1.65 ms on paths touching 8 kHz and under 1 ms
otherwise, at about twice soxr's CPU per frame (~10 µs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from audio.errors import AudioError
from audio.formats import SAMPLE_RATES_HZ

# Filter design (windowed sinc, Kaiser). The cut-off sits at the lower Nyquist frequency; the pass
# band ends at 85 % of it (3.4 kHz at 8 kHz: the telephone band) and the stop band starts at 115 %,
# so only the top 15 % of the band can receive (attenuated) aliases.
STOPBAND_ATTENUATION_DB = 65.0
TRANSITION_FRACTION_OF_NYQUIST = 0.30
# A whole-buffer and a chunked run compute every output sample from the same inputs and taps; only
# the floating-point summation order inside BLAS can differ, which may flip a rounding by one LSB.
CHUNKING_MAX_ABS_DIFF = 1

_PCM16 = np.dtype("<i2")


@dataclass(frozen=True, slots=True)
class _Polyphase:
    """Output samples come in groups of L (one per filter phase); group g reads the input window
    starting at g·M + window_offset, `window` samples long, and is `window @ matrix` (shape (L,))."""

    up: int  # L: output rate / gcd
    down: int  # M: input rate / gcd
    delay: int  # group delay in samples of the intermediate rate (input rate × L)
    window_offset: int  # first input a group reads, relative to g·M (may be negative)
    matrix: np.ndarray  # shape (window, L)

    @property
    def window(self) -> int:
        return int(self.matrix.shape[0])

    def groups_ready(self, n_inputs: int) -> int:
        """Groups whose every input is among the first n_inputs samples."""
        newest = self.window_offset + self.window - 1  # relative to g·M
        return max((n_inputs - 1 - newest) // self.down + 1, 0)

    def outputs_for(self, n_inputs: int) -> int:
        """How many output samples a stream of n_inputs input samples resamples to."""
        return -(-n_inputs * self.up // self.down)


def check_rate(rate_hz: int) -> None:
    if rate_hz not in SAMPLE_RATES_HZ:
        raise AudioError(f"unsupported sample rate {rate_hz} Hz (supported: {SAMPLE_RATES_HZ})")


def _prototype_filter(in_rate_hz: int, out_rate_hz: int, up: int) -> np.ndarray:
    intermediate_hz = in_rate_hz * up
    nyquist_hz = min(in_rate_hz, out_rate_hz) / 2
    transition_rad = 2 * math.pi * TRANSITION_FRACTION_OF_NYQUIST * nyquist_hz / intermediate_hz
    # Kaiser's estimates for length and beta (Oppenheim & Schafer, 7.6); odd length so the
    # group delay is a whole number of intermediate samples.
    length = math.ceil((STOPBAND_ATTENUATION_DB - 8) / (2.285 * transition_rad)) | 1
    beta = 0.1102 * (STOPBAND_ATTENUATION_DB - 8.7)
    t = np.arange(length) - (length - 1) // 2
    cutoff = nyquist_hz / intermediate_hz  # cycles per intermediate sample
    prototype = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(length, beta)
    taps: np.ndarray = prototype * (up / prototype.sum())  # zero-stuffing divides the level by L
    return taps


@cache
def _design(in_rate_hz: int, out_rate_hz: int) -> _Polyphase:
    g = math.gcd(in_rate_hz, out_rate_hz)
    up, down = out_rate_hz // g, in_rate_hz // g
    prototype = _prototype_filter(in_rate_hz, out_rate_hz, up)
    delay = (len(prototype) - 1) // 2
    taps = -(-len(prototype) // up)  # input samples one output depends on
    padded = np.zeros(taps * up)
    padded[: len(prototype)] = prototype
    # Output n = g·L + r sits at intermediate sample m = n·M + D (the delay is trimmed, so output
    # is time-aligned); it reads h[p + t·L] · x[m // L - t] with p = m mod L.
    newest = [(r * down + delay) // up for r in range(up)]  # relative to g·M
    window_offset = newest[0] - taps + 1
    matrix = np.zeros((newest[-1] - newest[0] + taps, up), dtype=np.float32)
    for r in range(up):
        phase = (r * down + delay) % up
        kernel = padded[phase::up][::-1]  # reversed: dots with ascending input
        start = newest[r] - newest[0]
        matrix[start : start + taps, r] = kernel
    return _Polyphase(up=up, down=down, delay=delay, window_offset=window_offset, matrix=matrix)


def group_delay_s(in_rate_hz: int, out_rate_hz: int) -> float:
    """How long `ResampleStream` holds audio back (0 for equal rates)."""
    check_rate(in_rate_hz)
    check_rate(out_rate_hz)
    if in_rate_hz == out_rate_hz:
        return 0.0
    design = _design(in_rate_hz, out_rate_hz)
    return design.delay / (in_rate_hz * design.up)


class ResampleStream:
    """Resamples one PCM16 stream; keeps filter history so chunk boundaries don't click.

    `process` returns what can be computed so far; `flush` returns the held-back tail (the filter's
    group delay) and resets the stream. An odd trailing byte is carried to the next `process`; one
    still pending at `flush` is half a sample and is dropped. Empty input returns b"".
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        check_rate(in_rate_hz)
        check_rate(out_rate_hz)
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._design = None if in_rate_hz == out_rate_hz else _design(in_rate_hz, out_rate_hz)
        self._buf = np.empty(0, dtype=np.float32)  # sized by the first _reset (see _grow)
        self._reset()

    def _reset(self) -> None:
        self._odd_byte = b""
        self._n_inputs = 0  # input samples received
        self._n_groups = 0  # output groups (of L samples) produced
        if self._design is not None:
            # Samples before the stream starts are zeros; the history (the inputs later groups still
            # read) is _buf[_hoff : _hoff + _hlen], its first sample at stream index _history_start
            # (negative at first). Buffers are kept across chunks and resets: a chunk of the size
            # seen before allocates nothing but its output bytes.
            self._history_start = min(self._design.window_offset, 0)
            self._hoff, self._hlen = 0, -self._history_start
            if not len(self._buf):
                self._grow(self._hlen + 2048)
            self._buf[: self._hlen] = 0.0

    def _grow(self, need: int) -> None:
        """Room for `need` samples of history + input twice over (so the history can always be
        moved to the front without overlapping itself), and output rows to match."""
        design = self._design
        assert design is not None
        buf = np.zeros(4 * need, dtype=np.float32)
        if len(self._buf):
            buf[: self._hlen] = self._buf[self._hoff : self._hoff + self._hlen]
            self._hoff = 0
        self._buf = buf
        rows = len(buf) // design.down + 1
        self._windows = np.empty((rows, design.window), dtype=np.float32)
        self._values = np.empty((rows, design.up), dtype=np.float32)
        self._pcm = np.empty(rows * design.up, dtype=_PCM16)

    def process(self, pcm16: bytes) -> bytes:
        data = self._odd_byte + pcm16 if self._odd_byte else pcm16
        cut = len(data) & ~1
        self._odd_byte = bytes(data[cut:])
        if self._design is None:
            return data if cut == len(data) else data[:cut]
        if cut == 0:
            return b""
        samples = np.frombuffer(data, dtype=_PCM16, count=cut // 2)
        n = len(samples)
        self._n_inputs += n
        need = self._hlen + n
        if 2 * need > len(self._buf):
            self._grow(need)
        elif self._hoff + need > len(self._buf):  # move the history to the front (never overlaps)
            self._buf[: self._hlen] = self._buf[self._hoff : self._hoff + self._hlen]
            self._hoff = 0
        end = self._hoff + need
        self._buf[self._hoff + self._hlen : end] = samples  # int16 → float32 in place
        buffer = self._buf[self._hoff : end]
        return self._run(buffer, self._design.groups_ready(self._n_inputs), final_outputs=None, in_place=True)

    def flush(self) -> bytes:
        design = self._design
        tail = b""
        if design is not None:
            total = design.outputs_for(self._n_inputs)
            groups = -(-total // design.up)
            # Inputs past the end are zeros: pad up to the newest one the last group reads.
            newest = (groups - 1) * design.down + design.window_offset + design.window - 1
            missing = max(newest + 1 - (self._history_start + self._hlen), 0)
            history = self._buf[self._hoff : self._hoff + self._hlen]
            buffer = np.concatenate((history, np.zeros(missing, dtype=np.float32)))  # once per stream
            if (len(buffer) // design.down + 1) > len(self._windows):
                self._grow(len(buffer))
            tail = self._run(buffer, groups, final_outputs=total, in_place=False)
        self._reset()
        return tail

    def _run(self, buffer: np.ndarray, groups_end: int, *, final_outputs: int | None, in_place: bool) -> bytes:
        """`buffer` is the history followed by the new input: a view of _buf (`in_place`), or flush's copy."""
        design = self._design
        assert design is not None
        first = self._n_groups
        count = groups_end - first
        out = b""
        if count > 0:
            start = first * design.down + design.window_offset - self._history_start
            # Group windows step by M input samples: a strided view, copied into a kept contiguous
            # matrix so BLAS gets one (faster than matmul on the strided view).
            windows = np.ndarray((count, design.window), dtype=buffer.dtype, buffer=buffer,
                                 offset=start * buffer.itemsize,
                                 strides=(design.down * buffer.itemsize, buffer.itemsize))
            dense = self._windows[:count]
            np.copyto(dense, windows)
            values2d = self._values[:count]
            np.dot(dense, design.matrix, out=values2d)
            values = values2d.reshape(-1)  # a view: the rows are contiguous
            if final_outputs is not None:
                values = values[: final_outputs - first * design.up]
            out = _to_pcm16(values, self._pcm[: len(values)])
            self._n_groups = groups_end
        keep_from = max(self._n_groups * design.down + design.window_offset - self._history_start, 0)
        if in_place:  # the tail stays where it is in _buf
            self._hoff += keep_from
        else:  # flush's copy: the stream is reset right after
            self._hoff = 0
        self._hlen = len(buffer) - keep_from
        self._history_start += keep_from
        return out


def _to_pcm16(values: np.ndarray, out: np.ndarray | None = None) -> bytes:
    # In place and without np.clip, which costs twice as much on 20 ms frames; into `out` when given.
    np.rint(values, out=values)
    np.minimum(values, 32767, out=values)
    np.maximum(values, -32768, out=values)
    if out is None:
        return values.astype(_PCM16).tobytes()
    np.copyto(out, values, casting="unsafe")
    return out.tobytes()


def resample(pcm16: bytes, in_rate_hz: int, out_rate_hz: int) -> bytes:
    """Resample a whole buffer, tail included: len(out) == ceil(len(in) · out / in) samples."""
    stream = ResampleStream(in_rate_hz, out_rate_hz)
    return stream.process(pcm16) + stream.flush()
