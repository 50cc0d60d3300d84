"""The DTMF dialect of the fake provider servers: DTMF digits in the input audio are words; plain
speech (energy without DTMF) is kept to be echoed back (parrot) or heard by a speech engine.

It works in *stream time* (seconds of audio received), never wall time, so results do not depend on
how fast a client sends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from audio.dtmf import DtmfDetector

# A fake assistant speaks at most this many digits back (6.4 s of tones): a typed turn or tool call
# of hundreds of digits (the fuzz run sends them) would otherwise be minutes of synthesized audio
MAX_REPLY_DIGITS = 32


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str  # DTMF digits as a word, e.g. "1234#"; "" for plain speech
    start_s: float
    end_s: float
    audio: bytes  # PCM16 at the recognizer rate (for the parrot echo of plain speech)
    is_dtmf: bool


@dataclass(frozen=True, slots=True)
class SpeechStart:
    at_s: float


@dataclass(frozen=True, slots=True)
class PartialWords:
    text: str  # digits so far in the current utterance
    start_s: float
    end_s: float


DialectEvent = SpeechStart | PartialWords | Utterance


def energy_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(samples.astype(np.float64)))))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class DialectRecognizer:
    """Feed PCM16 at `sample_rate_hz`; get SpeechStart / PartialWords / Utterance events.

    Audio is analysed in 10 ms blocks of stream time, so any chunking gives the same events. A block is
    speech when its level exceeds `speech_threshold_dbfs`. An utterance ends
    after `end_silence_ms` of non-speech (stream time); its `end_s` is the end of its last speech block.
    Digits come from audio.dtmf.DtmfDetector (reported when each tone ends)."""

    BLOCK_MS = 10

    def __init__(self, sample_rate_hz: int, *, end_silence_ms: int = 300, speech_threshold_dbfs: float = -45.0) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.end_silence_s = end_silence_ms / 1000.0
        self.speech_threshold_dbfs = speech_threshold_dbfs
        self._detector = DtmfDetector(sample_rate_hz)
        self._block_samples = sample_rate_hz * self.BLOCK_MS // 1000
        self._pending = bytearray()  # bytes not yet forming a whole block (odd byte carried too)
        self._samples_done = 0  # samples analysed in whole blocks
        self._in_utterance = False
        self._utt_start_s = 0.0
        self._last_speech_end_s = 0.0
        self._digits = ""
        self._utt_audio = bytearray()
        self._utt_audio_speech_len = 0  # bytes of _utt_audio up to the end of the last speech block

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio fed so far (including a partial block not yet analysed)."""
        return (self._samples_done + len(self._pending) // 2) / self.sample_rate_hz

    @property
    def in_utterance(self) -> bool:
        return self._in_utterance

    def feed(self, pcm16: bytes) -> list[DialectEvent]:
        self._pending += pcm16
        events: list[DialectEvent] = []
        block_bytes = self._block_samples * 2
        whole = len(self._pending) - len(self._pending) % block_bytes
        for offset in range(0, whole, block_bytes):
            self._analyse(bytes(self._pending[offset:offset + block_bytes]), events)
        del self._pending[:whole]
        return events

    def flush(self) -> list[DialectEvent]:
        """End of stream (Finalize/CloseStream): close any open utterance."""
        events: list[DialectEvent] = []
        tail = bytes(self._pending[: len(self._pending) - len(self._pending) % 2])
        self._pending.clear()
        if tail:
            self._analyse(tail, events)
        for digit in self._detector.flush():
            self._add_digit(digit.digit, digit.end_s, events)
        if self._in_utterance:
            self._end_utterance(events)
        return events

    def _analyse(self, block: bytes, events: list[DialectEvent]) -> None:
        samples = np.frombuffer(block, dtype="<i2")
        t0 = self._samples_done / self.sample_rate_hz
        self._samples_done += samples.size
        t1 = self._samples_done / self.sample_rate_hz
        for digit in self._detector.feed(block):
            self._add_digit(digit.digit, digit.end_s, events)
        # Level alone decides speech: the detector's tones need >= -38 dBFS, above the threshold, and its
        # in_tone flag lags a tone's end by two blocks.
        speech = energy_dbfs(samples) > self.speech_threshold_dbfs
        if speech:
            if not self._in_utterance:
                self._begin(t0, events)
            self._utt_audio += block
            self._utt_audio_speech_len = len(self._utt_audio)
            self._last_speech_end_s = t1
        elif self._in_utterance:
            self._utt_audio += block
            if t1 - self._last_speech_end_s >= self.end_silence_s - 1e-9:
                self._end_utterance(events)

    def _begin(self, at_s: float, events: list[DialectEvent]) -> None:
        self._in_utterance = True
        self._utt_start_s = at_s
        self._last_speech_end_s = at_s
        self._digits = ""
        self._utt_audio.clear()
        self._utt_audio_speech_len = 0
        events.append(SpeechStart(at_s))

    def _add_digit(self, digit: str, end_s: float, events: list[DialectEvent]) -> None:
        if not self._in_utterance:  # a tone too short for the level check; still a word
            self._begin(end_s, events)
        self._digits += digit
        self._last_speech_end_s = max(self._last_speech_end_s, end_s)
        events.append(PartialWords(self._digits, self._utt_start_s, end_s))

    def _end_utterance(self, events: list[DialectEvent]) -> None:
        audio = bytes(self._utt_audio[: self._utt_audio_speech_len])
        events.append(Utterance(self._digits, self._utt_start_s, self._last_speech_end_s, audio,
                                bool(self._digits)))
        self._in_utterance = False
        self._digits = ""
        self._utt_audio.clear()
        self._utt_audio_speech_len = 0

