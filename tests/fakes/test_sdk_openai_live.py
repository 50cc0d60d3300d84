"""Fidelity: the official openai SDK's GPT-Live client (`client.live.connect`) against the fake.

Every raw server event is checked against the SDK's pydantic model for its `type` (from the
`openai.types.live.ServerEvent` union): an unknown type, a missing required field or a key no model
declares fails. The Responses events nested in `response.event` are checked against the SDK's
`ResponseStreamEvent` union the same way.
"""

from __future__ import annotations

import base64
import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types.live.server_event import ServerEvent
from openai.types.responses.response_stream_event import ResponseStreamEvent
from pydantic import BaseModel, ValidationError

from audio.dtmf import detect_dtmf, generate_dtmf
from audio.g711 import ulaw_decode, ulaw_encode
from providers.fakes.openai_live import FakeOpenAILive

KEY = "sk-live-sdk-test"
# Responses lifecycle snapshots nested in response.event: our minimal snapshot's optional keys.
NESTED_ALLOWED_EXTRAS: set[str] = set()


def _models_by_type(annotated: Any) -> dict[str, type[BaseModel]]:
    union, _info = typing.get_args(annotated)  # Annotated[Union[...], PropertyInfo(discriminator)]
    models = {}
    for model in typing.get_args(union):
        (literal,) = typing.get_args(model.model_fields["type"].annotation)
        models[literal] = model
    return models


MODELS = _models_by_type(ServerEvent)
NESTED_MODELS = _models_by_type(ResponseStreamEvent)


def _extras(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}".lstrip(".") for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for item in value:
            found += _extras(item, f"{path}[]")
    return found


def _check(event: dict[str, Any], models: dict[str, type[BaseModel]], allowed: set[str]) -> None:
    model = models.get(event.get("type"))  # type: ignore[arg-type]
    assert model is not None, f"event type unknown to the SDK: {event.get('type')!r}"
    try:
        parsed = model.model_validate(event)
    except ValidationError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{event['type']} does not validate: {exc}")
    extras = [p for p in _extras(parsed, "") if p not in allowed]
    assert not extras, f"{event['type']} has keys the SDK does not know: {extras}"


def validated(raw: bytes) -> dict[str, Any]:
    event = json.loads(raw)
    _check(event, MODELS, set())
    if event["type"] == "response.event":
        _check(event["event"], NESTED_MODELS, NESTED_ALLOWED_EXTRAS)
    return event


def test_the_validator_rejects_what_it_should() -> None:
    with pytest.raises(AssertionError):
        validated(b'{"type": "response.output_audio.delta", "delta": ""}')  # a Realtime name
    with pytest.raises(pytest.fail.Exception):
        validated(b'{"type": "session.input_transcript.delta", "event_id": "e", "delta": "1"}')  # no times
    with pytest.raises(AssertionError):
        validated(b'{"type": "session.input_audio.muted", "event_id": "e", "surprise": 1}')
    with pytest.raises(AssertionError):
        validated(b'{"type": "response.event", "event_id": "e", "event": {"type": "response.nope"}}')


class Session:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events: list[dict[str, Any]] = []

    async def until(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        start, seen = len(self.events), 0
        while True:
            event = validated(await self.connection.recv_bytes())
            self.events.append(event)
            if event["type"] == kind:
                seen += 1
                if seen == count:
                    return self.events[start:]

    async def append(self, audio: bytes, chunk: int) -> None:
        for start in range(0, len(audio), chunk):
            await self.connection.session.input_audio.append(audio=base64.b64encode(audio[start:start + chunk]).decode())

    def kinds(self) -> set[str]:
        return {e["type"] for e in self.events}


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def reply_audio(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in of(events, "session.output_audio.delta"))


def text(events: list[dict[str, Any]], kind: str) -> str:
    return "".join(e["delta"] for e in of(events, kind))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAILive]:
    async with FakeOpenAILive(api_key=KEY, usage_every_s=1.0) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAILive) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{fake.port}/v1", max_retries=0)
    yield sdk
    await sdk.close()


async def start(connection: Any, **session: Any) -> Session:
    s = Session(connection)
    await connection.session.start(session={"model": "gpt-live-1", **session}, event_id="start-1")
    started = (await s.until("session.started"))[-1]
    assert started["client_event_id"] == "start-1" and started["session"]["model"] == "gpt-live-1"
    return s


