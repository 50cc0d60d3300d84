"""DTMF (ITU-T Q.23) tone generation and detection on PCM16 mono at 8/16/24/48 kHz.

Invariants: the detector cuts the stream into fixed blocks counted from the first sample fed, so any
chunking gives the same digits and times; a digit is reported once, when its tone has ended (or at
`flush`); times are seconds of stream time.

Detection, per block of 102 samples at 8 kHz (12.75 ms; the same duration at other rates, a length
that puts the 73 Hz spacing of the rows near a null of the block's rectangular window):
single-bin DFTs (what Goertzel computes) at the 8 tone frequencies and the columns' second
harmonics, then checks that reject what is not a dual tone: a minimum level per tone, one dominant
row and one dominant column (relative peak), bounded twist, the two tones carrying most of the block
energy (speech and noise spread theirs), and no strong second harmonic (speech and music have them).
A tone needs two consecutive hit blocks to start and two consecutive misses to end (four when the
misses are toneless, so a 20 ms dropout inside a digit does not split it; equal digits then need
a gap of at least 60 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from audio.resample import check_rate

DIGITS = "0123456789*#ABCD"
ROW_FREQS_HZ = (697.0, 770.0, 852.0, 941.0)
COL_FREQS_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_FREQS_OF_DIGIT = {key: (ROW_FREQS_HZ[r], COL_FREQS_HZ[c])
                   for r, keys in enumerate(_KEYPAD) for c, key in enumerate(keys)}

# Detection thresholds (decibels are power ratios).
BLOCK_SAMPLES_AT_8K = 102
MIN_TONE_LEVEL_DBFS = -38.0  # each tone's amplitude relative to full scale
RELATIVE_PEAK_DB = 8.0  # the winning row/column over the next strongest row/column
NORMAL_TWIST_DB = 8.0  # row louder than column
REVERSE_TWIST_DB = 6.0  # column louder than row
MIN_TONE_ENERGY_FRACTION = 0.80  # share of the block energy in the two tones
SECOND_HARMONIC_DB = 15.0  # the column's second harmonic must be this far below it
SILENCE_DBFS = -math.inf  # `last_energy_dbfs` of digital silence

_RAMP_MS = 2.0  # raised-cosine on/off ramps: no clicks, so no energy splashed across the band


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    digit: str
    start_s: float
    end_s: float


def generate_dtmf(digits: str, sample_rate_hz: int, *, tone_ms: int = 100, gap_ms: int = 100,
                  amplitude_dbfs: float = -10.0, lead_silence_ms: int = 0, trail_silence_ms: int = 0) -> bytes:
    """PCM16 with one tone per digit, each followed by `gap_ms` of silence.

    `amplitude_dbfs` is the peak of the two-tone sum (each tone gets half of it), so 0 never clips.
    Letters may be lower case. An unknown digit or a positive level is a ValueError; an unsupported
    rate is AudioError.
    """
    check_rate(sample_rate_hz)
    if amplitude_dbfs > 0:
        raise ValueError("amplitude_dbfs must be <= 0")
    if min(tone_ms, gap_ms, lead_silence_ms, trail_silence_ms) < 0:
        raise ValueError("durations must be >= 0")
    pairs = []
    for digit in digits.upper():
        if digit not in _FREQS_OF_DIGIT:
            raise ValueError(f"not a DTMF digit: {digit!r} (expected one of {DIGITS})")
        pairs.append(_FREQS_OF_DIGIT[digit])
    tone_amplitude = 32767 * 10 ** (amplitude_dbfs / 20) / 2
    tone_len = sample_rate_hz * tone_ms // 1000
    t = np.arange(tone_len) / sample_rate_hz
    envelope = _ramp_envelope(tone_len, int(sample_rate_hz * _RAMP_MS / 1000))

    def silence(ms: int) -> np.ndarray:
        return np.zeros(sample_rate_hz * ms // 1000)

    parts = [silence(lead_silence_ms)]
    for row_hz, col_hz in pairs:
        tone = tone_amplitude * envelope * (np.sin(2 * np.pi * row_hz * t) + np.sin(2 * np.pi * col_hz * t))
        parts += [tone, silence(gap_ms)]
    parts.append(silence(trail_silence_ms))
    pcm: bytes = np.rint(np.concatenate(parts)).astype("<i2").tobytes()
    return pcm


def _ramp_envelope(length: int, ramp: int) -> np.ndarray:
    envelope = np.ones(length)
    ramp = min(ramp, length // 2)
    if ramp:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        envelope[:ramp] = rise
        envelope[length - ramp :] = rise[::-1]
    return envelope


class DtmfDetector:
    """Feed PCM16 in any chunks; get each digit once, after its tone has ended.

    An odd trailing byte waits for the next chunk. `flush` reports a tone still sounding and forgets
    it; stream time and block alignment carry on, so feeding may continue after a flush.
    """

    def __init__(self, sample_rate_hz: int, *, min_tone_ms: int = 40) -> None:
        check_rate(sample_rate_hz)
        self.sample_rate_hz = sample_rate_hz
        self._block = BLOCK_SAMPLES_AT_8K * sample_rate_hz // 8000
        block_ms = 1000 * self._block / sample_rate_hz
        # A tone of min_tone_ms always covers floor(min_tone_ms / block) - 1 whole blocks.
        self._min_blocks = max(2, int(min_tone_ms / block_ms) - 1)
        self._basis = _dft_basis(self._block, sample_rate_hz)
        self._pending = b""  # bytes short of a whole block (odd byte included)
        self._blocks_done = 0
        self._last_energy_dbfs = SILENCE_DBFS
        self._previous_hit: str | None = None
        self._tone: str | None = None  # digit sounding now (confirmed by two hits)
        self._tone_first_block = 0
        self._tone_last_hit_block = 0
        self._misses = 0

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio fed so far (including a partial block not yet analysed)."""
        return (self._blocks_done * self._block + len(self._pending) // 2) / self.sample_rate_hz

    @property
    def in_tone(self) -> bool:
        return self._tone is not None

    @property
    def last_energy_dbfs(self) -> float:
        """RMS level of the last analysed block (SILENCE_DBFS for digital silence or none yet)."""
        return self._last_energy_dbfs

    def feed(self, pcm16: bytes) -> list[DtmfDigit]:
        data = self._pending + bytes(pcm16) if self._pending else bytes(pcm16)
        block_bytes = 2 * self._block
        whole = len(data) - len(data) % block_bytes
        self._pending = data[whole:]
        if not whole:
            return []
        blocks = np.frombuffer(data, dtype="<i2", count=whole // 2).reshape(-1, self._block)
        hits, energies = self._classify(blocks.astype(np.float64))
        self._last_energy_dbfs = _rms_dbfs(energies[-1], self._block)
        found: list[DtmfDigit] = []
        for hit in hits:
            self._step(hit, found)
        return found

    def flush(self) -> list[DtmfDigit]:
        found: list[DtmfDigit] = []
        if self._tone is not None:
            self._finish_tone(found)
        self._previous_hit = None
        return found

    def _classify(self, blocks: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        """The digit each block holds (None when it fails a check), and each block's energy."""
        energy = np.einsum("ij,ij->i", blocks, blocks)
        parts = blocks @ self._basis  # (n, 2·F): cosine then sine projections
        n_freqs = self._basis.shape[1] // 2
        # Energy of a sinusoid found at one frequency: 2·|X|²/N (equals N·a²/2 for amplitude a).
        tone_energy = (parts[:, :n_freqs] ** 2 + parts[:, n_freqs:] ** 2) * (2.0 / self._block)
        rows, cols, harmonics = tone_energy[:, 0:4], tone_energy[:, 4:8], tone_energy[:, 8:12]
        row = rows.argmax(axis=1)
        col = cols.argmax(axis=1)
        idx = np.arange(len(blocks))
        row_e, col_e = rows[idx, row], cols[idx, col]
        min_energy = self._block * (32768 * 10 ** (MIN_TONE_LEVEL_DBFS / 20)) ** 2 / 2
        ok = (row_e >= min_energy) & (col_e >= min_energy)
        ok &= _second_largest(rows) * 10 ** (RELATIVE_PEAK_DB / 10) <= row_e
        ok &= _second_largest(cols) * 10 ** (RELATIVE_PEAK_DB / 10) <= col_e
        ok &= col_e * 10 ** (NORMAL_TWIST_DB / 10) >= row_e
        ok &= row_e * 10 ** (REVERSE_TWIST_DB / 10) >= col_e
        ok &= row_e + col_e >= MIN_TONE_ENERGY_FRACTION * energy
        ok &= harmonics[idx, col] * 10 ** (SECOND_HARMONIC_DB / 10) <= col_e
        hits = [_KEYPAD[r][c] if good else None for r, c, good in zip(row.tolist(), col.tolist(), ok.tolist(), strict=True)]
        return hits, energy

    def _step(self, hit: str | None, found: list[DtmfDigit]) -> None:
        block = self._blocks_done
        self._blocks_done += 1
        if self._tone is not None:
            if hit == self._tone:
                self._tone_last_hit_block = block
                self._misses = 0
            else:
                self._misses += 1
                # One odd block inside a tone is tolerated. A toneless stretch must last four blocks
                # (51 ms at the default size) to end it, so a lost or glitched 20 ms packet inside a
                # digit (which spoils up to three blocks) does not make two digits; the price: two
                # EQUAL digits need a gap of ≥ 60 ms (Q.24 allows 40). Another digit ends it after two.
                if self._misses >= (2 if hit is not None else 4):
                    self._finish_tone(found)
        if self._tone is None and hit is not None and hit == self._previous_hit:
            self._tone = hit
            self._tone_first_block = block - 1
            self._tone_last_hit_block = block
            self._misses = 0
        self._previous_hit = hit

    def _finish_tone(self, found: list[DtmfDigit]) -> None:
        assert self._tone is not None
        if self._tone_last_hit_block - self._tone_first_block + 1 >= self._min_blocks:
            to_s = self._block / self.sample_rate_hz
            found.append(DtmfDigit(self._tone, self._tone_first_block * to_s, (self._tone_last_hit_block + 1) * to_s))
        self._tone = None
        self._misses = 0


def _dft_basis(block: int, sample_rate_hz: int) -> np.ndarray:
    harmonics = tuple(2 * f for f in COL_FREQS_HZ)
    freqs = np.array(ROW_FREQS_HZ + COL_FREQS_HZ + harmonics)
    phase = 2 * np.pi * np.outer(np.arange(block), freqs) / sample_rate_hz
    return np.hstack((np.cos(phase), np.sin(phase)))


def _second_largest(values: np.ndarray) -> np.ndarray:
    return np.partition(values, -2, axis=1)[:, -2]


def _rms_dbfs(energy: float, n_samples: int) -> float:
    rms = math.sqrt(energy / n_samples)
    return 20 * math.log10(rms / 32768) if rms > 0 else SILENCE_DBFS


def detect_dtmf(pcm16: bytes, sample_rate_hz: int) -> list[DtmfDigit]:
    """Digits in a whole buffer, including a tone still sounding at its end."""
    detector = DtmfDetector(sample_rate_hz)
    return detector.feed(pcm16) + detector.flush()
