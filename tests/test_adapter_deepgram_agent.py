"""The Deepgram Voice Agent adapter without a server: Settings from a session config (validated as the
deepgram-sdk's AgentV1Settings), wire messages → our events, close codes → the error tree, the think
configuration from the environment and the `deepgram` → agent resolution."""

from __future__ import annotations

import orjson
import pytest
from deepgram.agent.v1.types import (
    AgentV1ForceEndTurn,
    AgentV1InjectUserMessage,
    AgentV1KeepAlive,
    AgentV1SendFunctionCallResponse,
    AgentV1Settings,
    AgentV1UpdatePrompt,
    AgentV1UpdateSpeak,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.formats import MULAW_8K, PCM16_16K, AudioFormat
from gateway.config import load_settings
from gateway.errors import ConfigError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AssistantTurn,
    AudioAcknowledged,
    ProviderFailed,
    ReplyAudio,
    SetupComplete,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UserSpeechStarted,
    UserTurn,
)
from gateway.session_config import SessionConfig, ToolSpec
from providers.deepgram_agent import DeepgramAgentAdapter
from providers.deepgram_agent_wire import AgentEndpoint, ThinkProvider, masked_settings, think_providers
from providers.registry import resolve

PCM24 = AudioFormat(encoding="pcm16", sample_rate_hz=24000)
MANAGED = (ThinkProvider(type="google", model="gemini-2.5-flash"),)


def adapter(think: tuple[ThinkProvider, ...] = MANAGED, **config: object) -> DeepgramAgentAdapter:
    cfg = SessionConfig(**{"provider": "deepgram_agent", "input_format": PCM16_16K, "output_format": PCM24,
                           **config})  # type: ignore[arg-type]
    return DeepgramAgentAdapter(cfg, AgentEndpoint(base_url="https://agent.example", api_key="dg-key", think=think))


def settings_of(a: DeepgramAgentAdapter, history: tuple = ()) -> dict:  # type: ignore[type-arg]
    return orjson.loads(a.open_frames(history=history, resume_handle=None)[0])


def parse(a: DeepgramAgentAdapter, message: dict | bytes) -> list:  # type: ignore[type-arg]
    return a.parse(message if isinstance(message, bytes) else orjson.dumps(message).decode())


# -- Settings -------------------------------------------------------------------------------------
def test_settings_carry_formats_listen_think_speak_tools_and_history_and_validate_as_the_sdk_model() -> None:
    a = adapter(instructions="Be brief.", language="en", voice="aura-2-orion-en",
                tools=(ToolSpec(name="lookup", description="d"),),
                provider_options={"deepgram": {"greeting": "Hello"}})
    assert a.connect_request().url == "wss://agent.example/v1/agent/converse"
    assert dict(a.connect_request().headers) == {"Authorization": "Token dg-key"}
    history = (UserTurn("12"), AssistantTurn("12"))
    s = settings_of(a, history)
    AgentV1Settings.model_validate(s)
    assert s["audio"] == {"input": {"encoding": "linear16", "sample_rate": 16000},
                          "output": {"encoding": "linear16", "sample_rate": 24000, "container": "none"}}
    agent = s["agent"]
    assert agent["listen"]["provider"] == {"type": "deepgram", "version": "v1", "model": "nova-3", "language": "en"}
    assert agent["think"] == {"provider": {"type": "google", "model": "gemini-2.5-flash"}, "prompt": "Be brief.",
                              "functions": [{"name": "lookup", "description": "d",
                                             "parameters": {"type": "object", "properties": {}}}]}
    assert agent["speak"]["provider"] == {"type": "deepgram", "model": "aura-2-orion-en"}
    assert agent["context"]["messages"] == [{"type": "History", "role": "user", "content": "12"},
                                            {"type": "History", "role": "assistant", "content": "12"}]
    assert "greeting" not in agent  # a carried call does not greet again
    assert settings_of(a)["agent"]["greeting"] == "Hello" and "context" not in settings_of(a)["agent"]


def test_telephony_mulaw_passes_through_and_a_non_aura_voice_falls_back_to_aura() -> None:
    a = adapter(input_format=MULAW_8K, output_format=MULAW_8K, voice="alloy")
    s = settings_of(a)
    assert s["audio"]["input"] == {"encoding": "mulaw", "sample_rate": 8000}
    assert s["audio"]["output"] == {"encoding": "mulaw", "sample_rate": 8000, "container": "none"}
    assert s["agent"]["speak"]["provider"]["model"] == "aura-2-thalia-en"
    assert a.input_format == MULAW_8K and a.output_format == MULAW_8K


