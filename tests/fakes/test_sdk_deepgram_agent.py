"""Fidelity: the official deepgram-sdk agent client (`agent.v1.connect`, `send_settings`, `send_media`,
`recv`) against the fake Voice Agent. Every server message must come back from `recv()` as the SDK's
own model for its `type` (never a raw dict: an unknown type) and re-validate strictly; the Settings our
adapter builds must validate as the SDK's AgentV1Settings."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.agent.v1.types import (
    AgentV1AgentAudioDone,
    AgentV1AgentStartedSpeaking,
    AgentV1ConversationText,
    AgentV1Error,
    AgentV1FunctionCallRequest,
    AgentV1InjectionRefused,
    AgentV1InjectUserMessage,
    AgentV1PromptUpdated,
    AgentV1SendFunctionCallResponse,
    AgentV1Settings,
    AgentV1SettingsApplied,
    AgentV1SpeakUpdated,
    AgentV1UpdatePrompt,
    AgentV1UpdateSpeak,
    AgentV1UserStartedSpeaking,
    AgentV1Warning,
    AgentV1Welcome,
)
from deepgram.core.api_error import ApiError

from audio.dtmf import detect_dtmf, generate_dtmf
from audio.formats import AudioFormat
from gateway.session_config import SessionConfig, ToolSpec
from providers.deepgram_agent import DeepgramAgentAdapter
from providers.deepgram_agent_wire import AgentEndpoint, ThinkProvider
from providers.fakes.common import FaultScript
from providers.fakes.deepgram_agent import FakeDeepgramAgent

KEY = "dg-agent-sdk-key"
PCM16K = AudioFormat(encoding="pcm16", sample_rate_hz=16000)
MODELS: dict[str, type] = {
    "Welcome": AgentV1Welcome, "SettingsApplied": AgentV1SettingsApplied, "ConversationText": AgentV1ConversationText,
    "UserStartedSpeaking": AgentV1UserStartedSpeaking, "AgentStartedSpeaking": AgentV1AgentStartedSpeaking,
    "AgentAudioDone": AgentV1AgentAudioDone, "FunctionCallRequest": AgentV1FunctionCallRequest,
    "PromptUpdated": AgentV1PromptUpdated, "SpeakUpdated": AgentV1SpeakUpdated, "Error": AgentV1Error,
    "Warning": AgentV1Warning, "InjectionRefused": AgentV1InjectionRefused,
}


def sdk_client(server: FakeDeepgramAgent, key: str = KEY) -> AsyncDeepgramClient:
    origin = server.url.replace("ws://", "http://")
    env = DeepgramClientEnvironment(base=origin, production=server.url, agent=server.url, agent_rest=origin)
    return AsyncDeepgramClient(api_key=key, environment=env)


def adapter_settings(**config: Any) -> dict[str, Any]:
    """The Settings our own adapter sends, for the SDK to carry."""
    endpoint = AgentEndpoint(base_url="ws://unused", api_key="k",
                             think=(ThinkProvider(type="google", model="gemini-2.5-flash"),))
    cfg = SessionConfig(provider="deepgram_agent", input_format=PCM16K, output_format=PCM16K,
                        instructions="Answer with the digits you hear.", **config)
    frame = DeepgramAgentAdapter(cfg, endpoint).open_frames(history=(), resume_handle=None)[0]
    return orjson.loads(frame)


def validated(message: Any) -> Any:
    if isinstance(message, bytes):
        return message
    assert not isinstance(message, dict), f"the SDK did not recognise {message!r}"
    model = MODELS[message.type]
    assert type(message) is model, (type(message), model)
    strict = model.model_validate(message.model_dump())
    assert not (strict.model_extra or {}), strict.model_extra
    return strict


async def recv_until(socket: Any, kind: str, audio: bytearray) -> list[Any]:
    """Validated messages up to and including the first of type `kind`; binary audio goes to `audio`."""
    out = []
    while True:
        message = validated(await asyncio.wait_for(socket.recv(), 3))
        if isinstance(message, bytes):
            audio.extend(message)
            continue
        out.append(message)
        if message.type == kind:
            return out


def kinds(messages: list[Any]) -> list[str]:
    return [m.type for m in messages]


def digits_in(pcm16: bytes) -> str:
    return "".join(d.digit for d in detect_dtmf(bytes(pcm16), 16000))


async def test_sdk_full_exchange_audio_function_call_injected_text_keepalive_updates() -> None:
    settings = AgentV1Settings.model_validate(adapter_settings(
        tools=(ToolSpec(name="lookup", description="digits to say"),)))
    async with FakeDeepgramAgent(api_key=KEY) as fake, sdk_client(fake).agent.v1.connect() as socket:
        audio = bytearray()
        welcome = await recv_until(socket, "Welcome", audio)
        assert welcome[0].request_id
        await socket.send_settings(settings)
        assert kinds(await recv_until(socket, "SettingsApplied", audio)) == ["SettingsApplied"]

        await socket.send_media(generate_dtmf("12", 16000, lead_silence_ms=100, trail_silence_ms=500))
        turn = await recv_until(socket, "AgentAudioDone", audio)
        assert kinds(turn) == ["UserStartedSpeaking", "ConversationText", "ConversationText",
                               "AgentStartedSpeaking", "AgentAudioDone"]
        assert [(m.role, m.content) for m in turn if m.type == "ConversationText"] == [("user", "12"), ("assistant", "12")]
        assert digits_in(audio) == "12"

        await socket.send_media(generate_dtmf("34#", 16000, lead_silence_ms=100, trail_silence_ms=500))
        call = (await recv_until(socket, "FunctionCallRequest", audio))[-1].functions[0]
        assert (call.name, orjson.loads(call.arguments), call.client_side) == ("lookup", {"digits": "34"}, True)
        await socket.send_function_call_response(AgentV1SendFunctionCallResponse(
            id=call.id, name=call.name, content="ok"))
        await recv_until(socket, "AgentAudioDone", audio)
        assert digits_in(audio) == "1234"

        await socket.send_inject_user_message(AgentV1InjectUserMessage(content="56"))
        typed = await recv_until(socket, "AgentAudioDone", audio)
        assert [(m.role, m.content) for m in typed if m.type == "ConversationText"] == [("user", "56"), ("assistant", "56")]
        assert digits_in(audio) == "123456"

        await socket.send_media(generate_dtmf("7", 16000, lead_silence_ms=100))  # no trailing silence
        await socket.send_force_end_turn()
        forced = await recv_until(socket, "AgentAudioDone", audio)
        assert [(m.role, m.content) for m in forced if m.type == "ConversationText"] == [("user", "7"), ("assistant", "7")]
        assert digits_in(audio) == "1234567"

        await socket.send_keep_alive()
        await socket.send_update_prompt(AgentV1UpdatePrompt(prompt="Be brief."))
        assert kinds(await recv_until(socket, "PromptUpdated", audio)) == ["PromptUpdated"]
        await socket.send_update_speak(AgentV1UpdateSpeak(speak={"provider": {"type": "deepgram",
                                                                              "model": "aura-2-orion-en"}}))
        assert kinds(await recv_until(socket, "SpeakUpdated", audio)) == ["SpeakUpdated"]
        record = fake.connections[0]
        assert record.extra["keepalives"] == 1 and record.extra["prompts"] == ["Be brief."]
        assert record.setup["agent"]["think"]["functions"][0]["name"] == "lookup"


async def test_sdk_gets_the_real_error_shape_for_bad_settings_and_the_connection_ends() -> None:
    bad = adapter_settings()
    bad["audio"]["input"]["encoding"] = "wav-ish"
    async with FakeDeepgramAgent(api_key=KEY) as fake, sdk_client(fake).agent.v1.connect() as socket:
        await recv_until(socket, "Welcome", bytearray())
        await socket.send_settings(AgentV1Settings.model_validate(bad))
        err = (await recv_until(socket, "Error", bytearray()))[-1]
        assert err.code == "UNPARSABLE_CLIENT_MESSAGE" and "audio.input.encoding" in err.description
        record = await fake.connection_done(1)
        assert record.closed_by == "server"


async def test_sdk_is_refused_with_a_wrong_key_and_by_a_refuse_fault() -> None:
    async with FakeDeepgramAgent(api_key=KEY, faults=FaultScript.parse("2:refuse,status=503")) as fake:
        with pytest.raises((ApiError, Exception)):
            async with sdk_client(fake, key="wrong").agent.v1.connect():
                pass
        with pytest.raises((ApiError, Exception)):
            async with sdk_client(fake).agent.v1.connect():
                pass
        assert [r.refused for r in fake.connections] == [401, 503]


async def test_settings_with_a_gemini_key_are_recorded_masked() -> None:
    endpoint = AgentEndpoint(base_url="ws://unused", api_key="k", think=(ThinkProvider(
        type="google", model="gemini-2.5-flash", endpoint_url="https://g.example/v1beta/models/m:x",
        endpoint_headers=(("x-goog-api-key", "AIzaSECRET-in-settings"),)),))
    cfg = SessionConfig(provider="deepgram_agent", input_format=PCM16K, output_format=PCM16K)
    frame = DeepgramAgentAdapter(cfg, endpoint).open_frames(history=(), resume_handle=None)[0]
    async with FakeDeepgramAgent(api_key=KEY) as fake, sdk_client(fake).agent.v1.connect() as socket:
        await recv_until(socket, "Welcome", bytearray())
        await socket.send_raw(frame)
        await recv_until(socket, "SettingsApplied", bytearray())
        assert "AIzaSECRET" not in repr(fake.connections[0])
        assert fake.connections[0].setup["agent"]["think"]["endpoint"]["headers"] == {"x-goog-api-key": "***"}


async def test_sdk_parses_the_fakes_refusals_warnings_and_in_session_errors() -> None:
    async with FakeDeepgramAgent(api_key=KEY) as fake, sdk_client(fake).agent.v1.connect() as socket:
        audio = bytearray()
        await recv_until(socket, "Welcome", audio)
        await socket.send_settings(AgentV1Settings.model_validate(adapter_settings()))
        await recv_until(socket, "SettingsApplied", audio)
        await socket.send_media(generate_dtmf("9", 16000, lead_silence_ms=100)[:6400])  # mid-utterance
        await recv_until(socket, "UserStartedSpeaking", audio)
        await socket.send_inject_user_message(AgentV1InjectUserMessage(content="1"))
        assert (await recv_until(socket, "InjectionRefused", audio))[-1].message
        await socket.send_function_call_response(AgentV1SendFunctionCallResponse(id="nope", name="n", content="c"))
        assert (await recv_until(socket, "Warning", audio))[-1].code
        await socket.send_raw({"type": "NoSuchMessage"})
        assert (await recv_until(socket, "Error", audio))[-1].code == "UNPARSABLE_CLIENT_MESSAGE"