async def test_sdk_connects_starts_and_hears_dtmf_back(fake: FakeOpenAILive, client: AsyncOpenAI) -> None:
    async with client.live.connect() as connection:
        s = await start(connection, instructions="Speak digits back.",
                        audio={"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "cedar"}},
                        input=[{"role": "user", "content": [{"type": "input_text", "text": "earlier 42"}]},
                               {"role": "assistant", "content": [{"type": "output_text", "text": "42"}]}])
        await s.append(generate_dtmf("1234", 24000, lead_silence_ms=100, trail_silence_ms=600), chunk=4800)
        events = await s.until("session.output_transcript.delta", count=4)
        assert text(events, "session.input_transcript.delta") == "1234"
        assert text(events, "session.output_transcript.delta") == "1234"
        deltas = of(events, "session.input_transcript.delta")
        assert all(d["start_ms"] <= d["end_ms"] for d in deltas)
        assert [d["end_ms"] for d in deltas] == sorted(d["end_ms"] for d in deltas)
        await s.append(bytes(24000 * 2), chunk=4800)  # one more second: the rest of the reply, usage
        await s.until("session.usage.updated")
        assert "".join(d.digit for d in detect_dtmf(reply_audio(s.events), 24000)) == "1234"
        await connection.session.close()
        closed = (await s.until("session.closed"))[-1]
        assert closed["reason"] == "close_requested" and closed["usage"]["seconds"] >= 1
    record = fake.connections[0]
    assert (record.path, record.auth) == ("/v1/live/sessions", "header:authorization")
    assert record.setup is not None and record.setup["audio"]["output"]["voice"] == "cedar"
    assert [i["content"][0]["text"] for i in record.items] == ["earlier 42", "42"]


async def test_sdk_pcmu_passthrough_like_a_twilio_bridge(fake: FakeOpenAILive, client: AsyncOpenAI) -> None:
    async with client.live.connect() as connection:
        s = await start(connection, audio={"format": {"type": "audio/pcmu", "rate": 8000}})
        await s.append(ulaw_encode(generate_dtmf("5*09", 8000, lead_silence_ms=100, trail_silence_ms=1400)),
                       chunk=160)  # 20 ms μ-law frames, as Twilio sends them
        events = await s.until("session.output_transcript.delta", count=4)
        await s.append(ulaw_encode(bytes(8000 * 2)), chunk=160)
        await s.until("session.usage.updated")
        heard = "".join(d.digit for d in detect_dtmf(ulaw_decode(reply_audio(s.events)), 8000))
        assert text(events, "session.input_transcript.delta") == "5*09" and heard == "5*09"


async def test_sdk_sees_tool_delegation_typed_turn_and_errors(fake: FakeOpenAILive, client: AsyncOpenAI) -> None:
    tool = {"type": "function", "name": "lookup", "description": "digits",
            "parameters": {"type": "object", "properties": {"digits": {"type": "string"}}}}
    async with client.live.connect() as connection:
        s = await start(connection, delegation={"type": "responses",
                                                "responses": {"model": "gpt-6-luna", "tools": [tool]}})
        # A bad command first: a valid error event, and the session goes on.
        await connection.session.update(session={"instructions": "new"})  # type: ignore[typeddict-unknown-key]
        assert (await s.until("error"))[-1]["error"]["code"] == "immutable_field_update"
        await s.append(generate_dtmf("7#", 24000, trail_silence_ms=600), chunk=4800)
        events = await s.until("response.event", count=6)
        delegation = of(events, "session.delegation.created")[0]["delegation"]
        assert delegation["target"] == "responses"
        done = next(e["event"] for e in of(events, "response.event")
                    if e["event"]["type"] == "response.output_item.done")
        call = done["item"]
        assert (call["name"], json.loads(call["arguments"])) == ("lookup", {"digits": "7"})
        await connection.response.item.create(item={"type": "function_call_output", "call_id": call["call_id"],
                                                    "output": '{"found": true}'})
        await connection.response.create()
        answer = await s.until("session.output_transcript.delta")
        assert text(answer, "session.output_transcript.delta") == "7"
        assert fake.connections[0].extra["tool_outputs"] == ['{"found": true}']
        # A typed turn, as appended instructions.
        await connection.session.instructions.append(content="The caller typed: 36", delegation_id=None)
        typed = await s.until("session.output_transcript.delta", count=2)
        assert "session.instructions.appended" in {e["type"] for e in typed}
        assert text(typed, "session.output_transcript.delta") == "36"
        await connection.session.input_audio.mute()
        await s.until("session.input_audio.muted")
        await connection.session.close()
        await s.until("session.closed")


async def test_sdk_client_delegation_answered_with_commentary(client: AsyncOpenAI) -> None:
    async with client.live.connect() as connection:
        s = await start(connection, delegation={"type": "client"})
        await s.append(generate_dtmf("9#", 24000, trail_silence_ms=600), chunk=4800)
        delegation = (await s.until("session.delegation.created"))[-1]["delegation"]
        assert delegation["target"] == "client" and "response_id" not in delegation
        await connection.response.create()  # needs Responses delegation
        assert "Responses delegation" in (await s.until("error"))[-1]["error"]["message"]
        await connection.session.commentary.append(content="It is 9.", delegation_id=delegation["id"])
        answer = await s.until("session.output_transcript.delta")
        assert "session.commentary.appended" in {e["type"] for e in answer}
        assert text(answer, "session.output_transcript.delta") == "9"


async def test_sdk_refused_key_and_expired_session(fake: FakeOpenAILive) -> None:
    bad = AsyncOpenAI(api_key="sk-wrong", base_url=f"http://127.0.0.1:{fake.port}/v1", max_retries=0)
    with pytest.raises(Exception) as refused:
        async with bad.live.connect():
            pass
    assert "401" in str(refused.value)
    await bad.close()
    fake.max_session_s = 0.5
    good = AsyncOpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{fake.port}/v1", max_retries=0)
    async with good.live.connect() as connection:
        s = await start(connection)
        await s.append(bytes(24000 * 2), chunk=4800)
        assert (await s.until("session.closed"))[-1]["reason"] == "expired"
    await good.close()


async def test_sdk_against_the_cli_fake_provider_openai_live() -> None:
    import asyncio
    import signal
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "voice-gateway"
    process = await asyncio.create_subprocess_exec(str(cli), "fake-provider", "openai-live", "--port", "0",
                                                   "--api-key", KEY, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip()
        assert line.startswith("listening on ws://127.0.0.1:")
        sdk = AsyncOpenAI(api_key=KEY, base_url=line.removeprefix("listening on ").replace("ws://", "http://") + "/v1",
                          max_retries=0)
        async with sdk.live.connect() as connection:
            s = await start(connection)
            await s.append(generate_dtmf("8", 24000, trail_silence_ms=600), chunk=4800)
            assert text(await s.until("session.output_transcript.delta"), "session.input_transcript.delta") == "8"
        await sdk.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
