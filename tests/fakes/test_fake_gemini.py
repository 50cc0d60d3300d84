"""The fake Gemini Live server, driven by a raw websockets client speaking the wire protocol
(docs/providers/gemini.md). Every server frame is checked to be binary JSON that validates strictly as
the official SDK's LiveServerMessage."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
from google.genai import types
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audio.dtmf import detect_dtmf, generate_dtmf
from providers.fakes.common import FaultScript
from providers.fakes.gemini import FakeGemini

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
KEY = "test-key"


def silence(ms: int, rate_hz: int = 16000) -> bytes:
    return b"\0\0" * (rate_hz * ms // 1000)


def noise(ms: int, rate_hz: int = 16000) -> bytes:
    samples = np.random.default_rng(5).normal(0, 3000, rate_hz * ms // 1000)
    return samples.astype("<i2").tobytes()


class GeminiClient:
    """A minimal raw-protocol client; `recv` validates each server frame like the SDK would, strictly."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def setup(self, **fields: Any) -> dict[str, Any]:
        await self.send({"setup": {"model": MODEL, **fields}})
        return await self.recv()

    async def recv(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), 2)  # a missing message fails fast instead of hanging
        assert isinstance(raw, bytes), "Gemini sends JSON in binary frames"
        types.LiveServerMessage.model_validate_json(raw, strict=True)
        message = json.loads(raw)
        self.received.append(message)
        return message

    async def recv_until(self, predicate: Any) -> list[dict[str, Any]]:
        messages = []
        while True:
            messages.append(await self.recv())
            if predicate(messages[-1]):
                return messages

    async def stream(self, pcm16: bytes, *, rate_hz: int = 16000, chunk_ms: int = 20, snake: bool = False,
                     urlsafe: bool = False) -> None:
        step = 2 * rate_hz * chunk_ms // 1000
        encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
        for offset in range(0, len(pcm16), step):
            blob = {"data": encode(pcm16[offset:offset + step]).decode(),
                    ("mime_type" if snake else "mimeType"): f"audio/pcm;rate={rate_hz}"}
            await self.send({("realtime_input" if snake else "realtimeInput"): {"audio": blob}})


def turn_complete(message: dict[str, Any]) -> bool:
    return bool(message.get("serverContent", {}).get("turnComplete"))


def reply_audio(messages: list[dict[str, Any]]) -> bytes:
    audio = b""
    for message in messages:
        for part in message.get("serverContent", {}).get("modelTurn", {}).get("parts", []):
            assert part["inlineData"]["mimeType"] == "audio/pcm;rate=24000"
            audio += base64.b64decode(part["inlineData"]["data"])
    return audio


def content_field(messages: list[dict[str, Any]], name: str) -> list[Any]:
    return [m["serverContent"][name] for m in messages if name in m.get("serverContent", {})]


@pytest.fixture
async def fake() -> Any:
    async with FakeGemini(api_key=KEY) as server:
        yield server


async def open_client(fake: FakeGemini, query: str = f"?key={KEY}", path: str = PATH, **kwargs: Any) -> GeminiClient:
    return GeminiClient(await connect(f"{fake.url}{path}{query}", **kwargs))


# -- handshake and setup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "query", "headers", "auth"), [
    (PATH, f"?key={KEY}", {}, "query:key"),
    (PATH.replace("v1beta", "v1"), "", {"x-goog-api-key": KEY}, "header:x-goog-api-key"),
    (PATH.replace("v1beta", "v1alpha") + "Constrained", f"?access_token={KEY}", {}, "query:access_token"),
    (PATH.replace("v1beta", "v1alpha") + "Constrained", "", {"Authorization": f"Token {KEY}"}, "header:authorization"),
])
async def test_every_documented_auth_form_reaches_setup_complete(fake: FakeGemini, path: str, query: str,
                                                                 headers: dict[str, str], auth: str) -> None:
    client = await open_client(fake, query, path, additional_headers=headers)
    raw_first = None
    await client.send({"setup": {"model": MODEL}})
    raw_first = await client.ws.recv()
    assert raw_first == b'{\n  "setupComplete": {}\n}\n'  # pretty-printed binary frame, like the real server
    await client.ws.close()
    record = await fake.connection_done(1)
    assert record.auth == auth and record.setup == {"model": MODEL}
    assert "x-goog-api-key" not in record.headers and "key" not in record.query


async def test_wrong_key_is_closed_with_1007_right_after_setup(fake: FakeGemini) -> None:
    client = await open_client(fake, "?key=wrong")  # the upgrade itself succeeds
    await client.send({"setup": {"model": MODEL}})
    with pytest.raises(ConnectionClosed) as err:
        await client.recv()
    assert (err.value.rcvd.code, err.value.rcvd.reason) == (1007, "API key not valid. Please pass a valid API key.")


