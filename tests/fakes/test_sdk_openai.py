"""Fidelity: the official openai SDK (GA realtime client) against the fake OpenAI Realtime server.

The SDK does not validate what it receives, so every raw server event is checked here against the SDK's
pydantic model for its `type` (taken from the `RealtimeServerEvent` union): an unknown type or a missing
required field fails. Keys the models do not know are reported too, except the documented session extras.
"""

from __future__ import annotations

import base64
import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import BaseModel, ValidationError

from audio.dtmf import detect_dtmf, generate_dtmf
from audio.g711 import ulaw_decode, ulaw_encode
from providers.fakes.openai import FakeOpenAI

KEY = "sk-sdk-test"
# GA `session.created/updated` carry the response-only fields id/object/expires_at (reference §2.2), which
# the SDK types the session with the request model and so sees as extras.
ALLOWED_EXTRAS = {"session.id", "session.object", "session.expires_at"}


def _models_by_type() -> dict[str, type[BaseModel]]:
    union, _info = typing.get_args(RealtimeServerEvent)  # Annotated[Union[...], PropertyInfo(discriminator)]
    models = {}
    for model in typing.get_args(union):
        (literal,) = typing.get_args(model.model_fields["type"].annotation)
        models[literal] = model
    return models


MODELS = _models_by_type()


def _extras(value: Any, path: str) -> list[str]:
    """Dotted paths of keys no SDK model declares, anywhere in a validated event."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}".lstrip(".") for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for item in value:
            found += _extras(item, f"{path}[]")
    return found


def validated(raw: bytes) -> dict[str, Any]:
    event = json.loads(raw)
    model = MODELS.get(event.get("type"))
    assert model is not None, f"server event type unknown to the SDK: {event.get('type')!r}"
    try:
        parsed = model.model_validate(event)
    except ValidationError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{event['type']} does not validate: {exc}")
    extras = [p for p in _extras(parsed, "") if p not in ALLOWED_EXTRAS]
    assert not extras, f"{event['type']} has keys the SDK does not know: {extras}"
    return event


def test_the_validator_rejects_what_it_should() -> None:
    with pytest.raises(AssertionError):
        validated(b'{"type": "response.audio.delta", "event_id": "event_1"}')  # a beta name
    with pytest.raises(pytest.fail.Exception):
        validated(b'{"type": "response.done", "event_id": "event_1"}')  # no `response`
    with pytest.raises(AssertionError):
        validated(b'{"type": "input_audio_buffer.cleared", "event_id": "event_1", "surprise": 1}')


class Session:
    """An SDK connection plus the validated events it has received."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[dict[str, Any]] = []

    async def until(self, kind: str) -> list[dict[str, Any]]:
        start = len(self.events)
        while True:
            event = validated(await self.connection.recv_bytes())
            self.events.append(event)
            if event["type"] == kind:
                return self.events[start:]

    async def append(self, audio: bytes, chunk: int) -> None:
        for start in range(0, len(audio), chunk):
            await self.connection.input_audio_buffer.append(audio=base64.b64encode(audio[start:start + chunk]).decode())

    def kinds(self) -> set[str]:
        return {e["type"] for e in self.events}


def reply_audio(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")


def first(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["type"] == kind)


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    async with FakeOpenAI(api_key=KEY, reply_playback_factor=100.0) as fake:
        client = AsyncOpenAI(api_key=KEY, websocket_base_url=f"{fake.url}/v1", max_retries=0)
        async with client.realtime.connect(model="gpt-realtime") as connection:
            s = Session(connection)
            created = (await s.until("session.created"))[-1]
            assert created["session"]["model"] == "gpt-realtime"
            yield s
        await client.close()
    assert fake.connections[0].path == "/v1/realtime" and fake.connections[0].auth == "header:authorization"


async def test_sdk_pcm24k_dtmf_round_trip(session: Session) -> None:
    await session.connection.session.update(session={
        "type": "realtime", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "gpt-4o-transcribe"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}})
    await session.until("session.updated")
    await session.append(generate_dtmf("1234", 24000, lead_silence_ms=100, trail_silence_ms=1500), chunk=4800)
    events = await session.until("response.done")
    assert first(events, "conversation.item.input_audio_transcription.completed")["transcript"] == "1234"
    assert first(events, "response.output_audio_transcript.done")["transcript"] == "1234"
    assert "".join(d.digit for d in detect_dtmf(reply_audio(events), 24000)) == "1234"
    assert events[-1]["response"]["status"] == "completed"