def test_think_gemini_with_its_key_as_the_endpoint_header_a_list_and_the_gateway_endpoint() -> None:
    think = think_providers(["google", "open_ai:gpt-4o-mini", "anthropic"], model="gemini-2.5-flash",
                            gemini_api_key="AIzaTEST-key", gateway_url="https://gw.example/v1/chat/completions",
                            gateway_token="tok")
    s = settings_of(adapter(think=think, instructions="p"))
    entries = s["agent"]["think"]
    assert [e["provider"]["type"] for e in entries] == ["open_ai", "google", "open_ai", "anthropic"]
    assert entries[0]["endpoint"] == {"url": "https://gw.example/v1/chat/completions",
                                      "headers": {"authorization": "Bearer tok"}}
    gemini = entries[1]
    assert gemini["provider"] == {"type": "google"}  # with a custom endpoint the model is in the URL
    assert gemini["endpoint"]["url"].startswith("https://generativelanguage.googleapis.com/v1beta/models/"
                                                "gemini-2.5-flash:streamGenerateContent")
    assert gemini["endpoint"]["headers"] == {"x-goog-api-key": "AIzaTEST-key"}
    assert entries[2]["provider"] == {"type": "open_ai", "model": "gpt-4o-mini"} and "endpoint" not in entries[2]
    assert all(e["prompt"] == "p" for e in entries)
    assert "AIzaTEST" not in repr(think) and "AIzaTEST" not in orjson.dumps(masked_settings(s)).decode()
    # no key: Deepgram's managed Gemini
    assert think_providers(["google"], model="m", gemini_api_key=None) == (ThinkProvider(type="google", model="m"),)
    # a per-call think object passes through as given
    raw = {"provider": {"type": "open_ai", "model": "gpt-4.1"}}
    assert settings_of(adapter(provider_options={"deepgram": {"think": raw}}))["agent"]["think"] == raw


def test_think_settings_from_the_environment() -> None:
    s = load_settings({"VG_DEEPGRAM_THINK_PROVIDERS": "google:gemini-2.0-flash,anthropic",
                       "VG_DEEPGRAM_THINK_MODEL": "gemini-2.5-flash",
                       "VG_DEEPGRAM_THINK_GATEWAY_URL": "https://gw.example/v1/chat/completions",
                       "VG_DEEPGRAM_THINK_GATEWAY_TOKEN": "secret-gw-token",
                       "DEEPGRAM_API_KEY": "dg", "DEEPGRAM_AGENT_BASE_URL": "http://127.0.0.1:9"})
    assert s.deepgram_think_providers == ("google:gemini-2.0-flash", "anthropic")
    assert s.providers["deepgram_agent"].base_url == "ws://127.0.0.1:9"
    assert s.providers["deepgram_agent"].api_key == "dg" and not s.providers["deepgram_agent"].simulated
    assert "secret-gw-token" not in orjson.dumps(s.to_public_dict()).decode()
    assert load_settings({}).providers["deepgram_agent"].live_base_url == "wss://agent.deepgram.com"
    for bad in ("nope", "groq"):
        with pytest.raises(ConfigError, match="VG_DEEPGRAM_THINK_PROVIDERS"):
            load_settings({"VG_DEEPGRAM_THINK_PROVIDERS": bad})
    with pytest.raises(ConfigError, match="VG_DEEPGRAM_THINK_GATEWAY_URL"):
        load_settings({"VG_DEEPGRAM_THINK_GATEWAY_URL": "ftp://x"})


