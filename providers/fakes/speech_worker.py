"""The CPU side of the fakes' offline speech: PocketSphinx recognition and eSpeak NG synthesis.

Runs in worker processes (providers/fakes/speech.py): PocketSphinx holds the GIL for the whole decode
(measured: a 2 s utterance froze a thread-sharing event loop for 420 ms), and the fakes share the
gateway's event loop in the embedded default. Both engines ship inside their wheels (`pocketsphinx`
with its en-US model, `espeakng-loader` with libespeak-ng and its data): nothing is downloaded.
Plain synchronous functions; the models load once per worker process.
"""

from __future__ import annotations

import ctypes
import threading
import zlib

import numpy as np

RECOGNIZER_RATE_HZ = 16000  # the en-US acoustic model's rate

# eSpeak NG variants the fake "voices" map onto, so a different voice is audibly different.
ESPEAK_VARIANTS = ("m1", "f1", "m3", "f2", "m4", "f3", "m7", "f4")

_lock = threading.Lock()
_decoder = None
_espeak: _Espeak | None = None


def _get_decoder():  # noqa: ANN202 - pocketsphinx has no type stubs
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        # fwdflat off: the second search pass costs ~45 % of decode time for no accuracy gain measured on
        # the committed fixture (benchmarks/speech_wer.py).
        _decoder = Decoder(samprate=RECOGNIZER_RATE_HZ, fwdflat=False, loglevel="FATAL")
    return _decoder


def transcribe(pcm16: bytes, sample_rate_hz: int) -> str:
    """Words heard in one utterance of PCM16 mono audio ("" for none)."""
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype="<i2")
    if samples.size == 0:
        return ""
    if sample_rate_hz != RECOGNIZER_RATE_HZ:
        import soxr

        samples = soxr.resample(samples, sample_rate_hz, RECOGNIZER_RATE_HZ)
    with _lock:
        decoder = _get_decoder()
        decoder.start_utt()
        decoder.process_raw(np.ascontiguousarray(samples, dtype="<i2").tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
    if hyp is None:
        return ""
    # PocketSphinx marks fillers like <sil>, [NOISE] and alternate pronunciations "word(2)".
    words = [w.split("(")[0] for w in hyp.hypstr.split() if not w.startswith(("<", "["))]
    return " ".join(words)


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    """libespeak-ng through ctypes, in synchronous mode (espeak_Synth returns once the callback has
    received every sample). The library keeps global state: one instance per process, under `_lock`."""

    AUDIO_OUTPUT_SYNCHRONOUS = 2
    CHARS_UTF8 = 1
    RATE_PARAMETER = 1

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate_hz = self.lib.espeak_Initialize(self.AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                  espeakng_loader.get_data_path().encode(), 0)
        if self.rate_hz <= 0:
            raise RuntimeError("eSpeak NG failed to initialise")
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._on_samples)  # kept referenced while the library holds it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_samples(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: int) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 = go on

    def speak(self, text: str, voice: str) -> bytes:
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(self.RATE_PARAMETER, 165, 0)  # words per minute, as the fixture
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        self.lib.espeak_Synth(data, len(data), 0, 1, 0, self.CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks)


def espeak_voice(voice: str | None) -> str:
    """The eSpeak NG voice a provider voice name maps to: stable across runs, distinct voices differ."""
    if not voice:
        return "en-us"
    return "en-us+" + ESPEAK_VARIANTS[zlib.crc32(voice.lower().encode()) % len(ESPEAK_VARIANTS)]


def synthesize(text: str, sample_rate_hz: int, voice: str | None = None) -> bytes:
    """`text` spoken by eSpeak NG as PCM16 mono at `sample_rate_hz`."""
    global _espeak
    with _lock:
        if _espeak is None:
            _espeak = _Espeak()
        pcm = _espeak.speak(text, espeak_voice(voice))
        native = _espeak.rate_hz
    if not pcm:
        return b""
    if native == sample_rate_hz:
        return pcm
    import soxr

    samples = soxr.resample(np.frombuffer(pcm, dtype="<i2"), native, sample_rate_hz)
    return np.ascontiguousarray(samples, dtype="<i2").tobytes()


def warm_up_recognizer() -> None:
    """A recognition worker's initializer: load the model now, not on the first utterance."""
    _get_decoder()


def warm_up_synthesizer() -> None:
    """A synthesis worker's initializer: load eSpeak NG and its voice data now."""
    synthesize("ready", RECOGNIZER_RATE_HZ)