async def test_missing_key_is_refused_403_and_bad_path_404(fake: FakeGemini) -> None:
    with pytest.raises(InvalidStatus) as missing:
        await connect(f"{fake.url}{PATH}")
    assert missing.value.response.status_code == 403
    assert json.loads(missing.value.response.body)["error"]["status"] == "PERMISSION_DENIED"
    with pytest.raises(InvalidStatus) as bad_path:
        await connect(f"{fake.url}/v1/realtime?key={KEY}")
    assert bad_path.value.response.status_code == 404


async def test_unknown_model_is_closed_1008_with_the_documented_reason(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.send({"setup": {"model": "models/gemini-nope"}})
    with pytest.raises(ConnectionClosed) as err:
        await client.recv()
    assert err.value.rcvd.code == 1008
    assert err.value.rcvd.reason.startswith(
        "models/gemini-nope is not found for API version v1beta, or is not supported for bidiGenerateContent.")


@pytest.mark.parametrize(("first", "reason_start"), [
    ("not json", "Invalid JSON payload received."),
    ({"realtimeInput": {"text": "hi"}}, "Request contains an invalid argument."),
    ({"setup": {"model": MODEL}, "extra": {}}, "Request contains an invalid argument."),
])
async def test_setup_must_come_first_as_valid_json(fake: FakeGemini, first: Any, reason_start: str) -> None:
    client = await open_client(fake)
    await client.ws.send(first if isinstance(first, str) else json.dumps(first))
    with pytest.raises(ConnectionClosed) as err:
        await client.recv()
    assert err.value.rcvd.code == 1007 and err.value.rcvd.reason.startswith(reason_start)


@pytest.mark.parametrize("message", [
    {"bogusField": {}},
    {"realtimeInput": {"audio": {"data": "!!!not base64", "mimeType": "audio/pcm;rate=16000"}}},
    {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/wav"}}},
    {"toolResponse": {"functionResponses": [{"name": "f", "response": {}}]}},  # no id
    {"toolResponse": {"functionResponses": [{"id": "x", "response": "not an object"}]}},
    {"setup": {"model": MODEL}},  # a second setup
])
async def test_bad_client_messages_close_with_1007(fake: FakeGemini, message: dict[str, Any]) -> None:
    client = await open_client(fake)
    await client.setup()
    await client.send(message)
    with pytest.raises(ConnectionClosed) as err:
        await client.recv()
    assert err.value.rcvd.code == 1007
    if "bogusField" in message:
        assert err.value.rcvd.reason == 'Invalid JSON payload received. Unknown name "bogusField": Cannot find field.'


# -- the DTMF dialect ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("snake", "urlsafe", "rate_hz"), [(False, False, 16000), (True, True, 16000),
                                                           (False, True, 8000)])
async def test_dtmf_round_trip_transcripts_and_reply_tones(fake: FakeGemini, snake: bool, urlsafe: bool,
                                                           rate_hz: int) -> None:
    client = await open_client(fake)
    await client.setup(inputAudioTranscription={}, output_audio_transcription={})
    sent = generate_dtmf("123", rate_hz) + silence(400, rate_hz)
    await client.stream(sent, rate_hz=rate_hz, snake=snake, urlsafe=urlsafe)
    messages = await client.recv_until(turn_complete)

    fragments = content_field(messages, "inputTranscription")
    assert fragments == [{"text": "1"}, {"text": "2"}, {"text": "3"}, {"text": "", "finished": True}]
    assert content_field(messages, "outputTranscription") == [{"text": "123"}]
    assert content_field(messages, "generationComplete") == [True]
    assert "usageMetadata" in messages[-1] and messages[-1]["usageMetadata"]["responseTokenCount"] > 0
    audio = reply_audio(messages)
    assert len(audio) == len(generate_dtmf("123", 24000))
    assert "".join(d.digit for d in detect_dtmf(audio, 24000)) == "123"
    chunk_sizes = {len(base64.b64decode(p["inlineData"]["data"])) for m in messages
                   for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])}
    assert max(chunk_sizes) == 4800  # 100 ms chunks at 24 kHz

    await client.ws.close()
    record = await fake.connection_done(1)
    assert record.digits == "123" and record.transcripts == ["123"]
    assert record.audio_rate_hz == rate_hz and bytes(record.audio) == sent
    assert record.audio_chunks == len(sent) // (2 * rate_hz // 50)


