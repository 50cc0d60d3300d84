"""Fidelity: the official google-genai SDK talks to the fake Gemini over wss:// (a trustme certificate).
Every frame the fake sends is checked with `types.LiveServerMessage.model_validate_json(raw, strict=True)`
(the SDK's own receive path drops unknown fields, so it would not notice a misspelled key)."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from google import genai
from google.genai import types
from websockets.asyncio.server import ServerConnection

from audio.dtmf import detect_dtmf, generate_dtmf
from providers.fakes.gemini import FakeGemini

KEY = "sdk-key"
MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


class RecordingGemini(FakeGemini):
    """Keeps every raw frame it sends, for strict validation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent_frames: list[str | bytes] = []

    async def send(self, ws: ServerConnection, frame: str | bytes) -> None:
        self.sent_frames.append(frame)
        await super().send(ws, frame)


@pytest.fixture
async def fake(tls_server_context: ssl.SSLContext) -> Any:
    async with RecordingGemini(api_key=KEY, ssl_context=tls_server_context) as server:
        yield server
        for frame in server.sent_frames:
            assert isinstance(frame, bytes)
            types.LiveServerMessage.model_validate_json(frame, strict=True)


def sdk_client(fake: FakeGemini, tls_client_context: ssl.SSLContext, api_version: str | None = "v1beta") -> genai.Client:
    assert fake.url.startswith("wss://")
    options = types.HttpOptions(base_url=f"https://127.0.0.1:{fake.port}", api_version=api_version,
                                async_client_args={"ssl": tls_client_context})
    return genai.Client(api_key=KEY, http_options=options)


async def stream(session: Any, pcm16: bytes, rate_hz: int = 16000) -> None:
    step = 2 * rate_hz // 50  # 20 ms chunks
    for offset in range(0, len(pcm16), step):
        await session.send_realtime_input(audio=types.Blob(data=pcm16[offset:offset + step],
                                                           mime_type=f"audio/pcm;rate={rate_hz}"))


async def one_turn(session: Any) -> tuple[str, str, bytes, list[types.LiveServerMessage]]:
    """Read one model turn: (input transcript, output transcript, reply audio, messages)."""
    heard, said, audio, messages = "", "", b"", []
    async for message in session.receive():  # ends after turnComplete
        messages.append(message)
        content = message.server_content
        if content and content.input_transcription and content.input_transcription.text:
            heard += content.input_transcription.text
        if content and content.output_transcription and content.output_transcription.text:
            said += content.output_transcription.text
        if message.data:
            audio += message.data
    return heard, said, audio, messages


async def test_sdk_streams_dtmf_and_hears_transcripts_and_tones(fake: RecordingGemini,
                                                                tls_client_context: ssl.SSLContext) -> None:
    client = sdk_client(fake, tls_client_context, api_version=None)  # the SDK's default version (v1)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO],
                                     input_audio_transcription=types.AudioTranscriptionConfig(),
                                     output_audio_transcription=types.AudioTranscriptionConfig(),
                                     speech_config=types.SpeechConfig(language_code="en-US"))
    sent = generate_dtmf("123", 16000) + b"\0" * 16000
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await stream(session, sent)
        heard, said, audio, messages = await one_turn(session)
    assert heard == "123" and said == "123"
    assert "".join(d.digit for d in detect_dtmf(audio, 24000)) == "123"
    assert messages[-1].server_content.turn_complete and messages[-1].usage_metadata.total_token_count > 0

    record = await fake.connection_done(1)
    assert record.auth == "header:x-goog-api-key" and record.extra["version"] == "v1"
    assert bytes(record.audio) == sent  # the SDK's URL-safe base64 and snake_case blobs decoded
    assert record.setup["model"] == f"models/{MODEL}"
    assert record.setup["generation_config"]["speech_config"]["language_code"] == "en-US", record.setup


async def test_sdk_tool_call_client_content_and_resumption(fake: RecordingGemini,
                                                          tls_client_context: ssl.SSLContext) -> None:
    client = sdk_client(fake, tls_client_context)
    lookup = types.FunctionDeclaration(name="lookup", description="look digits up",
                                       parameters=types.Schema(type=types.Type.OBJECT, properties={
                                           "digits": types.Schema(type=types.Type.STRING)}))
    config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO],
                                     tools=[types.Tool(function_declarations=[lookup])],
                                     session_resumption=types.SessionResumptionConfig())
    handles: list[str] = []
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        await stream(session, generate_dtmf("47#", 16000) + b"\0" * 16000)
        call = None
        async for message in session.receive():
            if message.session_resumption_update:
                handles.append(message.session_resumption_update.new_handle)
            if message.tool_call:
                call = message.tool_call.function_calls[0]
                break
        assert call is not None and call.name == "lookup" and call.args == {"digits": "47"}
        await session.send_tool_response(function_responses=[
            types.FunctionResponse(id=call.id, name=call.name, response={"result": "found"})])
        _, _, audio, _ = await one_turn(session)
        assert "".join(d.digit for d in detect_dtmf(audio, 24000)) == "47"
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="then 9")]),
                                          turn_complete=True)
        _, _, audio, messages = await one_turn(session)
        assert "".join(d.digit for d in detect_dtmf(audio, 24000)) == "9"
        async for message in session.receive():  # the update that follows turnComplete
            if message.session_resumption_update:
                handles.append(message.session_resumption_update.new_handle)
                break

    resumed_config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO],
                                             session_resumption=types.SessionResumptionConfig(handle=handles[-1]))
    async with client.aio.live.connect(model=MODEL, config=resumed_config) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="1")]),
                                          turn_complete=True)
        await one_turn(session)
    record = await fake.connection_done(2)
    restored = [(t["role"], t["parts"][0].get("text")) for t in record.extra["restored_turns"]]
    assert restored[0] == ("user", "47#") and ("user", "then 9") in restored and restored[-1] == ("model", "9")
