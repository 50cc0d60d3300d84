"""The fake Deepgram `/v1/listen` server, driven by a raw websockets client on 127.0.0.1: handshake and
auth, query validation, the DTMF dialect's Results/SpeechStarted/UtteranceEnd, control messages, the
idle close, bad input and faults (docs/providers/deepgram.md §1-4)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audio.dtmf import generate_dtmf
from audio.g711 import alaw_encode, ulaw_encode
from providers.fakes.common import Fault, FaultScript
from providers.fakes.deepgram import FakeDeepgram

KEY = "dg-test-key"
# docs/providers/deepgram.md §4: the real NET-0001 close reason, verbatim.
NET0001_REASON = ("Deepgram did not receive audio data or a text message within the timeout window. "
                  "See https://dpgr.am/net0001")
BASE = {"model": "nova-3", "encoding": "linear16", "sample_rate": "16000"}


@pytest.fixture
async def fake():
    async with FakeDeepgram(api_key=KEY, silence_final_every_s=None) as server:
        yield server


def listen_url(server: FakeDeepgram, **params: Any) -> str:
    return f"{server.url}/v1/listen?{urlencode({**BASE, **params})}"


def token(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), 2)
    assert isinstance(frame, str), "Deepgram only sends JSON text frames"
    return json.loads(frame)


async def stream(ws: ClientConnection, audio: bytes, chunk: int) -> None:
    for i in range(0, len(audio), chunk):
        await ws.send(audio[i:i + chunk])


async def close_and_collect(ws: ClientConnection) -> list[dict[str, Any]]:
    """CloseStream, then every message until the server's close (which must be 1000)."""
    await ws.send(json.dumps({"type": "CloseStream"}))
    messages = []
    async for frame in ws:
        messages.append(json.loads(frame))
    assert ws.close_code == 1000
    return messages


def finals(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "Results" and m["is_final"]]


def transcript(message: dict[str, Any]) -> str:
    return message["channel"]["alternatives"][0]["transcript"]


def dtmf16k(digits: str, lead_ms: int = 200, trail_ms: int = 600) -> bytes:
    return generate_dtmf(digits, 16000, lead_silence_ms=lead_ms, trail_silence_ms=trail_ms)


# -- handshake -----------------------------------------------------------------------------------------