async def test_plain_speech_is_echoed_back_after_the_utterance(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup(outputAudioTranscription={})
    await client.stream(noise(400) + silence(400))
    messages = await client.recv_until(turn_complete)
    assert content_field(messages, "outputTranscription") == []
    audio = np.frombuffer(reply_audio(messages), "<i2")
    assert len(audio) == pytest.approx(0.4 * 24000, abs=24000 * 0.011)
    assert np.sqrt(np.mean(audio.astype(float) ** 2)) > 1000  # it is the speech, not silence


async def test_audio_stream_end_closes_the_utterance_without_waiting_for_silence(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup(inputAudioTranscription={})
    await client.stream(generate_dtmf("9", 16000))
    await client.send({"realtimeInput": {"audioStreamEnd": True}})
    messages = await client.recv_until(turn_complete)
    assert {"text": "", "finished": True} in content_field(messages, "inputTranscription")
    assert "".join(d.digit for d in detect_dtmf(reply_audio(messages), 24000)) == "9"


async def test_client_content_turns_are_recorded_and_turn_complete_gets_an_answer(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup()
    history = [{"role": "user", "parts": [{"text": "My order is 1234."}]},
               {"role": "model", "parts": [{"text": "Thanks."}]}]
    await client.send({"client_content": {"turns": history, "turnComplete": False}})
    await client.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "call 56"}]}],
                                         "turn_complete": True}})
    messages = await client.recv_until(turn_complete)
    assert "".join(d.digit for d in detect_dtmf(reply_audio(messages), 24000)) == "56"
    await client.ws.close()
    record = await fake.connection_done(1)
    assert [item["parts"][0]["text"] for item in record.items] == ["My order is 1234.", "Thanks.", "call 56"]


async def test_hash_ending_digits_call_the_first_tool_and_the_reply_waits_for_the_result(fake: FakeGemini) -> None:
    client = await open_client(fake)
    tools = [{"functionDeclarations": [{"name": "lookup", "description": "d"}, {"name": "other"}]}]
    await client.setup(tools=tools)
    await client.stream(generate_dtmf("42#", 16000) + silence(400))
    (call_message,) = await client.recv_until(lambda m: "toolCall" in m)
    (call,) = call_message["toolCall"]["functionCalls"]
    assert call["name"] == "lookup" and call["args"] == {"digits": "42"}
    await client.send({"tool_response": {"functionResponses": [
        {"id": call["id"], "name": "lookup", "response": {"result": "ok"}}]}})
    messages = await client.recv_until(turn_complete)
    assert "".join(d.digit for d in detect_dtmf(reply_audio(messages), 24000)) == "42"
    await client.ws.close()
    record = await fake.connection_done(1)
    assert record.items == [{"function_response": {"id": call["id"], "name": "lookup", "response": {"result": "ok"}}}]


