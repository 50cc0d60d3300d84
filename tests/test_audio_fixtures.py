"""The committed fixtures are what fixtures/make_fixtures.py says they are (other suites rely on them)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio.dtmf import detect_dtmf
from audio.g711 import ulaw_encode

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def read(name: str) -> tuple[np.ndarray, int]:
    samples, rate_hz = sf.read(FIXTURES / name, dtype="int16")
    assert samples.ndim == 1  # mono
    return samples, rate_hz


@pytest.mark.parametrize(("name", "rate_hz", "subtype", "digits"), [
    ("dtmf_all_8k_mulaw.wav", 8000, "ULAW", "1234567890*#ABCD"),
    ("dtmf_159hash_8k_mulaw.wav", 8000, "ULAW", "159#"),
    ("dtmf_all_16k.wav", 16000, "PCM_16", "1234567890*#ABCD"),
    ("dtmf_159hash_16k.wav", 16000, "PCM_16", "159#"),
    ("dtmf_all_24k.wav", 24000, "PCM_16", "1234567890*#ABCD"),
    ("dtmf_159hash_24k.wav", 24000, "PCM_16", "159#"),
    ("dtmf_browser_48k.wav", 48000, "PCM_16", "1397#"),
])
def test_dtmf_fixtures_hold_their_digits(name, rate_hz, subtype, digits):
    samples, rate = read(name)
    assert (rate, sf.info(FIXTURES / name).subtype) == (rate_hz, subtype)
    assert "".join(d.digit for d in detect_dtmf(samples.tobytes(), rate)) == digits


def test_mulaw_fixture_codes_are_our_encoders_codes():
    """Tests may forward the raw codes (Twilio payloads) and compare them byte for byte."""
    samples, _ = read("dtmf_all_8k_mulaw.wav")
    raw = (FIXTURES / "dtmf_all_8k_mulaw.wav").read_bytes()
    assert raw.endswith(ulaw_encode(samples.astype("<i2").tobytes()))


def test_browser_fixture_layout():
    samples, rate = read("dtmf_browser_48k.wav")
    loud = np.flatnonzero(np.abs(samples) > 100)
    assert loud[0] / rate == pytest.approx(0.5, abs=0.005)
    assert (len(samples) - loud[-1]) / rate == pytest.approx(1.5, abs=0.005)
    first = detect_dtmf(samples.tobytes(), rate)[0]
    assert first.digit == "1" and first.end_s - first.start_s == pytest.approx(0.15, abs=0.013)


@pytest.mark.parametrize(("name", "min_dbfs", "max_dbfs"), [
    ("silence_16k.wav", -np.inf, -np.inf), ("white_noise_16k.wav", -25, -18), ("speech_16k.wav", -30, -15),
])
def test_non_dtmf_fixtures_levels(name, min_dbfs, max_dbfs):
    samples, rate = read(name)
    assert rate == 16000
    rms = np.sqrt(np.mean(samples.astype(float) ** 2))
    level = 20 * np.log10(rms / 32768) if rms else -np.inf
    assert min_dbfs <= level <= max_dbfs
