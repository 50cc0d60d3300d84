"""OpenAIAdapter (GA interface): wire events from docs/providers/openai.md in, event lists out; the
session.update and per-call messages checked against the protocol doc's worked examples."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.formats import ALAW_8K, MULAW_8K, PCM16_24K, AudioFormat
from gateway.errors import ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AssistantTurn,
    AudioAcknowledged,
    ProviderFailed,
    ReplyAudio,
    SessionExpiring,
    SetupComplete,
    ToolCall,
    ToolInvocation,
    ToolOutput,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UserSpeechStarted,
    UserTurn,
)
from gateway.session_config import SessionConfig, ToolSpec
from providers.base import Endpoint
from providers.openai import OpenAIAdapter

KEY = "sk-proj-TESTKEY0123456789abcdef"
ENDPOINT = Endpoint(base_url="http://127.0.0.1:9000/v1", api_key=KEY)
MULAW = AudioFormat(encoding="mulaw", sample_rate_hz=8000)
WEATHER = ToolSpec(name="get_weather", description="Weather for a city",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def adapter(**config: object) -> OpenAIAdapter:
    return OpenAIAdapter(SessionConfig(**config), ENDPOINT)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def feed(a: OpenAIAdapter, *messages: dict | str) -> list:
    events: list = []
    for m in messages:
        events += a.parse(json.dumps(m) if isinstance(m, dict) else m)
    return events


def ready(a: OpenAIAdapter) -> OpenAIAdapter:
    feed(a, {"type": "session.created", "session": {"id": "sess_1"}}, {"type": "session.updated", "session": {}})
    return a


def response_created(rid: str = "resp_A1") -> dict:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def audio_delta(data: bytes, rid: str = "resp_A1", item: str = "item_B2") -> dict:
    return {"type": "response.output_audio.delta", "event_id": "event_C9x1", "response_id": rid,
            "item_id": item, "output_index": 0, "content_index": 0, "delta": b64(data)}


def transcript_delta(text: str, rid: str = "resp_A1", item: str = "item_B2") -> dict:
    return {"type": "response.output_audio_transcript.delta", "response_id": rid, "item_id": item, "delta": text}


def response_done(status: str = "completed", rid: str = "resp_A1", **extra: object) -> dict:
    return {"type": "response.done", "response": {"object": "realtime.response", "id": rid, "status": status, **extra}}


# -- opening ------------------------------------------------------------------------------------
def test_connect_request_uses_the_ga_path_with_bearer_auth_and_no_beta_header():
    req = adapter().connect_request()
    assert req.url == "ws://127.0.0.1:9000/v1/realtime?model=gpt-realtime"
    assert req.headers == (("Authorization", f"Bearer {KEY}"),)
    assert KEY not in repr(req)
    optioned = OpenAIAdapter(SessionConfig(provider_options={"openai": {"model": "gpt-realtime-mini"}}), ENDPOINT)
    assert optioned.connect_request().url.endswith("/realtime?model=gpt-realtime-mini")
    from_endpoint = OpenAIAdapter(SessionConfig(), Endpoint(base_url="wss://x/v1", api_key="k", model="gpt-x"))
    assert from_endpoint.connect_request().url == "wss://x/v1/realtime?model=gpt-x"


def test_session_update_for_a_twilio_bridge_matches_the_worked_example():
    a = adapter(input_format=MULAW, output_format=MULAW, instructions="You are a concise phone assistant.",
                tools=(WEATHER,))
    [frame] = a.open_frames(history=[], resume_handle=None)
    assert json.loads(frame) == {"type": "session.update", "event_id": "vg_session_update", "session": {
        "type": "realtime",
        "instructions": "You are a concise phone assistant.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {"format": {"type": "audio/pcmu"},
                      "transcription": {"model": "gpt-4o-mini-transcribe"},
                      "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}},
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "tools": [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]}}],
        "tool_choice": "auto"}}


def test_mulaw_passes_through_and_other_audio_is_pcm16_24k():
    twilio = adapter(input_format=MULAW, output_format=MULAW)
    assert twilio.input_format == MULAW_8K and twilio.output_format == MULAW_8K
    payload = bytes([0xFF, 0x7E, 0x00, 0x80]) * 40  # a μ-law frame is forwarded byte for byte
    assert json.loads(twilio.audio_frame(payload)) == {"type": "input_audio_buffer.append", "audio": b64(payload)}
    alaw = adapter(input_format=AudioFormat(encoding="alaw", sample_rate_hz=8000), output_format=ALAW_8K)
    assert alaw.input_format == ALAW_8K and alaw.output_format == ALAW_8K
    native = adapter(input_format=AudioFormat(encoding="pcm16", sample_rate_hz=16000),
                     output_format=AudioFormat(encoding="pcm16", sample_rate_hz=48000))
    assert native.input_format == PCM16_24K and native.output_format == PCM16_24K
    session = json.loads(native.open_frames(history=[], resume_handle=None)[0])["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    mixed = adapter(input_format=MULAW)  # μ-law in, PCM16 out: each direction chosen on its own
    assert (mixed.input_format, mixed.output_format) == (MULAW_8K, PCM16_24K)


def test_voice_language_and_empty_instructions():
    session = json.loads(adapter(voice="cedar", language="en-US").open_frames(history=[], resume_handle=None)[0])[
        "session"]
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert "instructions" not in session and session["tools"] == []


def test_history_is_packed_into_one_user_message_plus_the_open_tool_call():
    history = [UserTurn("My order number is 1234."), AssistantTurn("Thanks, I have it."),
               ToolInvocation("fc-1", "lookup", {"order": 1234}), ToolOutput("fc-1", "lookup", "shipped"),
               AssistantTurn("It has shipped. Anything else?"), UserTurn("What's the weather in Paris?"),
               ToolInvocation("fc-2", "get_weather", {"city": "Paris"})]
    frames = [json.loads(f) for f in adapter().open_frames(history=history, resume_handle=None)]
    assert frames[0]["type"] == "session.update"
    assert frames[1:] == [
        {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Previous conversation in this call:\n"
                                           "User: My order number is 1234.\n"
                                           "Assistant: Thanks, I have it.\n"
                                           'Assistant: [called tool lookup with {"order":1234}]\n'
                                           "Tool: [tool lookup returned: shipped]\n"
                                           "Assistant: It has shipped. Anything else?\n"
                                           "User: What's the weather in Paris?"}]}},
        {"type": "conversation.item.create", "item": {"type": "function_call", "call_id": "fc-2",
                                                      "name": "get_weather", "arguments": '{"city":"Paris"}'}},
    ]
    # no assistant-text items: they make the model answer in text (protocol doc §2.1 caveat)
    assert all(f["item"].get("role") != "assistant" for f in frames[1:])


def test_per_call_messages():
    a = adapter()
    assert [json.loads(f) for f in a.commit_frames()] == [
        {"type": "input_audio_buffer.commit"}, {"type": "response.create"}]
    assert [json.loads(f) for f in a.text_frames("Hi there")] == [
        {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                      "content": [{"type": "input_text", "text": "Hi there"}]}},
        {"type": "response.create"}]
    assert [json.loads(f) for f in a.tool_result_frames("call_9", "get_weather", '{"temp_c":18}')] == [
        {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_9",
                                                      "output": '{"temp_c":18}'}},
        {"type": "response.create"}]
    assert [json.loads(f) for f in a.cancel_frames()] == [{"type": "response.cancel"}]
    assert [json.loads(f) for f in a.truncate_frames("item_B2", 1450)] == [
        {"type": "conversation.item.truncate", "item_id": "item_B2", "content_index": 0, "audio_end_ms": 1450}]


# -- the link comes up at session.updated --------------------------------------------------------------
def test_setup_completes_at_the_first_session_updated_only():
    a = adapter()
    assert feed(a, {"type": "session.created", "session": {"id": "sess_1", "type": "realtime"}}) == []
    assert feed(a, {"type": "session.updated", "session": {"id": "sess_1"}}) == [SetupComplete("sess_1")]
    assert feed(a, {"type": "session.updated", "session": {"id": "sess_1"}}) == []


# -- a whole turn -----------------------------------------------------------------------------------
def test_realistic_ga_turn():
    a = ready(adapter())
    reply = b"\x00\x00\xff\xff" * 10
    events = feed(
        a,
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 1000, "item_id": "item_U1"},
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2500, "item_id": "item_U1"},
        {"type": "input_audio_buffer.committed", "item_id": "item_U1", "previous_item_id": None},
        {"type": "conversation.item.added", "item": {"id": "item_U1", "type": "message", "role": "user"}},
        {"type": "conversation.item.input_audio_transcription.delta", "item_id": "item_U1", "delta": "What's"},
        response_created(),
        {"type": "rate_limits.updated", "rate_limits": []},
        {"type": "response.output_item.added", "response_id": "resp_A1", "item": {"id": "item_B2", "type": "message"}},
        audio_delta(reply), transcript_delta("It's "), audio_delta(reply), transcript_delta("sunny."),
        {"type": "response.output_audio.done", "response_id": "resp_A1", "item_id": "item_B2"},
        {"type": "response.output_audio_transcript.done", "response_id": "resp_A1", "item_id": "item_B2",
         "transcript": "It's sunny."},
        response_done("completed"),
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_U1",
         "content_index": 0, "transcript": "What's the weather?"},
    )
    assert events == [
        UserSpeechStarted(at_s=1.0),
        AudioAcknowledged(until_s=2.5),
        Transcript("user", "What's", False, 1.0, 2.5),
        TurnStarted("assistant"),
        ReplyAudio(reply, PCM16_24K, "item_B2"),
        Transcript("assistant", "It's", False),
        ReplyAudio(reply, PCM16_24K, "item_B2"),
        Transcript("assistant", "It's sunny.", False),
        Transcript("assistant", "It's sunny.", True),
        TurnCompleted("assistant"),
        Transcript("user", "What's the weather?", True, 1.0, 2.5),
    ]


def test_manual_commit_acknowledges_everything_sent():
    a = ready(adapter())
    assert feed(a, {"type": "input_audio_buffer.committed", "item_id": "item_U9"}) == [AudioAcknowledged(None)]


def test_reply_audio_in_mulaw_keeps_its_bytes():
    a = ready(adapter(input_format=MULAW, output_format=MULAW))
    payload = bytes([0xFF, 0x7F, 0x00]) * 50
    assert feed(a, response_created(), audio_delta(payload))[-1] == ReplyAudio(payload, MULAW_8K, "item_B2")


# -- barge-in -------------------------------------------------------------------------------------
def test_speech_during_a_response_interrupts_once_and_drops_its_late_output():
    a = ready(adapter())
    feed(a, response_created(), audio_delta(b"\x01\x00"), transcript_delta("The weather in"))
    events = feed(
        a,
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 4200, "item_id": "item_U2"},
        audio_delta(b"\x02\x00"), transcript_delta(" Paris"),
        {"type": "response.output_audio_transcript.done", "response_id": "resp_A1", "item_id": "item_B2",
         "transcript": "The weather in Paris is sunny."},
        response_done("cancelled", status_details={"type": "cancelled", "reason": "turn_detected"}),
    )
    assert events == [UserSpeechStarted(at_s=4.2), Transcript("assistant", "The weather in", True), TurnInterrupted()]
    # the next response is reported normally
    assert feed(a, response_created("resp_A2"), audio_delta(b"\x03\x00", rid="resp_A2"), response_done(rid="resp_A2")
                ) == [TurnStarted("assistant"), ReplyAudio(b"\x03\x00", PCM16_24K, "item_B2"), TurnCompleted("assistant")]


def test_speech_with_no_active_response_is_not_an_interruption():
    a = ready(adapter())
    feed(a, response_created(), response_done())
    assert feed(a, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "i"}) == [
        UserSpeechStarted(at_s=0.0)]


def test_a_cancelled_response_we_did_not_see_interrupted_is_reported():
    a = ready(adapter())
    assert feed(a, response_created(), transcript_delta("Let me"), response_done("cancelled")) == [
        TurnStarted("assistant"), Transcript("assistant", "Let me", False), Transcript("assistant", "Let me", True),
        TurnInterrupted()]


# -- tools ----------------------------------------------------------------------------------------
def test_function_call_arguments_become_a_tool_call():
    a = ready(adapter(tools=(WEATHER,)))
    events = feed(
        a, response_created(),
        {"type": "response.output_item.added", "response_id": "resp_A1",
         "item": {"id": "item_F1", "type": "function_call", "call_id": "call_9", "name": "get_weather"}},
        {"type": "response.function_call_arguments.done", "response_id": "resp_A1", "item_id": "item_F1",
         "call_id": "call_9", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "response.function_call_arguments.done", "response_id": "resp_A1", "item_id": "item_F2",
         "call_id": "call_10", "arguments": "{not json"},
        response_done())
    assert events == [TurnStarted("assistant"), ToolCall("call_9", "get_weather", {"city": "Paris"}),
                      ToolCall("call_10", "", {"_raw": "{not json"}), TurnCompleted("assistant")]


def test_tool_name_is_taken_from_the_output_item_when_the_event_lacks_it():
    a = ready(adapter())
    events = feed(a, {"type": "response.output_item.added",
                      "item": {"type": "function_call", "call_id": "call_1", "name": "hang_up"}},
                  {"type": "response.function_call_arguments.done", "call_id": "call_1", "arguments": "[]"})
    assert events == [ToolCall("call_1", "hang_up", {"_raw": "[]"})]


# -- errors -----------------------------------------------------------------------------------------
def error_event(code: str | None, message: str = "something", event_id: str | None = None) -> dict:
    return {"type": "error", "event_id": "event_D1", "error": {"type": "invalid_request_error", "code": code,
                                                               "message": message, "param": None,
                                                               "event_id": event_id}}


def test_invalid_api_key_is_fatal_and_never_echoes_the_key():
    [event] = feed(adapter(), error_event("invalid_api_key", f"Incorrect API key provided: {KEY}."))
    assert event.fatal_for_link and isinstance(event.error, ProviderRejected)
    assert event.error.error_type == "auth" and not event.error.retryable
    assert "invalid_api_key" in event.error.message
    assert KEY not in repr(event) and KEY not in str(event.error.fields) and "sk-proj" not in event.error.message


def test_session_expired_is_a_planned_rotation():
    a = ready(adapter())
    assert feed(a, error_event("session_expired", "Your session hit the maximum duration of 60 minutes.")) == [
        SessionExpiring()]
    assert a.classify_close(1001, "Your session hit the maximum duration of 60 minutes.") is None


def test_other_errors_are_non_fatal_protocol_errors_naming_the_code():
    [event] = feed(ready(adapter()), error_event("conversation_already_has_active_response"))
    assert not event.fatal_for_link and isinstance(event.error, ProviderProtocolError)
    assert event.error.error_type == "protocol" and event.error.breaker_failure is False
    assert "conversation_already_has_active_response" in event.error.message


def test_a_refused_session_update_is_a_fatal_config_problem():
    [event] = feed(adapter(), error_event("unknown_parameter", "Unknown parameter: 'session.foo'.",
                                          event_id="vg_session_update"))
    assert event.fatal_for_link and isinstance(event.error, ProviderRejected)
    assert event.error.error_type == "protocol" and "session.foo" in event.error.message


def test_cancel_with_nothing_to_cancel_is_harmless():
    assert feed(ready(adapter()), error_event("response_cancel_not_active")) == []


def test_failed_response_is_a_server_failure_that_ends_the_turn():
    a = ready(adapter())
    events = feed(a, response_created(), response_done("failed", status_details={
        "type": "failed", "error": {"type": "server_error", "code": None,
                                    "message": "The server had an error while processing your request."}}))
    assert events[0] == TurnStarted("assistant") and events[-1] == TurnCompleted("assistant")
    failure = events[1]
    assert isinstance(failure, ProviderFailed) and not failure.fatal_for_link
    assert isinstance(failure.error, ProviderUnavailable) and failure.error.error_type == "server"
    quota = feed(a, response_created("r2"), response_done("failed", rid="r2", status_details={
        "error": {"type": "invalid_request_error", "code": "insufficient_quota", "message": "quota"}}))[1]
    assert quota.error.error_type == "rate_limit"


@pytest.mark.parametrize("frame", ["not json", "[]", '{"no_type": 1}', '{"type": 5}', b"\x80\x81"])
def test_unparseable_frames_become_non_fatal_protocol_failures(frame):
    [event] = adapter().parse(frame)
    assert isinstance(event, ProviderFailed) and not event.fatal_for_link
    assert isinstance(event.error, ProviderProtocolError)


def test_bad_audio_delta_is_reported_not_raised():
    a = ready(adapter())
    [event] = feed(a, {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "%%%"})
    assert isinstance(event, ProviderFailed) and isinstance(event.error, ProviderProtocolError)


def test_unknown_event_types_are_ignored():
    assert feed(ready(adapter()), {"type": "response.content_part.added"}, {"type": "some.future.event"}) == []


# -- failures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "kind", "error_type", "breaker_failure"), [
    (3000, ProviderRejected, "auth", True),
    (4000, ProviderRejected, "protocol", True),
    (1001, ProviderUnavailable, "network", False),  # no session_expired seen on this connection
    (1000, ProviderUnavailable, "network", False),
    (1011, ProviderUnavailable, "server", True),
    (1006, ProviderUnavailable, "network", True),
    (None, ProviderUnavailable, "network", True),
])
def test_close_codes(code, kind, error_type, breaker_failure):
    error = adapter().classify_close(code, "invalid_request_error.invalid_api_key" if code == 3000 else "")
    assert type(error) is kind and error.provider == "openai"
    assert (error.error_type, error.breaker_failure) == (error_type, breaker_failure)


@pytest.mark.parametrize(("status", "kind", "error_type"), [
    (401, ProviderRejected, "auth"), (403, ProviderRejected, "auth"), (429, ProviderUnavailable, "rate_limit"),
    (500, ProviderUnavailable, "server"), (502, ProviderUnavailable, "server"), (404, ProviderRejected, "protocol"),
])
def test_handshake_statuses(status, kind, error_type):
    error = adapter().classify_handshake(status, f'{{"error": "bad key {KEY}"}}')
    assert type(error) is kind and error.error_type == error_type and KEY not in error.message


# -- robustness -------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parse_never_raises_on_arbitrary_frames(frame):
    adapter().parse(frame)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
TYPES = st.sampled_from(["session.created", "session.updated", "error", "input_audio_buffer.speech_started",
                         "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
                         "conversation.item.input_audio_transcription.delta",
                         "conversation.item.input_audio_transcription.completed",
                         "conversation.item.input_audio_transcription.failed", "response.created",
                         "response.output_item.added", "response.output_audio.delta",
                         "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
                         "response.function_call_arguments.done", "response.done"])
FIELDS = st.sampled_from(["session", "error", "item_id", "audio_start_ms", "audio_end_ms", "delta", "transcript",
                          "response", "response_id", "item", "call_id", "name", "arguments"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TYPES, st.dictionaries(FIELDS, JSON, max_size=5)), max_size=6))
def test_parse_never_raises_on_wrongly_typed_known_events(messages):
    a = adapter()
    for kind, body in messages:
        assert isinstance(a.parse(json.dumps({**body, "type": kind})), list)


# -- fidelity: every client frame is a valid GA client event for the official SDK's types ----------
def _unknown_keys(model: object, path: str = "$") -> list[str]:
    """The SDK's models accept extra keys silently; a key they do not know is a typo or beta field."""
    from pydantic import BaseModel

    if isinstance(model, BaseModel):
        found = [f"{path}.{key}" for key in (model.model_extra or {})]
        for name in type(model).model_fields:
            found += _unknown_keys(getattr(model, name), f"{path}.{name}")
        return found
    if isinstance(model, list):
        return [k for i, sub in enumerate(model) for k in _unknown_keys(sub, f"{path}[{i}]")]
    return []


def test_client_frames_validate_against_the_openai_sdk_types():
    from openai.types.realtime.realtime_client_event import RealtimeClientEvent
    from pydantic import TypeAdapter

    events = TypeAdapter(RealtimeClientEvent)
    a = adapter(input_format=MULAW, instructions="Be brief.", tools=(WEATHER,), language="en-US")
    history = [UserTurn("hi"), AssistantTurn("hello"), ToolInvocation("call_1", "get_weather", {"city": "Paris"})]
    frames = [*a.open_frames(history=history, resume_handle=None), a.audio_frame(b"\xff" * 160),
              *a.commit_frames(), *a.text_frames("hi"), *a.tool_result_frames("call_1", "get_weather", "18C"),
              *a.cancel_frames(), *a.truncate_frames("item_B2", 900),
              *adapter().open_frames(history=[], resume_handle=None)]
    for frame in frames:
        assert _unknown_keys(events.validate_json(frame)) == [], frame
    beta = {"type": "session.update", "session": {"type": "realtime", "input_audio_format": "g711_ulaw"}}
    assert _unknown_keys(events.validate_python(beta)) == ["$.session.input_audio_format"]  # the check has teeth
