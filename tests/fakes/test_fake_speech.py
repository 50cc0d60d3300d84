"""Plain speech with a speech engine (providers/fakes/speech.py), over each fake's real wire protocol.

A scripted engine (the SpeechEngine interface, not a mock of our code) proves the shared plumbing: the
fake's user transcript is what the engine heard and its reply audio is what the engine synthesized (a
DTMF "7", so it is unmistakable), at the fake's output rate and with the session's voice. One test runs
the real offline engine (PocketSphinx + eSpeak NG in its worker process) on the committed fixture.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import soundfile as sf

from audio.dtmf import generate_dtmf
from providers.fakes import fake_class
from providers.fakes.speech import OfflineSpeech, reply_text
from tests.fakes.test_fakes_conformance import DRIVERS, KEY, digits_in

REPO = Path(__file__).resolve().parents[2]
SPEECH_WAV = REPO / "fixtures" / "speech_16k.wav"


def load_script(name: str, path: Path):  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


speech_wer = load_script("speech_wer", REPO / "benchmarks" / "speech_wer.py")


class ScriptedSpeech:
    """Hears `heard` in any utterance; says every reply as the DTMF digit 7. Records its calls."""

    def __init__(self, heard: str = "check my balance") -> None:
        self.heard = heard
        self.transcribed: list[tuple[int, int]] = []  # (bytes, rate)
        self.spoken: list[tuple[str, int, str | None]] = []

    async def transcribe(self, pcm16: bytes, sample_rate_hz: int) -> str:
        self.transcribed.append((len(pcm16), sample_rate_hz))
        return self.heard

    async def synthesize(self, text: str, sample_rate_hz: int, voice: str | None = None) -> bytes:
        self.spoken.append((text, sample_rate_hz, voice))
        return generate_dtmf("7", sample_rate_hz, lead_silence_ms=50, trail_silence_ms=50)

    async def close(self) -> None:
        pass


def fixture_speech(rate_hz: int) -> bytes:
    samples, file_rate = sf.read(SPEECH_WAV, dtype="int16")
    assert file_rate == 16000
    pcm = samples.tobytes()
    if rate_hz != 16000:
        from audio.resample import resample
        pcm = resample(pcm, 16000, rate_hz)
    return pcm + bytes(2 * rate_hz * 2)  # 2 s of silence ends the turn and lets the reply play out


@pytest.mark.parametrize("provider", list(DRIVERS))
async def test_plain_speech_is_transcribed_and_answered_by_the_engine(provider: str) -> None:
    engine = ScriptedSpeech()
    driver = DRIVERS[provider]
    fake = await fake_class(provider)(api_key=KEY, speech=engine, **driver.server_kwargs).start()
    try:
        client = await driver.open(fake.url)
        await client.send_audio(fixture_speech(driver.rate_hz))
        assert await client.user_transcript() == "check my balance"
        assert engine.transcribed and engine.transcribed[0][1] == driver.rate_hz
        record = fake.connections[0]
        # the fixture's pause after "please." may end a turn: every utterance is the engine's words
        assert set(record.transcripts) == {"check my balance"} and record.digits == ""
        if driver.speaks:
            # the fixture's second phrase may barge in on the first answer: take the first whole one
            for _ in range(len(record.transcripts) + 1):
                audio, cut = await client.reply()
                if not cut:
                    break
            assert digits_in(audio, 24000) == "7" and not cut  # the engine's audio, not the parrot echo
            assert engine.spoken[0][:2] == (reply_text("check my balance"), 24000)
            assert record.replies[0] == reply_text("check my balance")
    finally:
        await fake.stop()


async def test_without_an_engine_plain_speech_is_still_echoed() -> None:
    driver = DRIVERS["gemini"]
    fake = await fake_class("gemini")(api_key=KEY).start()
    try:
        client = await driver.open(fake.url)
        await client.send_audio(fixture_speech(16000))
        assert await client.user_transcript() == ""
        await client.reply()  # the parrot's turn (cut short when the fixture's second phrase barges in)
        assert fake.connections[0].replies == [] and fake.connections[0].transcripts[0] == ""
    finally:
        await fake.stop()


def test_the_wer_script_knows_the_fixture_text() -> None:
    make_fixtures = load_script("make_fixtures", REPO / "fixtures" / "make_fixtures.py")
    assert speech_wer.SPEECH_TEXT == make_fixtures.SPEECH_TEXT
    assert speech_wer.word_error_rate("a b c d", "a x c") == 0.5


@pytest.mark.timeout(180)  # PocketSphinx decodes ~2.5x slower than real time on a loaded 2-core machine
async def test_offline_engine_recognises_the_fixture_and_speaks() -> None:
    engine = OfflineSpeech()
    try:
        samples, rate_hz = sf.read(SPEECH_WAV, dtype="int16")
        heard = await engine.transcribe(samples.tobytes(), rate_hz)
        assert speech_wer.word_error_rate(speech_wer.SPEECH_TEXT, heard) <= speech_wer.MEASURED_WER
        audio = await engine.synthesize(reply_text(heard), 24000, "Puck")
        assert len(audio) / 2 / 24000 > 1.0  # a spoken sentence, seconds long
        other = await engine.synthesize(reply_text(heard), 24000, "Kore")
        assert audio != other  # another voice is another speaker
    finally:
        await engine.close()


def test_fake_provider_cli_flag_gives_the_fake_the_offline_engine() -> None:
    import argparse

    from providers.fakes.cli import build_fake

    args = argparse.Namespace(provider="openai", api_key=None, host="127.0.0.1", port=0, tls_cert=None,
                              tls_key=None, faults=None, speech=True)
    assert isinstance(build_fake(args).speech, OfflineSpeech)
    args.speech = False
    assert build_fake(args).speech is None
