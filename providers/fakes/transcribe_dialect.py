"""The DTMF dialect for whole files (the REST fakes): a file's transcript is its DTMF digits.

Digits closer than `word_gap_s` form one word ("159#"); audio with energy but no DTMF is the
placeholder word "speech"; silence gives "". Decoding is libsndfile's (WAV incl. μ-law, FLAC, Ogg,
MP3); anything it cannot read raises `UndecodableAudio`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
import soxr

from audio.dtmf import detect_dtmf
from providers.fakes.common import energy_dbfs

SPEECH_WORD = "speech"
DETECTOR_RATES_HZ = (8000, 16000, 24000, 48000)
SPEECH_THRESHOLD_DBFS = -45.0


class UndecodableAudio(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class FileTranscript:
    text: str
    words: tuple[Word, ...]
    duration_s: float
    channels: int


@lru_cache(maxsize=16)  # the same file sent again (benchmarks, retries) is not decoded twice
def transcribe_file(data: bytes, *, word_gap_s: float = 0.5) -> FileTranscript:
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise UndecodableAudio("failed to process audio: corrupt or unsupported data") from err
    channels = samples.shape[1]
    mono = samples.mean(axis=1).astype(np.int16) if channels > 1 else samples[:, 0]
    duration_s = len(mono) / rate if rate else 0.0
    if rate not in DETECTOR_RATES_HZ:
        mono = soxr.resample(mono, rate, 16000).astype(np.int16)
        rate = 16000
    words: list[Word] = []
    for digit in detect_dtmf(mono.tobytes(), rate):
        if words and digit.start_s - words[-1].end_s < word_gap_s:
            last = words[-1]
            words[-1] = Word(last.text + digit.digit, last.start_s, digit.end_s)
        else:
            words.append(Word(digit.digit, digit.start_s, digit.end_s))
    if not words and len(mono) and energy_dbfs(mono) > SPEECH_THRESHOLD_DBFS:
        words.append(Word(SPEECH_WORD, 0.0, round(duration_s, 3)))
    return FileTranscript(" ".join(w.text for w in words), tuple(words), duration_s, channels)