def test_control_frames_keepalive_text_tool_result_and_updates() -> None:
    a = adapter()
    assert a.keepalive_idle_s == 5.0 and orjson.loads(a.keepalive_frame()) == {"type": "KeepAlive"}
    assert not a.ready_on_upgrade
    assert [orjson.loads(f) for f in a.commit_frames()] == [{"type": "ForceEndTurn"}]
    assert [orjson.loads(f) for f in a.text_frames("56")] == [{"type": "InjectUserMessage", "content": "56"}]
    assert [orjson.loads(f) for f in a.tool_result_frames("c1", "lookup", "ok")] == [
        {"type": "FunctionCallResponse", "id": "c1", "name": "lookup", "content": "ok"}]
    AgentV1UpdatePrompt.model_validate(orjson.loads(a.update_prompt_frames("new")[0]))
    speak = orjson.loads(a.update_speak_frames("aura-2-orion-en")[0])
    AgentV1UpdateSpeak.model_validate(speak)
    assert speak["speak"]["provider"]["model"] == "aura-2-orion-en"
    assert a.audio_frame(b"\x01\x02") == b"\x01\x02"
    # every control frame is the SDK's own client message, field for field
    for frame, model in ((a.keepalive_frame(), AgentV1KeepAlive), (a.commit_frames()[0], AgentV1ForceEndTurn),
                         (a.text_frames("9")[0], AgentV1InjectUserMessage),
                         (a.tool_result_frames("c", "n", "o")[0], AgentV1SendFunctionCallResponse)):
        raw = orjson.loads(frame)
        assert model.model_validate(raw).model_dump(exclude_none=True) == raw
    assert DeepgramAgentAdapter.capabilities.audio_output and DeepgramAgentAdapter.breaker_name == "deepgram_agent"


# -- parsing --------------------------------------------------------------------------------------
def test_a_turn_parses_into_the_event_vocabulary() -> None:
    a = adapter()
    assert parse(a, {"type": "Welcome", "request_id": "r"}) == []
    assert parse(a, {"type": "SettingsApplied"}) == [SetupComplete()]
    assert parse(a, {"type": "UserStartedSpeaking"}) == [UserSpeechStarted()]
    assert parse(a, {"type": "ConversationText", "role": "user", "content": "12"}) == [
        Transcript(role="user", text="12", final=True), AudioAcknowledged(until_s=None), TurnCompleted(role="user")]
    assert parse(a, {"type": "AgentThinking", "content": "hm"}) == []
    assert parse(a, {"type": "ConversationText", "role": "assistant", "content": "12"}) == [
        TurnStarted(role="assistant"), Transcript(role="assistant", text="12", final=True)]
    assert parse(a, {"type": "AgentStartedSpeaking", "total_latency": 0.1, "tts_latency": 0.05,
                     "ttt_latency": 0.05}) == []
    assert parse(a, b"\x00\x00" * 240) == [ReplyAudio(data=b"\x00\x00" * 240, fmt=PCM24)]
    assert parse(a, {"type": "AgentAudioDone"}) == [TurnCompleted(role="assistant")]
    assert parse(a, {"type": "History", "role": "user", "content": "12"}) == []
    assert parse(a, {"type": "SomethingNew"}) == []


def test_barge_in_only_while_the_reply_can_still_be_heard() -> None:
    a = adapter()
    parse(a, {"type": "SettingsApplied"})
    parse(a, {"type": "AgentStartedSpeaking", "total_latency": 0, "tts_latency": 0, "ttt_latency": 0})
    parse(a, bytes(48000))  # 1 s of reply audio at 24 kHz
    parse(a, {"type": "AgentAudioDone"})
    a.audio_frame(bytes(16000))  # 0.5 s of caller audio: the reply is still playing
    assert parse(a, {"type": "UserStartedSpeaking"}) == [TurnInterrupted(), UserSpeechStarted()]
    parse(a, bytes(48000))
    parse(a, {"type": "AgentAudioDone"})
    a.audio_frame(bytes(64000))  # 2 s later the reply has played out: no flush
    assert parse(a, {"type": "UserStartedSpeaking"}) == [UserSpeechStarted()]


