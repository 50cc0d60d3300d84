"""Streaming PCM16 resampling between 8, 16, 24 and 48 kHz with a polyphase FIR.

Invariants: output is time-aligned with input (the filter's group delay is trimmed at the start and
returned by `flush`), so sample n of the output is at n / out_rate seconds of the same stream; after
the first chunk every whole 20 ms chunk in gives exactly 20 ms out; chunking never changes the result
by more than `CHUNKING_MAX_ABS_DIFF`.

Why not `soxr.ResampleStream`: libsoxr processes in large internal blocks, so fed 20 ms frames it
returns nothing for several frames and then bursts (python-soxr 1.1, HQ, speech in 20 ms frames:
12-115 ms held back on 8k→16k, 12-73 ms on 24k→8k; see benchmarks/audio.py). A real-time gateway
wants a fixed, short delay: this filter's is ~1.65 ms on paths touching 8 kHz and under 1 ms
otherwise, at less CPU per frame than soxr (~3 µs for a 20 ms frame with G.711 decode or encode
included, against soxr's 4-5 µs without: benchmarks/audio.py, benchmarks/resample_ab.py).

Per frame the cost is numpy's per-call overhead, not arithmetic, so `ResampleStream` keeps a plan of
prebuilt views per chunk size (one pass: decode, window copy, one matrix product per 16 groups,
truncate, one table lookup that rounds, clips and encodes) and computes in scratch shared by a
thread's streams.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

import numpy as np

from audio.errors import AudioError
from audio.formats import SAMPLE_RATES_HZ

# Filter design (windowed sinc, Kaiser). The cut-off sits at the lower Nyquist frequency; the pass
# band ends at 85 % of it (3.4 kHz at 8 kHz: the telephone band) and the stop band starts at 115 %,
# so only the top 15 % of the band can receive (attenuated) aliases.
STOPBAND_ATTENUATION_DB = 65.0
TRANSITION_FRACTION_OF_NYQUIST = 0.30
# Every output sample is the same dot product of the same inputs and taps however the stream is cut;
# only the floating-point summation order inside BLAS can differ (a block of `BLOCK_GROUPS` groups is
# one product, a leftover group another), which may flip a rounding by one LSB.
CHUNKING_MAX_ABS_DIFF = 1
# Groups (of L output samples) computed as one row of the FIR's matrix product: 16 turns the (groups ×
# taps) window copy and product into one a sixteenth as tall, about twice as fast on 20 ms frames
# (4, 8, 16, 32 measured: 16 best or level on every pair; every 20 ms frame is a multiple of 16 groups).
BLOCK_GROUPS = 16
# The stream's matrices hold the taps × OUTPUT_SCALE: the product is in half LSBs, so truncating it to
# an integer (a cast, cheaper than np.rint) tells which integer is nearest (see widen; a tie k + ½
# goes away from zero instead of to even: one LSB, on exact ties only).
OUTPUT_SCALE = 2
# The truncated product indexes the output tables modulo this (np.take mode="wrap"): the taps' largest
# absolute sum (2.35) keeps any PCM16 input's output within ±77 005 LSB, ±154 010 half LSBs (_design).
WIDE_TABLE_SIZE = 2 * 155_000

_PCM16 = np.dtype("<i2")


@dataclass(frozen=True, slots=True)
class _Polyphase:
    """Output samples come in groups of L (one per filter phase); group g reads the input window
    starting at g·M + window_offset, `window` samples long, and is `window @ matrix` (shape (L,)).
    `block_matrix` computes BLOCK_GROUPS consecutive groups from one window BLOCK_GROUPS·M - M longer.
    Both hold the taps × OUTPUT_SCALE."""

    up: int  # L: output rate / gcd
    down: int  # M: input rate / gcd
    delay: int  # group delay in samples of the intermediate rate (input rate × L)
    window_offset: int  # first input a group reads, relative to g·M (always negative)
    matrix: np.ndarray  # shape (window, L)
    block_matrix: np.ndarray  # shape (window + (BLOCK_GROUPS - 1)·M, BLOCK_GROUPS·L)

    @property
    def window(self) -> int:
        return int(self.matrix.shape[0])

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
    matrix *= OUTPUT_SCALE  # exact (a power of two)
    window = matrix.shape[0]
    block_matrix = np.zeros((window + (BLOCK_GROUPS - 1) * down, BLOCK_GROUPS * up), dtype=np.float32)
    for j in range(BLOCK_GROUPS):
        block_matrix[j * down : j * down + window, j * up : (j + 1) * up] = matrix
    # The stream keeps the history starting at the next group's window: the first one starts before
    # the stream (zeros), never after it. The output tables cover the largest possible output.
    assert window_offset < 0
    assert 32768 * float(np.abs(matrix).sum(axis=0).max()) < WIDE_TABLE_SIZE // 2  # in half LSBs
    return _Polyphase(up=up, down=down, delay=delay, window_offset=window_offset, matrix=matrix,
                      block_matrix=block_matrix)


def group_delay_s(in_rate_hz: int, out_rate_hz: int) -> float:
    """How long `ResampleStream` holds audio back (0 for equal rates)."""
    check_rate(in_rate_hz)
    check_rate(out_rate_hz)
    if in_rate_hz == out_rate_hz:
        return 0.0
    design = _design(in_rate_hz, out_rate_hz)
    return design.delay / (in_rate_hz * design.up)


def widen(table_by_pcm16: np.ndarray) -> np.ndarray:
    """A table indexed by a PCM16 sample's bit pattern (65 536 entries) → the table the filter output
    is looked up in: WIDE_TABLE_SIZE entries indexed, modulo WIDE_TABLE_SIZE, by j = trunc(2·v) for an
    output v (|j| < WIDE_TABLE_SIZE / 2), each the entry of v rounded to the nearest integer and
    clipped to PCM16. 2·v in [j, j + 1) (or (j - 1, j] below 0) rounds to ±(|j| + 1) // 2."""
    # Laid out piecewise (no temporaries the size of the table): j = 0 → 0; j = 2k - 1, 2k → k up to
    # 32 767, then clipped; j = -(2k - 1), -2k → -k down to -32 768, then clipped.
    half, top = WIDE_TABLE_SIZE // 2, 1 << 16
    wide = np.empty(WIDE_TABLE_SIZE, dtype=table_by_pcm16.dtype)
    wide[0] = table_by_pcm16[0]
    wide[1 : top - 1] = np.repeat(table_by_pcm16[1 : top // 2], 2)
    wide[top - 1 : half] = table_by_pcm16[top // 2 - 1]
    wide[half : WIDE_TABLE_SIZE - top] = table_by_pcm16[top // 2]  # -32 768
    wide[WIDE_TABLE_SIZE - top :] = np.repeat(table_by_pcm16[top // 2 :], 2)
    return wide


@cache
def pcm16_output_table() -> np.ndarray:
    """The wide table for PCM16 output: the clipped sample itself."""
    return widen(np.arange(1 << 16, dtype=np.uint16).view(_PCM16))


# Chunks up to this many input samples compute in the thread's shared scratch and keep their plan for
# the next chunk of that size (20 ms at 48 kHz is 960); bigger ones (whole buffers) get their own.
_PLANNED_INPUT_SAMPLES = 4096
_MAX_PLANS = 8
_BUFFER_SLACK = 1024  # input samples a stream's buffer holds beyond the history (grows on demand)
_F32 = np.dtype(np.float32)
_INTP = np.dtype(np.intp)
_NO_STEPS: Mapping[int, Callable[[bytes], bytes]] = MappingProxyType({})
_get_ident = threading.get_ident
_thread_scratch = threading.local()


class _Scratch:
    """What a step computes in, for up to `groups` output groups: the window copies, the product,
    its truncation and the output. A step uses it only while it runs and a thread runs one step at a
    time, so a thread's streams share one per design and output type: 100 calls' frames then work in
    the same few kB instead of 100 sets (cache misses are most of the cost in a busy gateway)."""

    def __init__(self, design: _Polyphase, out_dtype: np.dtype, groups: int) -> None:
        blocks = groups // BLOCK_GROUPS + 1
        size = blocks * BLOCK_GROUPS * design.up
        self.groups = groups
        self.dense_q = np.empty((blocks, design.block_matrix.shape[0]), dtype=_F32)
        self.dense_r = np.empty((BLOCK_GROUPS, design.window), dtype=_F32)
        self.values = np.empty(size, dtype=_F32)
        self.values_q = self.values.reshape(blocks, BLOCK_GROUPS * design.up)  # views of values
        self.values_r = self.values.reshape(blocks * BLOCK_GROUPS, design.up)
        self.index = np.empty(size, dtype=_INTP)
        self.out = np.empty(size, dtype=out_dtype)


def _scratch(design: _Polyphase, out_dtype: np.dtype, groups: int) -> _Scratch:
    """This thread's scratch for `design` with room for `groups` (a private one beyond the planned sizes)."""
    if groups > _PLANNED_INPUT_SAMPLES // design.down + design.window:
        return _Scratch(design, out_dtype, groups)
    shared: dict[tuple[int, int, str], _Scratch] | None = getattr(_thread_scratch, "by_design", None)
    if shared is None:
        shared = _thread_scratch.by_design = {}
    key = (design.up, design.down, out_dtype.str)
    scratch = shared.get(key)
    if scratch is None or scratch.groups < groups:
        scratch = shared[key] = _Scratch(design, out_dtype, max(groups, 1024 // design.down))
    return scratch


class ResampleStream:
    """Resamples one stream; keeps filter history so chunk boundaries don't click.

    Input is PCM16 or, with `decode_table` (the float32 sample of each byte, audio/g711.py), one byte
    per sample (G.711); output is PCM16 or, with `encode_table` (a `widen`ed table), what it maps to.
    Decoding, filtering and encoding run in one pass per chunk, with a plan of views kept per chunk
    size: a 20 ms frame costs a handful of numpy calls and allocates only its output bytes.

    `process` returns what can be computed so far; `flush` returns the held-back tail (the filter's
    group delay) and resets the stream. For PCM16 input an odd trailing byte is carried to the next
    `process`; one still pending at `flush` is half a sample and is dropped. Empty input returns b"".
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int, *, decode_table: np.ndarray | None = None,
                 encode_table: np.ndarray | None = None) -> None:
        check_rate(in_rate_hz)
        check_rate(out_rate_hz)
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._design = None if in_rate_hz == out_rate_hz else _design(in_rate_hz, out_rate_hz)
        if self._design is None and (decode_table is not None or encode_table is not None):
            raise ValueError("G.711 tables need a rate change (audio/g711.py converts at equal rates)")
        self._decode = decode_table
        self._encode = pcm16_output_table() if encode_table is None else encode_table
        # Planned steps by history length, then by chunk length in bytes; _steps is the current
        # history length's (nothing while an odd byte waits), _thread whose scratch they use.
        self._plans: dict[int, dict[int, Callable[[bytes], bytes]]] = {}
        self._n_plans = 0
        self._thread = _get_ident()
        self._scratch: _Scratch | None = None
        self._buf, self._hlen = np.zeros(0, dtype=_F32), 0
        self._resize(_BUFFER_SLACK - (self._design.window_offset if self._design else 0))
        self._reset()

    def _resize(self, size: int) -> None:
        """A buffer for history + chunk of `size` samples (the history kept), and every group window
        in it as views: plain ones and BLOCK_GROUPS-long ones."""
        buf = np.zeros(size, dtype=_F32)
        buf[: self._hlen] = self._buf[: self._hlen]
        self._buf = buf
        design = self._design
        if design is not None:
            groups = max((size - design.window) // design.down + 1, 0)
            as_strided = np.lib.stride_tricks.as_strided
            self._windows = as_strided(buf, (groups, design.window), (design.down * 4, 4))
            self._blocks = as_strided(buf, (groups // BLOCK_GROUPS, design.block_matrix.shape[0]),
                                      (BLOCK_GROUPS * design.down * 4, 4))
        self._forget_plans()  # they hold views of the old buffer

    def _reset(self) -> None:
        self._odd_byte = b""
        self._n_inputs = 0  # input samples received
        # The history is _buf[:_hlen]: the inputs from the next output group's window on (samples
        # before the stream starts are zeros).
        self._hlen = 0
        if self._design is not None:
            self._hlen = -self._design.window_offset
            self._buf[: self._hlen] = 0.0
        self._steps = self._plans.get(self._hlen) or _NO_STEPS

    def process(self, data: bytes) -> bytes:
        if self._thread == _get_ident():
            step = self._steps.get(len(data))
            if step is not None:  # a chunk of a size seen before, at this history length
                return step(data)
        return self._process(data)

    def _process(self, data: bytes) -> bytes:
        """The general path: odd bytes, equal rates, empty input, another thread, a new chunk size."""
        if self._thread != _get_ident():  # the plans' scratch belongs to another thread
            self._forget_plans()
            self._scratch = None
            self._thread = _get_ident()
        odd = b""
        if self._decode is None:  # PCM16: two bytes per sample, an odd one waits
            if self._odd_byte:
                data = self._odd_byte + data
            n = len(data) >> 1
            if len(data) & 1:
                odd = bytes(data[-1:])
                if self._design is None:
                    data = data[:-1]
        else:
            n = len(data)
        self._odd_byte = odd
        if self._design is None or not n:
            out = data if self._design is None else b""
        else:
            out = self._plan(n, len(data) - len(odd))(data)
        if odd:
            self._steps = _NO_STEPS
        return out

    def _forget_plans(self) -> None:
        self._plans, self._n_plans, self._steps = {}, 0, _NO_STEPS

    def _plan(self, n: int, n_bytes: int) -> Callable[[bytes], bytes]:
        """The step for a chunk of n samples (n_bytes) arriving with the current history: views of
        the buffer and scratch, taken once (slices: a new chunk size costs a microsecond or two)."""
        design = self._design
        assert design is not None
        hlen = self._hlen
        total = hlen + n
        if total > len(self._buf):
            self._resize(total + _BUFFER_SLACK)
        buf = self._buf
        down, up, window = design.down, design.up, design.window
        count = max((total - window) // down + 1, 0)  # groups whose whole window is here
        q, r = divmod(count, BLOCK_GROUPS)
        split = q * BLOCK_GROUPS
        keep = count * down  # the history moves to the front: inputs from the next window on
        new_hlen = total - keep
        scratch = self._scratch
        if scratch is None or scratch.groups < count:
            scratch = _scratch(design, self._encode.dtype, count)
            if n <= _PLANNED_INPUT_SAMPLES:
                self._scratch = scratch
        windows_q, dense_q, values_q = self._blocks[:q], scratch.dense_q[:q], scratch.values_q[:q]
        windows_r, dense_r = self._windows[split:count], scratch.dense_r[:r]
        values_r = scratch.values_r[split:count]
        values, index, out = scratch.values[: count * up], scratch.index[: count * up], scratch.out[: count * up]
        block_matrix, matrix, table, decode = design.block_matrix, design.matrix, self._encode, self._decode
        chunk, history_to, history_from = buf[hlen:total], buf[:new_hlen], buf[keep:total]
        move, same_history = 0 < keep and new_hlen > 0, new_hlen == hlen
        frombuffer, copyto, dot = np.frombuffer, np.copyto, np.dot
        stream = self

        def step(data: bytes) -> bytes:
            if decode is None:
                copyto(chunk, frombuffer(data, _PCM16, n))  # int16 → float32
            else:
                decode.take(frombuffer(data, np.uint8, n), out=chunk, mode="wrap")
            stream._n_inputs += n
            if not same_history:
                stream._hlen = new_hlen
                stream._steps = stream._plans.get(new_hlen) or _NO_STEPS
            if not count:
                return b""
            if q:  # copied into a dense matrix: BLAS wants one, and it beats matmul on the strided view
                copyto(dense_q, windows_q)
                dot(dense_q, block_matrix, out=values_q)
            if r:
                copyto(dense_r, windows_r)
                dot(dense_r, matrix, out=values_r)
            copyto(index, values, casting="unsafe")  # truncates half LSBs: see OUTPUT_SCALE
            table.take(index, out=out, mode="wrap")  # rounds, clips (and encodes): see widen
            if move:
                copyto(history_to, history_from)
            return out.tobytes()

        if n <= _PLANNED_INPUT_SAMPLES:
            if self._n_plans >= _MAX_PLANS:
                self._forget_plans()
            self._plans.setdefault(hlen, {})[n_bytes] = step
            self._n_plans += 1
            if self._hlen == hlen:
                self._steps = self._plans[hlen]
        return step

    def flush(self) -> bytes:
        design = self._design
        tail = b""
        if design is not None:
            total = design.outputs_for(self._n_inputs)
            done = (self._n_inputs - self._hlen - design.window_offset) // design.down  # groups given
            remaining = -(-total // design.up) - done
            if remaining > 0:  # inputs past the end are zeros
                length = (remaining - 1) * design.down + design.window
                buffer = np.zeros(max(length, self._hlen), dtype=_F32)
                buffer[: self._hlen] = self._buf[: self._hlen]
                windows = np.lib.stride_tricks.as_strided(buffer, (remaining, design.window),
                                                          (design.down * 4, 4))
                values = np.dot(np.ascontiguousarray(windows), design.matrix).reshape(-1)
                index = values[: total - done * design.up].astype(np.intp)  # truncated half LSBs
                tail = self._encode.take(index, mode="wrap").tobytes()
        self._reset()
        return tail


def resample(pcm16: bytes, in_rate_hz: int, out_rate_hz: int) -> bytes:
    """Resample a whole buffer, tail included: len(out) == ceil(len(in) · out / in) samples."""
    stream = ResampleStream(in_rate_hz, out_rate_hz)
    return stream.process(pcm16) + stream.flush()
