"""The embedded default speaks English: with no keys, `serve` starts the fakes with the shared offline
speech engine (VG_SIMULATED_SPEECH, on by default), so plain speech sent to /v1/voice comes back as a
transcript and a synthesized spoken reply; `VG_SIMULATED_SPEECH=off` keeps the parrot echo."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from audio.formats import PCM16_16K
from gateway.app import create_app
from gateway.config import load_settings
from gateway.runtime import Runtime
from gateway.serve import start_server
from providers.fakes.speech import REPLY_PREFIX
from tests.harness import VoiceClient

REPO = Path(__file__).resolve().parents[2]


async def serve(settings):  # noqa: ANN001, ANN201
    runtime = Runtime(settings)
    await runtime.start()
    runner, port = await start_server(create_app(settings, runtime=runtime), "127.0.0.1", 0)
    return runtime, runner, port


def test_speech_setting_parses_on_and_off() -> None:
    assert load_settings({}).simulated_speech is True
    assert load_settings({"VG_SIMULATED_SPEECH": "off"}).simulated_speech is False
    with pytest.raises(Exception, match="VG_SIMULATED_SPEECH must be on or off"):
        load_settings({"VG_SIMULATED_SPEECH": "maybe"})


@pytest.mark.timeout(180)  # recognition runs ~2.5x slower than real time on a loaded 2-core machine
async def test_embedded_default_transcribes_and_answers_plain_speech() -> None:
    settings = load_settings({"VG_MAX_BYTES_PER_S": "64000000", "VG_MAX_FRAMES_PER_S": "100000"})
    runtime, runner, port = await serve(settings)
    try:
        assert all(fake.speech is runtime.speech for fake in runtime.fakes.values()) and runtime.speech
        samples, _ = sf.read(REPO / "fixtures" / "speech_16k.wav", dtype="int16")
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as client:
            await client.start("gemini", input_format=PCM16_16K)
            await client.send_audio(samples.tobytes() + bytes(2 * 16000 * 2), PCM16_16K)
            reply = await client.wait_for("transcript.final", lambda e: e["role"] == "assistant", timeout=150)
            assert reply["text"].startswith(REPLY_PREFIX)
            users = [e["text"] for e in client.of_type("transcript.final") if e["role"] == "user"]
            # words, not the "" a parrot gives (their accuracy: tests/fakes/test_fake_speech.py, docs/demo.md)
            assert users and len(" ".join(users).split()) >= 3
            assert users[0] in runtime.fakes["gemini"].connections[-1].transcripts
            await client.wait_for("turn.completed", timeout=30)
            assert len(client.audio) > 2 * 24000  # over a second of synthesized reply
    finally:
        await runner.cleanup()
        await runtime.stop()
    assert runtime.speech is None  # its worker process was shut down
