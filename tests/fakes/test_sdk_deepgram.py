"""Fidelity: the official deepgram-sdk (7.x) streams to the fake `/v1/listen` and every message it gets
validates as the SDK's own pydantic model for its `type` (docs/fakes.md, docs/providers/deepgram.md §2-3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core.api_error import ApiError
from deepgram.listen.v1.types import (
    ListenV1Configure,
    ListenV1ConfigureSuccess,
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from audio.dtmf import generate_dtmf
from audio.g711 import ulaw_encode
from providers.fakes.deepgram import FakeDeepgram

KEY = "dg-sdk-key"
MODELS = {"Results": ListenV1Results, "Metadata": ListenV1Metadata, "SpeechStarted": ListenV1SpeechStarted,
          "UtteranceEnd": ListenV1UtteranceEnd, "Error": ListenV1Error, "ConfigureSuccess": ListenV1ConfigureSuccess}
# Keys the SDK models do not declare but the real service sends (docs/providers/deepgram.md §2.2: Metadata after audio).
ALLOWED_EXTRAS = {"Metadata": {"models", "model_info"}}


@pytest.fixture
async def fake():
    async with FakeDeepgram(api_key=KEY, silence_final_every_s=None) as server:
        yield server


def sdk_client(server: FakeDeepgram, key: str = KEY) -> AsyncDeepgramClient:
    origin = server.url.replace("ws://", "http://")
    env = DeepgramClientEnvironment(base=origin, production=server.url, agent=server.url, agent_rest=origin)
    return AsyncDeepgramClient(api_key=key, environment=env)


def validated(message: Any) -> Any:
    """Re-validate what the SDK built without checks (its receive path does not validate) against the
    model for the message's `type`: required fields present, types right, no unexpected keys."""
    assert not isinstance(message, (bytes, dict)), f"the SDK did not recognise {message!r}"
    model = MODELS[message.type]
    assert type(message) is model
    strict = model.model_validate(message.model_dump())
    assert set(strict.model_extra or {}) <= ALLOWED_EXTRAS.get(message.type, set())
    return strict


async def receive_until(socket: Any, kind: str, *, final: bool = False) -> list[Any]:
    """Validated messages up to and including the first of type `kind` (a final one if `final`)."""
    messages = []
    while True:
        message = validated(await asyncio.wait_for(socket.recv(), 2))
        messages.append(message)
        if message.type == kind and (not final or message.is_final):
            return messages


async def receive_rest(socket: Any) -> list[Any]:
    """Everything until the server closes; the SDK's iterator ends quietly only on a normal close."""
    return [validated(m) async for m in socket]


def transcripts(messages: list[Any], *, final: bool) -> list[str]:
    return [m.channel.alternatives[0].transcript for m in messages
            if m.type == "Results" and bool(m.is_final) == final]


async def test_sdk_streams_dtmf_and_gets_valid_results_finalize_and_close_stream(fake: FakeDeepgram) -> None:
    audio = generate_dtmf("1470", 16000, lead_silence_ms=200, trail_silence_ms=1300)
    async with sdk_client(fake).listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate=16000, interim_results="true",
            vad_events="true", utterance_end_ms="1000", endpointing="300") as socket:
        for i in range(0, len(audio), 640):
            await socket.send_media(audio[i:i + 640])
        turn = await receive_until(socket, "UtteranceEnd")
        assert turn[0].type == "SpeechStarted" and turn[0].timestamp == pytest.approx(0.2, abs=0.02)
        assert transcripts(turn, final=False) == ["1", "14", "147", "1470"]
        assert transcripts(turn, final=True) == ["1470"]
        final = turn[-2]
        assert final.speech_final is True and final.from_finalize is False
        assert turn[-1].last_word_end == final.channel.alternatives[0].words[0].end

        await socket.send_media(generate_dtmf("9", 16000))  # no pause after it: only Finalize settles it
        await socket.send_finalize()
        settled = await receive_until(socket, "Results", final=True)
        assert [m.type for m in settled] == ["SpeechStarted", "Results", "Results"]  # start, interim, final
        flushed = settled[-1]
        assert flushed.channel.alternatives[0].transcript == "9"
        assert flushed.from_finalize is True and flushed.is_final is True
        assert flushed.start == pytest.approx(final.start + final.duration)

        await socket.send_keep_alive()
        await socket.send_close_stream()
        rest = await receive_rest(socket)
    assert [m.type for m in rest] == ["Metadata"]
    assert rest[0].request_id == final.metadata.request_id and rest[0].transaction_key == "deprecated"
    record = await fake.connection_done(1)
    assert record.close_code == 1000
    assert record.query["model"] == "nova-3" and record.auth == "header:authorization-token"
    assert record.headers["user-agent"].startswith("deepgram-sdk")


async def test_sdk_twilio_style_mulaw_8k(fake: FakeDeepgram) -> None:
    audio = ulaw_encode(generate_dtmf("*5#", 8000, lead_silence_ms=100, trail_silence_ms=600))
    async with sdk_client(fake).listen.v1.connect(model="nova-2-phonecall", encoding="mulaw",
                                                  sample_rate=8000) as socket:
        for i in range(0, len(audio), 160):
            await socket.send_media(audio[i:i + 160])
        await socket.send_close_stream()
        messages = await receive_rest(socket)
    assert [m.type for m in messages] == ["Results", "Metadata"]
    assert transcripts(messages, final=True) == ["*5#"]
    assert messages[0].metadata.model_info.name == "phonecall-nova-2"
    assert messages[1].duration == pytest.approx(len(audio) / 8000, abs=0.001)


async def test_sdk_configure_is_answered(fake: FakeDeepgram) -> None:
    async with sdk_client(fake).listen.v1.connect(model="nova-3", encoding="linear16", sample_rate=16000) as socket:
        await socket.send_configure(ListenV1Configure(keyterms=["gateway"]))
        (ok,) = await receive_until(socket, "ConfigureSuccess")
        assert ok.keyterms == ["gateway"]
        await socket.send_close_stream()
        assert [m.type for m in await receive_rest(socket)] == ["Metadata"]


async def test_sdk_maps_a_wrong_key_to_its_401_error(fake: FakeDeepgram) -> None:
    with pytest.raises(ApiError) as caught:
        async with sdk_client(fake, key="wrong").listen.v1.connect(model="nova-3"):
            pass
    assert caught.value.status_code == 401
    assert fake.connections[0].refused == 401
