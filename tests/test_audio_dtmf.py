"""DTMF: every digit survives the gateway's codecs and resamplers; non-DTMF audio gives no digits."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio.dtmf import DIGITS, DtmfDetector, DtmfDigit, detect_dtmf, generate_dtmf
from audio.errors import AudioError
from audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audio.resample import resample

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RATES = (8000, 16000, 24000, 48000)
BLOCK_S = 0.01275  # detector block: 102 samples at 8 kHz; reported times are within one block


def digits_in(pcm16: bytes, rate_hz: int) -> str:
    return "".join(d.digit for d in detect_dtmf(pcm16, rate_hz))


def feed_in_chunks(pcm16: bytes, rate_hz: int, chunk_ms: int = 20) -> list[DtmfDigit]:
    detector = DtmfDetector(rate_hz)
    size = rate_hz * chunk_ms // 1000 * 2
    found = []
    for i in range(0, len(pcm16), size):
        found += detector.feed(pcm16[i : i + size])
    return found + detector.flush()


@pytest.mark.parametrize("rate_hz", RATES)
def test_all_16_digits_at_every_rate(rate_hz):
    assert digits_in(generate_dtmf(DIGITS, rate_hz), rate_hz) == DIGITS


@pytest.mark.parametrize("rate_hz", RATES)
def test_20ms_chunks_give_the_same_digits_and_times_as_the_whole_buffer(rate_hz):
    audio = generate_dtmf("159#D", rate_hz, lead_silence_ms=37)
    assert feed_in_chunks(audio, rate_hz) == detect_dtmf(audio, rate_hz)
    assert "".join(d.digit for d in feed_in_chunks(audio, rate_hz)) == "159#D"


def test_odd_sized_chunks_give_the_same_result():
    audio = generate_dtmf("72", 16000)
    detector = DtmfDetector(16000)
    found = [d for i in range(0, len(audio), 333) for d in detector.feed(audio[i : i + 333])]
    assert found + detector.flush() == detect_dtmf(audio, 16000)


def test_all_digits_after_mulaw_round_trip_at_8k():
    audio = generate_dtmf(DIGITS, 8000)
    assert digits_in(ulaw_decode(ulaw_encode(audio)), 8000) == DIGITS


def test_all_digits_after_alaw_round_trip_at_8k():
    audio = generate_dtmf(DIGITS, 8000)
    assert digits_in(alaw_decode(alaw_encode(audio)), 8000) == DIGITS


def test_all_digits_after_resampling_8k_16k_24k_8k_in_20ms_chunks():
    audio = resample(resample(resample(generate_dtmf(DIGITS, 8000), 8000, 16000), 16000, 24000), 24000, 8000)
    assert "".join(d.digit for d in feed_in_chunks(audio, 8000)) == DIGITS


def test_gemini_reply_path_24k_to_mulaw_8k():
    audio = ulaw_decode(ulaw_encode(resample(generate_dtmf(DIGITS, 24000), 24000, 8000)))
    assert digits_in(audio, 8000) == DIGITS


def test_times_are_stream_seconds_within_a_block():
    audio = generate_dtmf("48", 8000, tone_ms=100, gap_ms=150, lead_silence_ms=500)
    first, second = detect_dtmf(audio, 8000)
    assert first.digit == "4" and second.digit == "8"
    assert first.start_s == pytest.approx(0.5, abs=BLOCK_S)
    assert first.end_s == pytest.approx(0.6, abs=BLOCK_S)
    assert second.start_s == pytest.approx(0.75, abs=BLOCK_S)
    assert second.end_s == pytest.approx(0.85, abs=BLOCK_S)


def test_a_long_tone_is_one_digit_reported_when_it_ends():
    detector = DtmfDetector(16000)
    tone = generate_dtmf("5", 16000, tone_ms=2000, gap_ms=0)
    assert detector.feed(tone) == []
    assert detector.in_tone
    (digit,) = detector.feed(bytes(16000))  # 0.5 s of silence ends it
    assert digit.digit == "5" and digit.end_s == pytest.approx(2.0, abs=BLOCK_S)
    assert not detector.in_tone
    assert detector.flush() == []


def test_equal_digits_separated_by_a_gap_are_two_digits():
    assert digits_in(generate_dtmf("1155", 8000, tone_ms=60, gap_ms=60), 8000) == "1155"


def test_minimum_q24_timing_40ms_tones_40ms_gaps():
    assert digits_in(generate_dtmf(DIGITS, 8000, tone_ms=40, gap_ms=40), 8000) == DIGITS


def test_tones_shorter_than_min_tone_ms_are_ignored():
    audio = generate_dtmf("3", 8000, tone_ms=100)
    assert digits_in(audio, 8000) == "3"
    detector = DtmfDetector(8000, min_tone_ms=150)
    assert detector.feed(audio) + detector.flush() == []


def test_quiet_tones_are_still_heard():
    assert digits_in(generate_dtmf("0*", 8000, amplitude_dbfs=-30.0), 8000) == "0*"


def test_flush_reports_a_tone_still_sounding():
    detector = DtmfDetector(8000)
    assert detector.feed(generate_dtmf("9", 8000, gap_ms=0)) == []
    (digit,) = detector.flush()
    assert digit.digit == "9"
    assert detector.stream_time_s == pytest.approx(0.1)


def test_stream_time_and_energy():
    detector = DtmfDetector(16000)
    detector.feed(bytes(640))
    assert detector.stream_time_s == pytest.approx(0.02)
    assert detector.last_energy_dbfs == -np.inf
    detector.feed(generate_dtmf("1", 16000, amplitude_dbfs=-10.0, gap_ms=0))
    # Two equal tones summing to a -10 dBFS peak: RMS = peak/2 (each tone's RMS is its amplitude/√2).
    assert detector.last_energy_dbfs == pytest.approx(-16.0, abs=0.5)


# -- rejection ------------------------------------------------------------------------------------
def sine(freq_hz: float, rate_hz: int, seconds: float, amplitude: float = 10000.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq_hz * np.arange(int(rate_hz * seconds)) / rate_hz)


def pcm(wave: np.ndarray) -> bytes:
    return np.clip(np.rint(wave), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("freq_hz", [697, 770, 852, 941, 1209, 1336, 1477, 1633, 1000, 440])
def test_single_tones_are_not_digits(freq_hz):
    assert detect_dtmf(pcm(sine(freq_hz, 8000, 1.0)), 8000) == []


def test_silence_is_not_a_digit():
    assert detect_dtmf(bytes(16000 * 2), 16000) == []


@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_white_noise_is_not_a_digit(rate_hz):
    rng = np.random.default_rng(3)
    assert detect_dtmf(pcm(rng.standard_normal(rate_hz * 3) * 4000), rate_hz) == []


def test_a_dual_tone_with_strong_harmonics_is_not_a_digit():
    """A buzzy instrument/voice playing the 1-key pair: rich harmonics fail the second-harmonic check."""
    wave = sum(sine(f * k, 8000, 1.0, 8000 / k) for f in (697, 1209) for k in (1, 2, 3))
    assert detect_dtmf(pcm(wave), 8000) == []


def test_noise_on_top_of_a_tone_pair_rejects_it():
    rng = np.random.default_rng(5)
    tones = np.frombuffer(generate_dtmf("1", 8000, tone_ms=500), dtype="<i2").astype(float)
    assert detect_dtmf(pcm(tones + rng.standard_normal(len(tones)) * 4000), 8000) == []


# -- bad input ------------------------------------------------------------------------------------
def test_unknown_digit_is_a_value_error():
    with pytest.raises(ValueError):
        generate_dtmf("12E", 8000)


def test_lower_case_letters_are_accepted():
    assert digits_in(generate_dtmf("abcd", 8000), 8000) == "ABCD"


@pytest.mark.parametrize("rate_hz", [11025, 44100])
def test_unsupported_rate_is_bad_audio(rate_hz):
    with pytest.raises(AudioError):
        DtmfDetector(rate_hz)
    with pytest.raises(AudioError):
        generate_dtmf("1", rate_hz)


def test_generator_layout():
    audio = generate_dtmf("12", 8000, tone_ms=100, gap_ms=50, lead_silence_ms=20, trail_silence_ms=30)
    samples = np.frombuffer(audio, dtype="<i2")
    assert len(samples) == 8000 * (20 + 2 * (100 + 50) + 30) // 1000
    assert not samples[:160].any() and samples[160:960].any() and not samples[960:1360].any()
    assert np.abs(samples).max() <= 32767 * 10 ** (-10 / 20) + 1


# -- real speech (espeak-ng, committed fixture) ---------------------------------------------------
def read_fixture(name: str) -> tuple[bytes, int]:
    samples, rate_hz = sf.read(FIXTURES / name, dtype="int16")
    return samples.astype("<i2").tobytes(), rate_hz


def test_speech_is_not_a_digit():
    speech, rate_hz = read_fixture("speech_16k.wav")
    assert detect_dtmf(speech, rate_hz) == []


def test_speech_over_the_phone_is_not_a_digit():
    speech, _ = read_fixture("speech_16k.wav")
    phone = ulaw_decode(ulaw_encode(resample(speech, 16000, 8000)))
    assert feed_in_chunks(phone, 8000) == []


def test_digits_after_speech_are_still_heard():
    speech, _ = read_fixture("speech_16k.wav")
    audio = speech + generate_dtmf("42", 16000)
    assert [d.digit for d in feed_in_chunks(audio, 16000)] == ["4", "2"]


@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_a_lost_20ms_packet_inside_a_digit_does_not_split_it(rate_hz: int) -> None:
    """A dropout (a lost 20 ms frame replaced by silence) in the middle of a tone is still one digit."""
    audio = bytearray(generate_dtmf("3", rate_hz, tone_ms=150, gap_ms=150))
    frame = rate_hz * 2 // 50
    start = (rate_hz * 2 * 60 // 1000) // 2 * 2  # 60 ms into the tone
    audio[start:start + frame] = bytes(frame)
    assert digits_in(bytes(audio), rate_hz) == "3"
    # ...while equal digits with a real Q.24-sized gap (≥ 40 ms) stay two digits
    assert digits_in(generate_dtmf("33", rate_hz, tone_ms=100, gap_ms=60), rate_hz) == "33"
