"""The fake OpenAI Realtime server, driven by a raw websockets client on 127.0.0.1.

What a client of the real GA server would notice: the handshake and auth reactions, session validation,
the server-VAD event ladder with consistent ids, DTMF digits heard and spoken back, barge-in, tools,
truncation, errors that keep the session alive, and the fatal closes (reference §4).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audio.dtmf import detect_dtmf, generate_dtmf
from audio.g711 import alaw_decode, alaw_encode
from providers.fakes.common import Fault, FaultScript
from providers.fakes.openai import FakeOpenAI

KEY = "sk-test-key"
RECV_TIMEOUT_S = 5.0
CHUNK_24K = 4800  # 100 ms of PCM16 at 24 kHz


class Client:
    """A minimal Realtime client: JSON events in and out, with a receive timeout so a silent fake fails fast."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def recv(self) -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_S))
        self.received.append(event)
        return event

    async def until(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Events up to and including the first of type `kind` (whose fields equal `match`)."""
        events = []
        while True:
            event = await self.recv()
            events.append(event)
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return events

    async def append(self, audio: bytes, chunk: int = CHUNK_24K) -> None:
        for start in range(0, len(audio), chunk):
            await self.send("input_audio_buffer.append", audio=base64.b64encode(audio[start:start + chunk]).decode())

    async def update(self, **session: Any) -> dict[str, Any]:
        await self.send("session.update", session={"type": "realtime", **session})
        return (await self.until("session.updated"))[-1]["session"]


def reply_audio(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")


def digits_in(pcm16: bytes, rate_hz: int) -> str:
    return "".join(d.digit for d in detect_dtmf(pcm16, rate_hz))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def speech(digits: str, *, rate_hz: int = 24000, trail_ms: int = 700) -> bytes:
    return generate_dtmf(digits, rate_hz, lead_silence_ms=100, trail_silence_ms=trail_ms)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY, reply_playback_factor=100.0) as server:
        yield server


async def connect(fake: FakeOpenAI, *, key: str = KEY, model: str = "gpt-realtime", **kwargs: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return await websockets.connect(f"{fake.url}/v1/realtime?model={model}", additional_headers=headers, **kwargs)


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[Client]:
    async with await connect(fake) as ws:
        c = Client(ws)
        assert (await c.recv())["type"] == "session.created"
        await c.update(audio={"input": {"transcription": {"model": "gpt-4o-transcribe"}}})
        yield c


# -- handshake, auth, fatal errors --------------------------------------------------------------------------


async def test_session_created_first_in_ga_shape(fake: FakeOpenAI) -> None:
    async with await connect(fake, model="gpt-realtime-mini") as ws:
        event = json.loads(await ws.recv())
    assert event["type"] == "session.created" and event["event_id"].startswith("event_")
    session = event["session"]
    assert session["id"].startswith("sess_")
    assert (session["object"], session["type"], session["model"]) == ("realtime.session", "realtime", "gpt-realtime-mini")
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"] is None
    assert session["audio"]["output"]["voice"] and isinstance(session["expires_at"], int)
    assert fake.connections[0].auth == "header:authorization"
    assert "authorization" not in fake.connections[0].headers


async def test_wrong_key_gets_error_then_close_3000(fake: FakeOpenAI) -> None:
    async with await connect(fake, key="sk-wrong") as ws:
        event = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert event["type"] == "error"
    assert (event["error"]["type"], event["error"]["code"]) == ("invalid_request_error", "invalid_api_key")
    assert "sk-wrong" not in event["error"]["message"]
    assert (ws.close_code, ws.close_reason) == (3000, "invalid_request_error.invalid_api_key")


async def test_key_in_browser_subprotocol_is_accepted(fake: FakeOpenAI) -> None:
    ws = await connect(fake, key="", subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"])
    async with ws:
        assert ws.subprotocol == "realtime"
        assert json.loads(await ws.recv())["type"] == "session.created"
    assert fake.connections[0].auth == "subprotocol"
    assert KEY not in json.dumps(fake.connections[0].headers)


async def test_beta_header_is_refused_with_4000(fake: FakeOpenAI) -> None:
    async with await connect(fake, headers={"OpenAI-Beta": "realtime=v1"}) as ws:
        event = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert event["error"]["code"] == "beta_api_shape_disabled"
    assert (ws.close_code, ws.close_reason) == (4000, "invalid_request_error.beta_api_shape_disabled")


async def test_wrong_path_is_refused_at_the_upgrade(fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(f"{fake.url}/v1/realtime/calls?model=gpt-realtime",
                                 additional_headers={"Authorization": f"Bearer {KEY}"})
    assert info.value.response.status_code == 404


async def test_refuse_fault_429_has_retry_after_and_openai_error_body() -> None:
    async with FakeOpenAI(faults=FaultScript.parse("1:refuse,status=429,retry_after=7")) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(server)
    response = info.value.response
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    assert json.loads(response.body)["error"]["code"] == "rate_limit_exceeded"


# -- session.update -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("session", "code", "param"), [
    ({"instructions": "hi"}, "missing_required_parameter", "session.type"),
    ({"type": "realtime", "input_audio_format": "g711_ulaw"}, "unknown_parameter", "session.input_audio_format"),
    ({"type": "realtime", "audio": {"input": {"format": "audio/pcmu"}}}, "invalid_type", "session.audio.input.format"),
    ({"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}}, "invalid_value",
     "session.audio.output.format.rate"),
    ({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "bogus": 1}}}},
     "unknown_parameter", "session.audio.input.turn_detection.bogus"),
])
async def test_invalid_session_update_is_a_nonfatal_error(client: Client, session: dict[str, Any], code: str,
                                                          param: str) -> None:
    await client.send("session.update", session=session, event_id="evt_client_1")
    error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_client_1")
    # Nothing changed and the session goes on.
    session_now = await client.update(instructions="still here")
    assert session_now["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session_now["instructions"] == "still here"


async def test_session_updated_carries_the_full_merged_config(client: Client, fake: FakeOpenAI) -> None:
    session = await client.update(audio={"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
                                  tools=[{"type": "function", "name": "lookup", "parameters": {}}])
    assert session["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}  # kept from before
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert session["tools"][0]["name"] == "lookup"
    assert fake.connections[0].setup["audio"]["output"]["voice"] == "marin"
    assert fake.connections[0].extra["session"] == session


async def test_bad_json_and_unknown_types_get_errors_and_the_session_continues(client: Client) -> None:
    await client.ws.send("{not json")
    assert (await client.until("error"))[-1]["error"]["type"] == "invalid_request_error"
    await client.send("response.teleport", event_id="evt_9")
    error = (await client.until("error"))[-1]["error"]
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "evt_9")
    await client.send("input_audio_buffer.append", audio="%%%not-base64%%%")
    assert (await client.until("error"))[-1]["error"]["param"] == "audio"
    assert (await client.update())["type"] == "realtime"


BAD_EVENTS: list[Any] = [
    [1, 2, 3],
    {"no_type": 1},
    {"type": 7},
    {"type": "session.update"},
    {"type": "session.update", "session": "realtime"},
    {"type": "session.update", "session": {"type": "realtime", "audio": None}},
    {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "silence_duration_ms": "long"}}}}},
    {"type": "session.update", "session": {"type": "realtime", "tools": [{"type": "function"}]}},
    {"type": "session.update", "session": {"type": "realtime", "tool_choice": {"type": "function"}}},
    {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio", "text"]}},
    {"type": "response.create", "response": {"audio": "loud"}},
    {"type": "response.create", "response": {"conversation": "elsewhere"}},
    {"type": "response.create", "response": {"output_modalities": "audio"}},
    {"type": "conversation.item.create"},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": "hi"}},
    {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": 5}]}},
    {"type": "conversation.item.create", "item": {"type": "function_call_output"}},
    {"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0, "audio_end_ms": "5"},
    {"type": "conversation.item.delete", "item_id": "item_nope"},
    {"type": "input_audio_buffer.append"},
    {"type": "input_audio_buffer.append", "audio": 5},
]


async def test_bad_client_events_get_error_events_never_a_crash(client: Client, fake: FakeOpenAI,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    for bad in BAD_EVENTS:
        await client.ws.send(json.dumps(bad))
        event = await client.recv()
        assert event["type"] == "error", bad
        assert event["error"]["type"] == "invalid_request_error" and event["error"]["message"], bad
    assert (await client.update())["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert fake.connections[0].close_code is None


# -- server VAD, DTMF round trip -----------------------------------------------------------------------------


async def test_vad_dtmf_round_trip_follows_the_ga_ladder(client: Client, fake: FakeOpenAI) -> None:
    await client.append(speech("1234", trail_ms=1500))  # 500 ms end of turn + the 800 ms reply playing
    events = await client.until("response.done")
    assert types(events)[:9] == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
        "conversation.item.added", "conversation.item.done",
        "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.delta",
    ]
    by_type = {e["type"]: e for e in events}
    user_item = by_type["input_audio_buffer.speech_started"]["item_id"]
    assert by_type["input_audio_buffer.committed"]["item_id"] == user_item
    assert by_type["conversation.item.input_audio_transcription.completed"]["transcript"] == "1234"
    assert by_type["input_audio_buffer.speech_started"]["audio_start_ms"] == 0  # 100 ms lead - 300 ms padding
    assert by_type["input_audio_buffer.speech_stopped"]["audio_end_ms"] == 100 + 4 * 200 - 100 + 500
    ladder = [t for t in types(events) if t.startswith("response.") or t == "rate_limits.updated"]
    assert ladder[:4] == ["response.created", "rate_limits.updated", "response.output_item.added",
                          "response.content_part.added"]
    assert ladder[-5:] == ["response.output_audio.done", "response.output_audio_transcript.done",
                           "response.content_part.done", "response.output_item.done", "response.done"]
    response_id = by_type["response.created"]["response"]["id"]
    assistant_item = by_type["response.output_item.added"]["item"]["id"]
    for event in events:
        if event["type"].startswith("response.output_audio") or event["type"].startswith("response.content_part"):
            assert (event["response_id"], event["item_id"]) == (response_id, assistant_item)
    done = by_type["response.done"]["response"]
    assert (done["id"], done["status"], done["output"][0]["content"][0]["transcript"]) == (response_id, "completed",
                                                                                           "1234")
    assert by_type["response.output_audio_transcript.done"]["transcript"] == "1234"
    assert digits_in(reply_audio(events), 24000) == "1234"
    record = fake.connections[0]
    assert (record.digits, record.transcripts, record.audio_rate_hz) == ("1234", ["1234"], 24000)
    assert len(record.audio) == len(speech("1234", trail_ms=1500))


async def test_alaw_in_and_out(client: Client, fake: FakeOpenAI) -> None:
    await client.update(audio={"input": {"format": {"type": "audio/pcma"}},
                               "output": {"format": {"type": "audio/pcma"}}})
    await client.append(alaw_encode(speech("90*", rate_hz=8000, trail_ms=1200)), chunk=800)
    events = await client.until("response.done")
    assert digits_in(alaw_decode(reply_audio(events)), 8000) == "90*"
    assert (fake.connections[0].digits, fake.connections[0].audio_rate_hz) == ("90*", 8000)


async def test_events_do_not_depend_on_how_the_audio_is_chunked() -> None:
    async def run(chunk: int) -> list[dict[str, Any]]:
        async with FakeOpenAI(api_key=KEY, seed=3, reply_playback_factor=100.0) as server:
            async with await connect(server) as ws:
                c = Client(ws)
                await c.recv()
                await c.append(speech("56", trail_ms=1200) + speech("7", trail_ms=1200), chunk=chunk)
                await c.until("response.done")
                await c.until("response.done")
                return [e for e in c.received if e["type"] != "session.created"]  # expires_at is wall time

    assert await run(960) == await run(48000)


async def test_plain_speech_is_echoed_back(client: Client) -> None:
    t = np.arange(int(24000 * 0.4)) / 24000
    tone = (0.25 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    silence = bytes(24000 * 2)
    await client.append(silence[:4800] + tone + silence)
    events = await client.until("response.done")
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == ""
    echo = np.frombuffer(reply_audio(events), dtype="<i2").astype(np.float64)
    assert 0.35 < echo.size / 24000 < 0.5
    spectrum = np.abs(np.fft.rfft(echo))
    assert abs(np.argmax(spectrum) * 24000 / echo.size - 440) < 10


# -- responses: barge-in, cancel, truncate ------------------------------------------------------------------


async def test_reply_finishes_once_it_has_played_in_stream_time(client: Client) -> None:
    await client.append(speech("12", trail_ms=600 + 400 + 100))  # reply "12" plays 400 ms
    events = await client.until("response.done")
    assert events[-1]["response"]["status"] == "completed"


async def test_new_speech_while_the_reply_plays_cancels_it(client: Client, fake: FakeOpenAI) -> None:
    await client.append(speech("12345678", trail_ms=700) + speech("9"))
    first = await client.until("response.done")
    assert first[-1]["response"]["status"] == "cancelled"
    assert first[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    tail = types(first)[types(first).index("input_audio_buffer.speech_started", 5):]
    assert tail[:2] == ["input_audio_buffer.speech_started", "response.output_audio.done"]
    assert first[-1]["response"]["output"][0]["status"] == "incomplete"
    second = await client.until("response.done")
    assert digits_in(reply_audio(second), 24000) == "9"
    assert [r["status"] for r in fake.connections[0].extra["responses"]] == ["cancelled", "completed"]


async def test_truncate_cuts_the_transcript_to_what_was_heard(client: Client, fake: FakeOpenAI) -> None:
    await client.append(speech("12345678", trail_ms=700) + speech("9"))
    events = await client.until("response.done")
    assistant = events[-1]["response"]["output"][0]["id"]
    user = next(e for e in events if e["type"] == "input_audio_buffer.committed")["item_id"]
    await client.send("conversation.item.truncate", item_id=assistant, content_index=0, audio_end_ms=9000)
    assert "shorter than 9000ms" in (await client.until("error"))[-1]["error"]["message"]
    await client.send("conversation.item.truncate", item_id=user, content_index=0, audio_end_ms=10)
    assert (await client.until("error"))[-1]["error"]["code"] == "unsupported_content_type"
    await client.send("conversation.item.truncate", item_id=assistant, content_index=0, audio_end_ms=500)
    truncated = (await client.until("conversation.item.truncated"))[-1]
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (assistant, 500)
    await client.send("conversation.item.retrieve", item_id=assistant)
    item = (await client.until("conversation.item.retrieved"))[-1]["item"]
    assert item["content"][0]["transcript"] == "123"  # digits start at 0, 200, 400 ms
    assert fake.connections[0].extra["truncations"] == [{"item_id": assistant, "content_index": 0,
                                                        "audio_end_ms": 500}]


async def test_manual_turns_commit_then_response_create(client: Client) -> None:
    await client.update(audio={"input": {"turn_detection": None}})
    await client.append(bytes(960))  # 20 ms
    await client.send("input_audio_buffer.commit")
    error = (await client.until("error"))[-1]["error"]
    assert error["code"] == "input_audio_buffer_commit_empty" and "only has 20.00ms" in error["message"]
    await client.append(speech("77", trail_ms=100))
    await client.send("input_audio_buffer.commit")
    committed = await client.until("conversation.item.input_audio_transcription.completed")
    assert "input_audio_buffer.speech_started" not in types(committed)
    assert committed[-1]["transcript"] == "77"
    await client.send("response.create")
    events = await client.until("response.output_audio.delta")
    await client.send("response.create")
    events += await client.until("error")
    assert events[-1]["error"]["code"] == "conversation_already_has_active_response"
    await client.send("response.cancel")
    events += await client.until("response.done")
    assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert digits_in(reply_audio(events), 24000) == "77"
    await client.send("response.cancel")
    assert (await client.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"


async def test_reply_without_incoming_audio_finishes_in_wall_time() -> None:
    async with FakeOpenAI(api_key=KEY, reply_playback_factor=0.05) as server, await connect(server) as ws:
        c = Client(ws)
        await c.recv()
        await c.send("conversation.item.create",
                     item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Agent: Dial 42"}]})
        await c.send("response.create")
        events = await c.until("response.done")
    assert events[-1]["response"]["status"] == "completed"
    assert digits_in(reply_audio(events), 24000) == "42"


async def test_conversation_items_are_placed_and_remembered(client: Client, fake: FakeOpenAI) -> None:
    def text_item(text: str, role: str = "user") -> dict[str, Any]:
        kind = "output_text" if role == "assistant" else "input_text"
        return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}

    await client.send("conversation.item.create", item={**text_item("first"), "id": "item_first"})
    added = (await client.until("conversation.item.done"))[-2]
    assert (added["type"], added["previous_item_id"], added["item"]["id"]) == ("conversation.item.added", None,
                                                                               "item_first")
    await client.send("conversation.item.create", item=text_item("earlier", "assistant"), previous_item_id="root")
    assert (await client.until("conversation.item.done"))[-1]["previous_item_id"] is None
    await client.send("conversation.item.create", item=text_item("dial 5"), previous_item_id="item_first")
    assert (await client.until("conversation.item.done"))[-1]["previous_item_id"] == "item_first"
    await client.send("conversation.item.create", item=text_item("x"), previous_item_id="item_nope")
    assert (await client.until("error"))[-1]["error"]["param"] == "previous_item_id"
    record = fake.connections[0]
    assert [i["content"][0]["text"] for i in record.items] == ["first", "earlier", "dial 5"]
    assert [i["content"][0]["text"] for i in record.extra["conversation"]] == ["earlier", "first", "dial 5"]


async def test_digits_ending_in_hash_call_the_first_tool_then_reply_after_the_result(client: Client,
                                                                                    fake: FakeOpenAI) -> None:
    await client.update(tools=[{"type": "function", "name": "lookup_order", "parameters": {"type": "object"}},
                               {"type": "function", "name": "other", "parameters": {}}])
    await client.append(speech("42#"))
    call = await client.until("response.done")
    assert "response.output_audio.delta" not in types(call)
    done = next(e for e in call if e["type"] == "response.function_call_arguments.done")
    assert (done["name"], json.loads(done["arguments"])) == ("lookup_order", {"digits": "42"})
    assert call[-1]["response"]["output"][0]["type"] == "function_call"
    await client.send("conversation.item.create", item={"type": "function_call_output", "call_id": done["call_id"],
                                                        "output": '{"status": "shipped"}'})
    await client.until("conversation.item.done")
    await client.send("response.create")
    await client.append(bytes(24000 * 2))  # the caller keeps streaming silence: the reply plays out
    answer = await client.until("response.done")
    assert digits_in(reply_audio(answer), 24000) == "42"
    assert fake.connections[0].items[-1]["type"] == "function_call_output"


async def test_without_tools_hash_digits_are_spoken_back(client: Client) -> None:
    await client.append(speech("8#", trail_ms=1000))
    assert digits_in(reply_audio(await client.until("response.done")), 24000) == "8#"


# -- faults and expiry --------------------------------------------------------------------------------------


async def test_expire_fault_sends_session_expired_then_closes_1001() -> None:
    async with FakeOpenAI(api_key=KEY, faults=FaultScript().add(1, Fault(kind="expire", messages=2))) as server:
        async with await connect(server) as ws:
            c = Client(ws)
            await c.recv()
            await c.update()
            await c.send("input_audio_buffer.clear")
            events = await c.until("error")
            with pytest.raises(ConnectionClosed):
                await c.recv()
    assert events[-1]["error"] == {"type": "invalid_request_error", "code": "session_expired",
                                   "message": "Your session hit the maximum duration of 60 minutes.", "param": None,
                                   "event_id": None}
    assert (ws.close_code, ws.close_reason) == (1001, "Your session hit the maximum duration of 60 minutes.")


async def test_max_session_duration_expires_the_session() -> None:
    async with FakeOpenAI(api_key=KEY, max_session_s=0.05) as server, await connect(server) as ws:
        c = Client(ws)
        assert (await c.recv())["type"] == "session.created"
        assert (await c.recv())["error"]["code"] == "session_expired"
        with pytest.raises(ConnectionClosed):
            await c.recv()
        record = await server.connection_done(1)
    assert record.close_code == 1001 and record.extra["expired"]


async def test_malformed_fault_sends_one_unparsable_event_and_carries_on() -> None:
    async with FakeOpenAI(api_key=KEY, faults=FaultScript.parse("1:malformed,messages=1")) as server:
        async with await connect(server) as ws:
            await ws.recv()  # session.created
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            assert json.loads(await ws.recv())["type"] == "input_audio_buffer.cleared"
            with pytest.raises(json.JSONDecodeError):
                json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            assert json.loads(await ws.recv())["type"] == "input_audio_buffer.cleared"


async def test_drop_fault_counts_decoded_input_audio_bytes() -> None:
    async with FakeOpenAI(api_key=KEY, faults=FaultScript.parse("1:drop,audio_bytes=9600")) as server:
        async with await connect(server) as ws:
            c = Client(ws)
            await c.recv()
            await c.append(bytes(4800 * 3))  # 300 ms; the drop comes after the second 100 ms chunk
            with pytest.raises(ConnectionClosed):
                await c.recv()
        record = await server.connection_done(1)
    assert ws.protocol.close_rcvd is None and ws.close_code == 1006  # TCP abort: no close frame
    assert (record.faults_fired, record.audio_chunks) == (["drop"], 2)


async def test_goaway_fault_is_ignored_because_openai_has_no_such_message() -> None:
    async with FakeOpenAI(api_key=KEY, faults=FaultScript.parse("1:goaway")) as server:
        async with await connect(server) as ws:
            c = Client(ws)
            await c.recv()
            assert (await c.update())["type"] == "realtime"
    assert server.connections[0].faults_fired == ["goaway"]