async def test_sdk_pcmu_both_ways_like_a_twilio_bridge(session: Session) -> None:
    await session.connection.session.update(session={
        "type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "whisper-1"}},
                  "output": {"format": {"type": "audio/pcmu"}}}})
    updated = (await session.until("session.updated"))[-1]["session"]
    assert updated["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    twilio_frames = ulaw_encode(generate_dtmf("5#09", 8000, lead_silence_ms=100, trail_silence_ms=1400))
    await session.append(twilio_frames, chunk=160)  # 20 ms μ-law frames, as Twilio sends them
    events = await session.until("response.done")
    assert first(events, "conversation.item.input_audio_transcription.completed")["usage"]["type"] == "duration"
    heard = "".join(d.digit for d in detect_dtmf(ulaw_decode(reply_audio(events)), 8000))
    assert heard == "5#09"
    assert {len(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta"} <= {800}


async def test_sdk_sees_valid_errors_barge_in_truncation_and_tool_calls(session: Session) -> None:
    conn = session.connection
    await conn.session.update(session={"type": "realtime", "voice": "alloy"})  # a beta field on GA
    assert (await session.until("error"))[-1]["error"]["code"] == "unknown_parameter"
    await conn.session.update(session={
        "type": "realtime", "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
        "tools": [{"type": "function", "name": "lookup", "description": "digits",
                   "parameters": {"type": "object", "properties": {"digits": {"type": "string"}}}}]})
    await session.until("session.updated")
    # Barge-in: new digits start while the 8-digit reply is still playing in stream time.
    await session.append(generate_dtmf("12345678", 24000, lead_silence_ms=100, trail_silence_ms=700)
                         + generate_dtmf("9", 24000, trail_silence_ms=900), chunk=4800)
    cancelled = (await session.until("response.done"))[-1]["response"]
    assert (cancelled["status"], cancelled["status_details"]["reason"]) == ("cancelled", "turn_detected")
    await session.until("response.done")
    await conn.conversation.item.truncate(item_id=cancelled["output"][0]["id"], content_index=0, audio_end_ms=300)
    await session.until("conversation.item.truncated")
    # A tool call, its output, and the spoken answer.
    await session.append(generate_dtmf("7#", 24000, trail_silence_ms=700), chunk=4800)
    call = first(await session.until("response.done"), "response.function_call_arguments.done")
    assert (call["name"], json.loads(call["arguments"])) == ("lookup", {"digits": "7"})
    await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call["call_id"],
                                              "output": "{}"})
    await session.until("conversation.item.done")
    await conn.response.create()
    await session.append(bytes(24000 * 2), chunk=4800)
    answer = await session.until("response.done")
    assert "".join(d.digit for d in detect_dtmf(reply_audio(answer), 24000)) == "7"
    await conn.response.cancel()
    assert (await session.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"
    await conn.conversation.item.retrieve(item_id=call["item_id"])
    await session.until("conversation.item.retrieved")
    await conn.conversation.item.delete(item_id=call["item_id"])
    await session.until("conversation.item.deleted")
    assert {"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
            "conversation.item.added", "conversation.item.done", "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed", "response.created", "rate_limits.updated",
            "response.output_item.added", "response.output_item.done", "response.content_part.added",
            "response.content_part.done", "response.output_audio.delta", "response.output_audio.done",
            "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
            "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.done",
            "conversation.item.truncated", "conversation.item.retrieved", "conversation.item.deleted",
            "error"} <= session.kinds()


async def test_sdk_text_output_and_manual_commit(session: Session) -> None:
    conn = session.connection
    await conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                       "audio": {"input": {"turn_detection": None}}})
    await session.until("session.updated")
    await conn.input_audio_buffer.commit()
    assert (await session.until("error"))[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    await session.append(generate_dtmf("31", 24000, trail_silence_ms=100), chunk=4800)
    await conn.input_audio_buffer.commit()
    await session.until("conversation.item.done")
    await conn.response.create()
    events = await session.until("response.done")
    assert first(events, "response.output_text.done")["text"] == "31"
    assert "response.output_audio.delta" not in {e["type"] for e in events}
    await conn.input_audio_buffer.clear()
    await session.until("input_audio_buffer.cleared")