def test_tools_text_echo_and_errors() -> None:
    a = adapter()
    request = {"type": "FunctionCallRequest", "functions": [
        {"id": "f1", "name": "lookup", "arguments": '{"digits": "34"}', "client_side": True},
        {"id": "f2", "name": "server_fn", "arguments": "{}", "client_side": False}]}
    assert parse(a, request) == [ToolCall(call_id="f1", name="lookup", arguments={"digits": "34"})]
    assert parse(a, {"type": "FunctionCallCancelled", "functions": [{"id": "f1", "name": "lookup"}]}) == [
        ToolCallCancelled(call_ids=("f1",))]
    a.text_frames("56")
    assert parse(a, {"type": "ConversationText", "role": "user", "content": "56"}) == []  # our own typed turn
    [refused] = parse(a, {"type": "InjectionRefused", "message": "busy"})
    assert isinstance(refused, ProviderFailed) and refused.error.provider_code == "INJECTION_REFUSED"
    [before] = parse(a, {"type": "Error", "code": "UNPARSABLE_CLIENT_MESSAGE", "description": "Check audio"})
    assert isinstance(before.error, ProviderRejected) and before.fatal_for_link
    parse(a, {"type": "SettingsApplied"})
    [after] = parse(a, {"type": "Error", "code": "FAILED_TO_THINK", "description": "dg-key leaked?"})
    assert isinstance(after.error, ProviderProtocolError) and not after.fatal_for_link
    assert "dg-key" not in after.error.message
    [bad] = a.parse("{not json")
    assert isinstance(bad, ProviderFailed) and isinstance(bad.error, ProviderProtocolError)
    [short] = parse(a, {"type": "FunctionCallRequest"})
    assert isinstance(short, ProviderFailed)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64),
                 st.dictionaries(st.sampled_from(["type", "role", "content", "functions", "code"]),
                                 st.one_of(st.none(), st.integers(-1000, 1000), st.text(max_size=8),
                                           st.sampled_from(["ConversationText", "FunctionCallRequest", "Error",
                                                            "user", "assistant"]),
                                           st.lists(st.dictionaries(st.text(max_size=4), st.text(max_size=4)))))))
def test_parse_never_raises(frame: object) -> None:
    a = adapter()
    a.parse(frame if isinstance(frame, bytes | str) else orjson.dumps(frame).decode())


def test_close_codes_map_to_the_error_tree() -> None:
    a = adapter()
    normal = a.classify_close(1000, "")
    assert isinstance(normal, ProviderUnavailable) and not normal.breaker_failure
    assert isinstance(a.classify_close(1011, "x"), ProviderUnavailable) and a.classify_close(1011, "").breaker_failure
    assert isinstance(a.classify_close(1008, "policy"), ProviderRejected)
    assert a.classify_close(None, "").error_type == "network"
    assert a.classify_handshake(401).error_type == "auth" and a.classify_handshake(503).retryable


def test_deepgram_means_the_agent_unless_transcribing_or_not_configured() -> None:
    available = {"gemini", "deepgram", "deepgram_agent"}
    assert resolve("deepgram", {}, available) == "deepgram_agent"
    assert resolve("deepgram", {"deepgram": {"mode": "transcribe"}}, available) == "deepgram"
    assert resolve("deepgram", {}, {"deepgram"}) == "deepgram"
    assert resolve("gemini", {}, available) == "gemini"
    assert resolve("deepgram_agent", {"deepgram": {"mode": "transcribe"}}, available) == "deepgram_agent"


def test_an_unanswered_user_turn_is_asked_again_on_the_new_connection_not_put_in_context() -> None:
    a = adapter()
    history = (UserTurn("12"), AssistantTurn("12"), UserTurn("34"))
    assert settings_of(a, history)["agent"]["context"]["messages"] == [
        {"type": "History", "role": "user", "content": "12"}, {"type": "History", "role": "assistant", "content": "12"}]
    assert [orjson.loads(f) for f in a.ready_frames(history=history, resumed=False)] == [
        {"type": "InjectUserMessage", "content": "34"}]
    assert parse(a, {"type": "ConversationText", "role": "user", "content": "34"}) == []  # its echo
    assert adapter().ready_frames(history=history[:2], resumed=False) == []
    b = adapter()
    b.text_frames("78")
    parse(b, {"type": "InjectionRefused", "message": "busy"})
    assert parse(b, {"type": "ConversationText", "role": "user", "content": "78"})  # spoken later: reported


def test_agent_options_are_validated_and_never_reach_the_listen_query() -> None:
    from gateway.errors import BadMessage
    from providers.options import deepgram_query, split

    known, unknown = split({"deepgram": {"mode": "transcribe", "speak_model": "aura-2-orion-en", "greeting": "Hi",
                                         "think": [{"provider": {"type": "open_ai", "model": "gpt-4.1"}}]}})
    assert unknown == [] and set(known["deepgram"]) == {"mode", "speak_model", "greeting", "think"}
    for bad in ({"mode": "talk"}, {"think": "gemini"}, {"greeting": 3}):
        with pytest.raises(BadMessage):
            split({"deepgram": bad})
    params: dict[str, str | list[str]] = {}
    deepgram_query(params, {**known["deepgram"], "smart_format": True})
    assert params == {"smart_format": "true"}