async def test_token_auth_gives_dg_headers_and_the_same_request_id_everywhere(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        request_id = ws.response.headers["dg-request-id"]
        assert ws.response.headers["dg-project-id"]
        messages = await close_and_collect(ws)
    assert [m["type"] for m in messages] == ["Metadata"]
    meta = messages[0]
    assert meta["request_id"] == request_id
    assert (meta["transaction_key"], meta["sha256"], meta["duration"], meta["channels"]) == (
        "deprecated", "incomplete", 0.0, 0)  # channels 0 when no audio was processed, as real captures show
    assert meta["created"].endswith("Z") and "T" in meta["created"]
    assert "models" not in meta  # no audio was processed


async def test_bearer_header_and_token_subprotocol_are_accepted(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        assert ws.response.status_code == 101
    async with connect(listen_url(fake), subprotocols=["token", KEY]) as ws:
        assert ws.subprotocol == "token"  # browsers abort unless an offered value is echoed
        assert ws.response.headers["dg-request-id"]
    records = fake.connections
    assert [r.auth for r in records] == ["header:authorization-bearer", "subprotocol"]
    assert all("authorization" not in r.headers and "sec-websocket-protocol" not in r.headers for r in records)


@pytest.mark.parametrize("headers,subprotocols", [
    ({"Authorization": "Token wrong-key"}, None),
    ({"Authorization": KEY}, None),  # forgetting the `Token ` prefix
    ({}, None),
    ({}, ["token", "wrong-key"]),
])
async def test_bad_credentials_are_refused_with_401_and_dg_error(
        fake: FakeDeepgram, headers: dict[str, str], subprotocols: list[str] | None) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(listen_url(fake), additional_headers=headers, subprotocols=subprotocols):
            pass
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["dg-error"] and response.headers["dg-request-id"]
    assert response.headers.get_all("Content-Type") == ["application/json"]
    body = json.loads(response.body)
    assert body["err_msg"] == response.headers["dg-error"]
    assert body["request_id"] == response.headers["dg-request-id"]
    assert fake.connections[0].refused == 401


async def test_without_an_api_key_any_non_empty_key_is_accepted() -> None:
    async with FakeDeepgram() as server:
        async with connect(listen_url(server), additional_headers=token("anything")) as ws:
            assert ws.response.status_code == 101
        with pytest.raises(InvalidStatus) as caught:
            async with connect(listen_url(server)):
                pass
        assert caught.value.response.status_code == 401


@pytest.mark.parametrize("params", [
    {"encoding": "opus"},  # a real encoding the simulator does not decode
    {"encoding": "wav"},  # not an encoding at all
    {"sample_rate": None},  # encoding without sample_rate
    {"sample_rate": "fast"},
    {"sample_rate": "12"},
    {"channels": "0"},
    {"interim_results": "yes"},
    {"vad_events": "1"},
    {"endpointing": "-5"},
    {"endpointing": "soon"},
    {"utterance_end_ms": "1000"},  # needs interim_results=true
    {"interim_results": "true", "utterance_end_ms": "x"},
    {"model": "gpt-4o"},
    {"language": "english please"},
])
async def test_invalid_query_is_refused_with_400_and_dg_error(fake: FakeDeepgram, params: dict[str, Any]) -> None:
    query = {k: v for k, v in {**BASE, **params}.items() if v is not None}
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{fake.url}/v1/listen?{urlencode(query)}", additional_headers=token()):
            pass
    response = caught.value.response
    assert response.status_code == 400
    assert response.headers["dg-error"] and response.headers["dg-request-id"]
    assert json.loads(response.body)["err_msg"] == response.headers["dg-error"]


@pytest.mark.parametrize("query", ["language=%0D%0AX-Injected:%201", "language=%C3%A9t%C3%A9%21",
                                   "model=" + "x" * 5000])
async def test_hostile_query_values_get_a_clean_400(fake: FakeDeepgram, query: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{fake.url}/v1/listen?{query}", additional_headers=token()):
            pass
    response = caught.value.response
    assert response.status_code == 400 and "X-Injected" not in response.headers
    (error,) = response.headers.get_all("dg-error")
    assert error.isascii() and error.isprintable() and len(error) <= 256


async def test_unknown_parameter_names_are_ignored_like_the_real_service(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake, filler_words="false", no_delay="true"), additional_headers=token()) as ws:
        assert ws.response.status_code == 101
    assert fake.connections[0].setup["no_delay"] == "true"


async def test_other_paths_are_404(fake: FakeDeepgram) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"{fake.url}/v1/speak?model=aura", additional_headers=token()):
            pass
    assert caught.value.response.status_code == 404
    assert caught.value.response.headers["dg-request-id"]


async def test_refuse_fault_429_carries_retry_after_and_dg_headers() -> None:
    faults = FaultScript.parse("1:refuse,status=429,retry_after=7")
    async with FakeDeepgram(api_key=KEY, faults=faults) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(listen_url(server), additional_headers=token()):
                pass
        response = caught.value.response
        assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
        assert response.headers.get_all("Content-Type") == ["application/json"]
        assert json.loads(response.body)["err_code"] == "TOO_MANY_REQUESTS"
        assert response.headers["dg-error"] and response.headers["dg-request-id"]
        async with connect(listen_url(server), additional_headers=token()) as ws:  # connection 2 is fine
            assert ws.response.status_code == 101


# -- the DTMF dialect ----------------------------------------------------------------------------------


async def test_dtmf_digits_give_speech_started_interims_a_final_and_utterance_end(fake: FakeDeepgram) -> None:
    audio = dtmf16k("1234", lead_ms=200, trail_ms=1300)
    url = listen_url(fake, interim_results="true", vad_events="true", utterance_end_ms="1000", endpointing="300")
    async with connect(url, additional_headers=token()) as ws:
        await stream(ws, audio, 640)  # 20 ms frames, far faster than real time
        messages = await close_and_collect(ws)
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "SpeechStarted" and kinds[-2:] == ["UtteranceEnd", "Metadata"]
    assert messages[0]["channel"] == [0, 1] and messages[0]["timestamp"] == pytest.approx(0.2, abs=0.02)
    interims = [transcript(m) for m in messages if m["type"] == "Results" and not m["is_final"]]
    assert interims == ["1", "12", "123", "1234"]
    (final,) = finals(messages)
    assert transcript(final) == "1234"
    assert (final["is_final"], final["speech_final"], final["from_finalize"]) == (True, True, False)
    assert final["channel_index"] == [0, 1] and final["start"] == 0.0
    (word,) = final["channel"]["alternatives"][0]["words"]
    assert word["word"] == word["punctuated_word"] == "1234"
    assert word["start"] == pytest.approx(0.2, abs=0.02) and word["end"] == pytest.approx(0.9, abs=0.02)
    # The window covers the utterance and the endpointing pause, not the audio after it.
    assert final["start"] + final["duration"] == pytest.approx(word["end"] + 0.3, abs=0.011)
    assert final["metadata"]["request_id"] == messages[-1]["request_id"]
    assert final["metadata"]["model_info"]["arch"] == "nova-3"
    assert messages[-2]["last_word_end"] == word["end"]
    meta = messages[-1]
    assert meta["duration"] == pytest.approx(len(audio) / 32000, abs=0.001)
    assert meta["models"] == [final["metadata"]["model_uuid"]]
    assert meta["model_info"][final["metadata"]["model_uuid"]] == final["metadata"]["model_info"]


async def test_consecutive_finals_acknowledge_audio_window_after_window(fake: FakeDeepgram) -> None:
    audio = dtmf16k("12", trail_ms=800) + dtmf16k("34#", lead_ms=0, trail_ms=800)
    async with connect(listen_url(fake, endpointing="500"), additional_headers=token()) as ws:
        await stream(ws, audio, 640)
        messages = await close_and_collect(ws)
    first, second = finals(messages)
    assert (transcript(first), transcript(second)) == ("12", "34#")
    first_end = first["start"] + first["duration"]
    assert second["start"] == pytest.approx(first_end, abs=1e-9)
    assert first_end < second["channel"]["alternatives"][0]["words"][0]["start"]
    assert second["start"] + second["duration"] <= len(audio) / 32000
    assert fake.connections[0].digits == "1234#"
    assert fake.connections[0].transcripts == ["12", "34#"]


async def test_optional_events_only_when_asked_for(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await stream(ws, dtmf16k("9", trail_ms=1500), 640)
        messages = await close_and_collect(ws)
    assert [m["type"] for m in messages] == ["Results", "Metadata"]  # no SpeechStarted/interims/UtteranceEnd
    assert transcript(messages[0]) == "9" and messages[0]["speech_final"] is True


async def test_endpointing_false_gives_finals_without_speech_final(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake, endpointing="false"), additional_headers=token()) as ws:
        await stream(ws, dtmf16k("77"), 640)
        messages = await close_and_collect(ws)
    (final,) = finals(messages)
    assert transcript(final) == "77" and final["speech_final"] is False


@pytest.mark.parametrize("encoding,encode", [("mulaw", ulaw_encode), ("alaw", alaw_encode)])
async def test_g711_8k_telephony_audio_is_transcribed(fake: FakeDeepgram, encoding: str, encode: Any) -> None:
    audio = encode(generate_dtmf("5#0", 8000, lead_silence_ms=100, trail_silence_ms=600))
    async with connect(listen_url(fake, encoding=encoding, sample_rate="8000"), additional_headers=token()) as ws:
        await stream(ws, audio, 160)  # Twilio-style 20 ms μ-law frames
        messages = await close_and_collect(ws)
    assert [transcript(m) for m in finals(messages)] == ["5#0"]
    record = fake.connections[0]
    assert record.audio_rate_hz == 8000 and len(record.audio) == 2 * len(audio)  # decoded to PCM16
    assert record.audio_chunks == len(audio) // 160


async def test_stereo_linear16_is_mixed_to_one_transcribed_channel(fake: FakeDeepgram) -> None:
    mono = np.frombuffer(dtmf16k("31"), dtype="<i2")
    stereo = np.stack([mono, np.zeros_like(mono)], axis=1).astype("<i2").tobytes()  # tones on the left only
    async with connect(listen_url(fake, channels="2"), additional_headers=token()) as ws:
        await stream(ws, stereo, 1279)  # chunks that split stereo frames
        messages = await close_and_collect(ws)
    assert [transcript(m) for m in finals(messages)] == ["31"]
    assert messages[-1]["channels"] == 2
    assert messages[-1]["duration"] == pytest.approx(len(mono) / 16000, abs=0.001)


async def test_plain_speech_is_transcribed_as_the_word_speech(fake: FakeDeepgram) -> None:
    t = np.arange(8000) / 16000
    voice = (np.sin(2 * np.pi * 180 * t) * 8000).astype("<i2").tobytes()  # 0.5 s, no DTMF pair
    silence = bytes(16000)  # 0.5 s
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await stream(ws, silence + voice + silence, 640)
        messages = await close_and_collect(ws)
    (final,) = finals(messages)
    assert transcript(final) == "speech"
    assert fake.connections[0].digits == ""


async def test_results_do_not_depend_on_chunk_size(fake: FakeDeepgram) -> None:
    audio = dtmf16k("2580", trail_ms=1200)
    url = listen_url(fake, interim_results="true", vad_events="true", utterance_end_ms="1000")
    runs = []
    for chunk in (640, 137, 4000):  # 20 ms frames, odd byte counts, 125 ms blobs
        async with connect(url, additional_headers=token()) as ws:
            await stream(ws, audio, chunk)
            messages = await close_and_collect(ws)
        runs.append([{k: v for k, v in m.items() if k not in ("metadata", "request_id", "created")}
                     for m in messages])
    assert runs[0] == runs[1] == runs[2]


async def test_silence_is_acknowledged_by_empty_finals() -> None:
    async with FakeDeepgram(api_key=KEY, silence_final_every_s=2.0) as server:
        async with connect(listen_url(server), additional_headers=token()) as ws:
            await stream(ws, bytes(32000 * 5), 3200)  # 5 s of silence
            messages = await close_and_collect(ws)
    empties = finals(messages)
    assert len(empties) == 2 and all(transcript(m) == "" and not m["speech_final"] for m in empties)
    assert empties[0]["start"] == 0.0
    assert empties[1]["start"] == pytest.approx(empties[0]["start"] + empties[0]["duration"], abs=1e-9)
    assert empties[1]["start"] + empties[1]["duration"] <= 5.0


def wav_header(n_bytes: int, rate: int = 8000, bits: int = 16) -> bytes:
    le = int.to_bytes
    return (b"RIFF" + le(36 + n_bytes, 4, "little") + b"WAVEfmt " + le(16, 4, "little") + le(1, 2, "little")
            + le(1, 2, "little") + le(rate, 4, "little") + le(rate * bits // 8, 4, "little")
            + le(bits // 8, 2, "little") + le(bits, 2, "little") + b"data" + le(n_bytes, 4, "little"))


@pytest.mark.parametrize("chunk", [1000, 7])  # the header whole, or cut across many frames
async def test_containerised_wav_without_encoding_is_understood(fake: FakeDeepgram, chunk: int) -> None:
    pcm = generate_dtmf("42", 8000, lead_silence_ms=100, trail_silence_ms=500)
    async with connect(f"{fake.url}/v1/listen?model=nova-2", additional_headers=token()) as ws:
        await stream(ws, wav_header(len(pcm)) + pcm, chunk)
        messages = await close_and_collect(ws)
    assert [transcript(m) for m in finals(messages)] == ["42"]
    assert fake.connections[0].audio_rate_hz == 8000 and bytes(fake.connections[0].audio) == pcm


@pytest.mark.parametrize("audio", [
    b"this is not a WAV file, and no encoding was declared" * 4,
    wav_header(800, bits=8) + bytes(800),  # a WAV, but not PCM16
])
async def test_undecodable_audio_closes_1008(fake: FakeDeepgram, audio: bytes) -> None:
    async with connect(f"{fake.url}/v1/listen?model=nova-2", additional_headers=token()) as ws:
        await ws.send(audio)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)
    assert ws.close_code == 1008 and "dpgr.am/data0000" in ws.close_reason


# -- control messages -----------------------------------------------------------------------------------


async def test_finalize_flushes_the_open_utterance_and_keeps_the_stream(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await stream(ws, dtmf16k("12", trail_ms=0), 640)  # no pause: endpointing cannot fire
        await ws.send(json.dumps({"type": "Finalize"}))
        flushed = await recv_json(ws)
        assert (flushed["type"], transcript(flushed), flushed["is_final"], flushed["from_finalize"]) == (
            "Results", "12", True, True)
        sent_s = len(dtmf16k("12", trail_ms=0)) / 32000
        assert flushed["start"] + flushed["duration"] == pytest.approx(sent_s, abs=0.001)
        await ws.send(json.dumps({"type": "Finalize"}))  # nothing new: an empty from_finalize final
        empty = await recv_json(ws)
        assert transcript(empty) == "" and empty["from_finalize"] is True
        await ws.send(json.dumps({"type": "KeepAlive"}))
        assert [m["type"] for m in await close_and_collect(ws)] == ["Metadata"]


async def test_close_stream_sends_the_pending_final_then_metadata(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await stream(ws, dtmf16k("6", trail_ms=0), 640)
        messages = await close_and_collect(ws)
    assert [m["type"] for m in messages] == ["Results", "Metadata"]
    assert transcript(messages[0]) == "6" and messages[0]["is_final"]
    assert (await fake.connection_done(1)).close_code == 1000


async def test_empty_binary_frame_ends_the_stream_like_close_stream(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await stream(ws, dtmf16k("3", trail_ms=0), 640)
        await ws.send(b"")
        messages = [json.loads(frame) async for frame in ws]
    assert [m["type"] for m in messages] == ["Results", "Metadata"] and ws.close_code == 1000


async def test_idle_stream_gets_metadata_then_1011_net0001() -> None:
    async with FakeDeepgram(api_key=KEY, idle_timeout_s=0.2) as server:
        async with connect(listen_url(server), additional_headers=token()) as ws:
            meta = await recv_json(ws)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
        assert meta["type"] == "Metadata"
        assert (ws.close_code, ws.close_reason) == (1011, NET0001_REASON)


async def test_keepalive_holds_off_the_idle_close() -> None:
    async with FakeDeepgram(api_key=KEY, idle_timeout_s=0.5) as server:
        async with connect(listen_url(server), additional_headers=token()) as ws:
            for _ in range(6):  # 0.6 s in all, longer than the idle timeout, but never 0.5 s of quiet
                await ws.send(json.dumps({"type": "KeepAlive"}))
                await asyncio.sleep(0.1)
            assert [m["type"] for m in await close_and_collect(ws)] == ["Metadata"]
        assert [m["type"] for m in server.connections[0].messages] == ["KeepAlive"] * 6 + ["CloseStream"]


@pytest.mark.parametrize("text", ["not json", '{"type": "Shout"}', "[1, 2]", '{"no_type": true}'])
async def test_unusable_text_gets_an_error_message_and_the_stream_survives(fake: FakeDeepgram, text: str) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await ws.send(text)
        error = await recv_json(ws)
        assert (error["type"], error["variant"], error["message"]) == ("Error", "SchemaError", text)
        assert error["description"]
        await stream(ws, dtmf16k("8"), 640)
        assert [transcript(m) for m in finals(await close_and_collect(ws))] == ["8"]


@pytest.mark.parametrize("text", [
    '{"type": "Configure", "keyterms": 5}', '{"type": "Configure", "keyterms": [1, 2]}',
    '{"type": "Configure", "features": "numerals"}', '{"type": null}', '{"type": ["Finalize"]}', "null",
    '"KeepAlive"', '{"type": "KeepAlive"' * 2000, "\u0000\ud7ff",
])
async def test_odd_text_never_breaks_the_stream(fake: FakeDeepgram, text: str) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await ws.send(text)
        error = await recv_json(ws)
        assert (error["type"], error["variant"]) == ("Error", "SchemaError")
        await stream(ws, dtmf16k("0"), 640)
        assert [transcript(m) for m in finals(await close_and_collect(ws))] == ["0"]


async def test_configure_is_answered(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake), additional_headers=token()) as ws:
        await ws.send(json.dumps({"type": "Configure", "keyterms": ["Deepgram"]}))
        reply = await recv_json(ws)
        assert reply == {"type": "ConfigureSuccess", "request_id": ws.response.headers["dg-request-id"],
                         "keyterms": ["Deepgram"]}


async def test_configure_keyterms_need_a_nova3_model(fake: FakeDeepgram) -> None:
    async with connect(listen_url(fake, model="nova-2"), additional_headers=token()) as ws:
        await ws.send(json.dumps({"type": "Configure", "keyterms": ["Deepgram"]}))
        reply = await recv_json(ws)
    assert (reply["type"], reply["code"]) == ("ConfigureFailure", "CONFIGURE_KEYTERMS_NOT_SUPPORTED")


# -- faults ----------------------------------------------------------------------------------------------


async def test_drop_after_audio_bytes_is_an_abnormal_close() -> None:
    faults = FaultScript().add(1, Fault(kind="drop", audio_bytes=16000))
    async with FakeDeepgram(api_key=KEY, faults=faults) as server:
        async with connect(listen_url(server), additional_headers=token()) as ws:
            with pytest.raises(ConnectionClosed):
                await stream(ws, bytes(64000), 640)
                await asyncio.wait_for(ws.recv(), 2)
        assert ws.close_code == 1006
        record = await server.connection_done(1)
        assert record.faults_fired == ["drop"] and 16000 <= len(record.audio) < 64000


async def test_expire_fault_is_the_planned_net0001_close() -> None:
    faults = FaultScript.parse("1:expire,messages=2")
    async with FakeDeepgram(api_key=KEY, faults=faults) as server:
        async with connect(listen_url(server), additional_headers=token()) as ws:
            await ws.send(bytes(640))
            await ws.send(bytes(640))
            meta = await recv_json(ws)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
        assert meta["type"] == "Metadata" and meta["duration"] == 0.04
        assert (ws.close_code, ws.close_reason) == (1011, NET0001_REASON)


async def test_malformed_fault_sends_one_unparseable_frame() -> None:
    faults = FaultScript.parse("1:malformed,messages=1")
    async with FakeDeepgram(api_key=KEY, faults=faults) as server:
        async with connect(listen_url(server), additional_headers=token()) as ws:
            await ws.send(json.dumps({"type": "KeepAlive"}))
            frame = await asyncio.wait_for(ws.recv(), 2)
            with pytest.raises(json.JSONDecodeError):
                json.loads(frame)
            assert [m["type"] for m in await close_and_collect(ws)] == ["Metadata"]