async def test_hash_without_declared_tools_is_just_spoken_back(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup()
    await client.stream(generate_dtmf("7#", 16000) + silence(400))
    messages = await client.recv_until(turn_complete)
    assert not [m for m in messages if "toolCall" in m]
    assert "".join(d.digit for d in detect_dtmf(reply_audio(messages), 24000)) == "7#"


# -- barge-in, decided in stream time ---------------------------------------------------------------------


async def test_speech_while_the_reply_still_plays_interrupts_it(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup()
    # "1234" ends at 0.7 s of stream time; the reply (0.8 s of tones) plays from 1.0 s to 1.8 s;
    # 1.1 s of input has been sent when the first turn completes.
    await client.stream(generate_dtmf("1234", 16000) + silence(300))
    first_turn = await client.recv_until(turn_complete)
    assert not content_field(first_turn, "interrupted")
    await client.stream(silence(200) + generate_dtmf("5", 16000) + silence(400))  # speech at 1.3 s
    after = await client.recv_until(lambda m: m.get("serverContent", {}).get("interrupted"))
    assert after[-1] == {"serverContent": {"interrupted": True}}
    interrupted_turn_end = await client.recv()
    assert turn_complete(interrupted_turn_end)
    second_reply = await client.recv_until(turn_complete)
    assert "".join(d.digit for d in detect_dtmf(reply_audio(second_reply), 24000)) == "5"


async def test_speech_after_the_reply_finished_playing_does_not_interrupt(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup()
    await client.stream(generate_dtmf("1234", 16000) + silence(300))
    await client.recv_until(turn_complete)
    await client.stream(silence(900) + generate_dtmf("5", 16000) + silence(400))  # speech at 2.0 s > 1.8 s
    second = await client.recv_until(turn_complete)
    assert not content_field(second, "interrupted")
    assert "".join(d.digit for d in detect_dtmf(reply_audio(second), 24000)) == "5"


async def test_no_interruption_activity_handling_lets_the_reply_finish() -> None:
    async with FakeGemini(api_key=KEY) as fake:
        client = await open_client(fake)
        await client.setup(realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
        await client.stream(generate_dtmf("1234", 16000) + silence(300))
        await client.recv_until(turn_complete)
        await client.stream(silence(200) + generate_dtmf("5", 16000) + silence(400))
        second = await client.recv_until(turn_complete)
        assert not content_field(second, "interrupted")


async def test_speech_during_a_pending_tool_call_cancels_it() -> None:
    async with FakeGemini(api_key=KEY) as fake:
        client = await open_client(fake)
        await client.setup(tools=[{"function_declarations": [{"name": "lookup"}]}])
        await client.stream(generate_dtmf("1#", 16000) + silence(400))
        (call_message,) = await client.recv_until(lambda m: "toolCall" in m)
        await client.stream(generate_dtmf("2", 16000))
        cancelled = await client.recv()
        call_id = call_message["toolCall"]["functionCalls"][0]["id"]
        assert cancelled == {"toolCallCancellation": {"ids": [call_id]}}
        assert (await client.recv()) == {"serverContent": {"interrupted": True}}
        assert turn_complete(await client.recv())


# -- resumption ---------------------------------------------------------------------------------------------


async def test_resumption_handles_restore_the_conversation_on_a_new_connection(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.setup(sessionResumption={})
    first_update = await client.recv()
    assert first_update["sessionResumptionUpdate"]["resumable"] is True
    await client.stream(generate_dtmf("88", 16000) + silence(400))
    await client.recv_until(turn_complete)
    update = await client.recv()
    handle = update["sessionResumptionUpdate"]["newHandle"]
    assert handle != first_update["sessionResumptionUpdate"]["newHandle"]
    await client.ws.close()

    resumed = await open_client(fake)
    await resumed.setup(session_resumption={"handle": handle})
    await resumed.ws.close()
    record = await fake.connection_done(2)
    assert record.extra["resumed_from"] == handle
    assert record.extra["restored_turns"] == [{"role": "user", "parts": [{"text": "88"}]},
                                              {"role": "model", "parts": [{"text": "88"}]}]


async def test_unknown_resumption_handle_is_closed_1008(fake: FakeGemini) -> None:
    client = await open_client(fake)
    await client.send({"setup": {"model": MODEL, "sessionResumption": {"handle": "stale"}}})
    with pytest.raises(ConnectionClosed) as err:
        await client.recv()
    assert (err.value.rcvd.code, err.value.rcvd.reason) == (1008, "BidiGenerateContent session not found")


# -- goAway and faults -------------------------------------------------------------------------------------


async def test_max_connection_time_sends_go_away_then_closes() -> None:
    async with FakeGemini(api_key=KEY, max_connection_s=0.15, goaway_time_left_s=0.05) as fake:
        client = await open_client(fake)
        await client.setup()
        assert await client.recv() == {"goAway": {"timeLeft": "0.05s"}}
        with pytest.raises(ConnectionClosed) as err:
            await client.recv()
        assert err.value.rcvd.code == 1008 and "GoAway" in err.value.rcvd.reason


@pytest.mark.parametrize(("spec", "expected"), [
    ("1:goaway,time_left=0.02", {"goAway": {"timeLeft": "0.02s"}}),
    ("1:expire", {"goAway": {"timeLeft": "0s"}}),
])
async def test_goaway_and_expire_faults(spec: str, expected: dict[str, Any]) -> None:
    async with FakeGemini(api_key=KEY, faults=FaultScript.parse(spec)) as fake:
        client = await open_client(fake)
        await client.setup()
        assert await client.recv() == expected
        with pytest.raises(ConnectionClosed) as err:
            await client.recv()
        assert err.value.rcvd.code == 1008


async def test_malformed_fault_sends_one_broken_binary_frame() -> None:
    async with FakeGemini(api_key=KEY, faults=FaultScript.parse("1:malformed,messages=2")) as fake:
        client = await open_client(fake)
        await client.setup()
        await client.stream(silence(20))
        raw = await client.ws.recv()
        assert isinstance(raw, bytes)
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)


async def test_drop_after_audio_bytes() -> None:
    async with FakeGemini(api_key=KEY, faults=FaultScript.parse("1:drop,audio_bytes=3200")) as fake:
        client = await open_client(fake)
        await client.setup()
        with pytest.raises(ConnectionClosed) as err:
            await client.stream(silence(200))
            await client.recv()
        assert err.value.rcvd is None
        assert (await fake.connection_done(1)).faults_fired == ["drop"]
