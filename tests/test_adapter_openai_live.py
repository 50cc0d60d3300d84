"""OpenAILiveAdapter: GPT-Live wire events in, event lists out; every client frame validated against
the openai SDK's `openai.types.live` client event model of its type; the inferred-turn table."""

from __future__ import annotations

import base64
import json
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.live.client_event import ClientEvent
from pydantic import BaseModel

from audio.formats import ALAW_8K, MULAW_8K, PCM16_16K, PCM16_24K, AudioFormat
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
    UsageReported,
    UserSpeechStarted,
    UserTurn,
)
from gateway.session_config import SessionConfig, ToolSpec
from providers.base import Endpoint
from providers.openai_live import _ALLOWED, OpenAILiveAdapter, Turn
from providers.openai_live_wire import MAX_INITIAL_ITEMS

KEY = "sk-proj-LIVETESTKEY0123456789"
ENDPOINT = Endpoint(base_url="https://127.0.0.1:9000/v1/", api_key=KEY)
LOOKUP = ToolSpec(name="lookup", description="digits",
                  parameters={"type": "object", "properties": {"digits": {"type": "string"}}})


def _client_models() -> dict[str, type[BaseModel]]:
    union, _info = typing.get_args(ClientEvent)
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in typing.get_args(union)}


CLIENT_MODELS = _client_models()


def sdk_valid(frame: str | bytes) -> dict[str, Any]:
    """The frame parses as the SDK client event model of its type, with no undeclared keys."""
    message = json.loads(frame)
    model = CLIENT_MODELS[message["type"]]
    parsed = model.model_validate(message)

    def extras(value: Any) -> list[str]:
        if isinstance(value, BaseModel):
            return list(value.model_extra or {}) + [k for n in type(value).model_fields for k in extras(getattr(value, n))]
        if isinstance(value, list):
            return [k for v in value for k in extras(v)]
        return []

    assert not extras(parsed), f"{message['type']}: keys the SDK does not know: {extras(parsed)}"
    return message


def adapter(**config: Any) -> OpenAILiveAdapter:
    return OpenAILiveAdapter(SessionConfig(**config), ENDPOINT)


def feed(a: OpenAILiveAdapter, *messages: dict[str, Any]) -> list[Any]:
    events: list[Any] = []
    for m in messages:
        events += a.parse(json.dumps(m))
    return events


def user(delta: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    return {"type": "session.input_transcript.delta", "event_id": "e", "delta": delta,
            "start_ms": start_ms, "end_ms": end_ms}


def said(delta: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    return {"type": "session.output_transcript.delta", "event_id": "e", "delta": delta,
            "start_ms": start_ms, "end_ms": end_ms}


def audio(data: bytes) -> dict[str, Any]:
    return {"type": "session.output_audio.delta", "delta": base64.b64encode(data).decode()}


def test_connects_like_the_sdk_live_client() -> None:
    request = adapter().connect_request()
    assert request.url == "wss://127.0.0.1:9000/v1/live/sessions"  # no model in the URL
    assert request.headers == (("Authorization", f"Bearer {KEY}"),) and request.subprotocols == ()
    assert KEY not in repr(request)


def test_session_start_carries_config_history_and_tools() -> None:
    history = [UserTurn("12"), AssistantTurn("12"), ToolInvocation("c1", "lookup", {"digits": "3"}),
               ToolOutput("c1", "lookup", "found"), UserTurn("  ")]
    a = adapter(instructions="Be brief.", voice="cedar", tools=(LOOKUP,),
                provider_options={"openai_live": {"model": "gpt-live-1.1", "delegation_model": "gpt-6-sol"}})
    (frame,) = a.open_frames(history=history, resume_handle=None)
    start = sdk_valid(frame)
    session = start["session"]
    assert (session["model"], session["instructions"]) == ("gpt-live-1.1", "Be brief.")
    assert session["audio"] == {"format": {"type": "audio/pcm", "rate": 16000}, "output": {"voice": "cedar"}}
    assert [(i["role"], i["content"][0]["text"]) for i in session["input"]] == [
        ("user", "12"), ("assistant", "12"), ("assistant", '[called tool lookup with {"digits":"3"}]'),
        ("user", "[tool lookup returned: found]")]
    responses = session["delegation"]["responses"]
    assert session["delegation"]["type"] == "responses" and responses["model"] == "gpt-6-sol"
    assert responses["tools"] == [{"type": "function", "name": "lookup", "description": "digits",
                                   "parameters": LOOKUP.parameters}]


def test_no_tools_no_delegation_and_foreign_voice_falls_back() -> None:
    session = sdk_valid(adapter(voice="Puck").open_frames(history=[], resume_handle=None)[0])["session"]
    assert "delegation" not in session and "input" not in session and "instructions" not in session
    assert session["audio"]["output"] == {"voice": "marin"} and session["model"] == "gpt-live-1"


def test_long_history_keeps_the_newest_messages_within_the_limit() -> None:
    history = [UserTurn(str(i)) for i in range(300)]
    session = sdk_valid(adapter().open_frames(history=history, resume_handle=None)[0])["session"]
    assert len(session["input"]) == MAX_INITIAL_ITEMS and session["input"][-1]["content"][0]["text"] == "299"


@pytest.mark.parametrize(("client", "wire", "fmt"), [
    (MULAW_8K, {"type": "audio/pcmu", "rate": 8000}, MULAW_8K),
    (ALAW_8K, {"type": "audio/pcma", "rate": 8000}, ALAW_8K),
    (PCM16_16K, {"type": "audio/pcm", "rate": 16000}, PCM16_16K),
    (AudioFormat(encoding="pcm16", sample_rate_hz=8000), {"type": "audio/pcm", "rate": 16000}, PCM16_16K),
    (PCM16_24K, {"type": "audio/pcm", "rate": 24000}, PCM16_24K),
    (AudioFormat(encoding="pcm16", sample_rate_hz=48000), {"type": "audio/pcm", "rate": 24000}, PCM16_24K),
])
def test_one_format_both_ways_with_g711_passthrough(client: AudioFormat, wire: dict[str, Any],
                                                    fmt: AudioFormat) -> None:
    a = adapter(input_format=client)
    assert a.input_format == fmt and a.output_format == fmt
    assert sdk_valid(a.open_frames(history=[], resume_handle=None)[0])["session"]["audio"]["format"] == wire


def test_per_call_frames_are_valid_client_events() -> None:
    a = adapter(tools=(LOOKUP,))
    append = sdk_valid(a.audio_frame(b"\x01\x02"))
    assert base64.b64decode(append["audio"]) == b"\x01\x02"
    (typed,) = [sdk_valid(f) for f in a.text_frames("what is 12?")]
    assert typed["type"] == "session.instructions.append" and typed["delegation_id"] is None
    assert typed["content"].endswith("what is 12?")
    item, create = [sdk_valid(f) for f in a.tool_result_frames("call_1", "lookup", '{"ok":1}')]
    assert item["item"] == {"type": "function_call_output", "call_id": "call_1", "output": '{"ok":1}'}
    assert create == {"type": "response.create"}
    assert [sdk_valid(f)["type"] for f in a.close_frames()] == ["session.close"]
    assert a.commit_frames() == [] and a.cancel_frames() == [] and a.truncate_frames("i", 10) == []
    long = sdk_valid(a.text_frames("9" * 5000)[0])["content"]
    assert len(long) <= 1500


def test_setup_complete_on_session_started() -> None:
    a = adapter()
    events = feed(a, {"type": "session.started", "event_id": "e", "session": {"id": "sess_1"}},
                  {"type": "session.started", "event_id": "e", "session": {"id": "sess_1"}})
    assert events == [SetupComplete(provider_session_id="sess_1")]


def test_a_turn_and_its_reply_are_inferred_from_timed_deltas() -> None:
    a = adapter()
    events = feed(a, user("1", 100, 300), user("2", 300, 500))
    assert events == [UserSpeechStarted(at_s=0.1),
                      Transcript(role="user", text="1", final=False, start_s=0.1, end_s=0.3),
                      Transcript(role="user", text="12", final=False, start_s=0.1, end_s=0.5)]
    events = feed(a, said("1", 900, 1000), audio(b"\x00\x01"))
    assert events == [Transcript(role="user", text="12", final=True, start_s=0.1, end_s=0.5),
                      AudioAcknowledged(until_s=0.5), TurnStarted(role="assistant"),
                      Transcript(role="assistant", text="1", final=False),
                      ReplyAudio(data=b"\x00\x01", fmt=PCM16_16K)]
    assert a.quiet_events() == [Transcript(role="assistant", text="1", final=True), TurnCompleted(role="assistant")]
    assert a.turn is Turn.IDLE and a.quiet_events() == []


def test_caller_speaking_before_the_reply_ends_interrupts_it() -> None:
    a = adapter()
    feed(a, user("1", 100, 300), said("1", 900, 1000), said("2", 1100, 1200))
    events = feed(a, user("3", 1150, 1300))
    assert events[:2] == [Transcript(role="assistant", text="12", final=True), TurnInterrupted()]
    assert events[2] == UserSpeechStarted(at_s=1.15)


def test_caller_speaking_after_the_reply_completes_it() -> None:
    a = adapter()
    feed(a, user("1", 100, 300), said("1", 900, 1000))
    events = feed(a, user("3", 1500, 1700))
    assert events[:2] == [Transcript(role="assistant", text="1", final=True), TurnCompleted(role="assistant")]


def test_a_user_turn_with_no_reply_is_finalized_when_quiet() -> None:
    a = adapter()
    feed(a, user("4", 100, 300))
    assert a.quiet_events() == [Transcript(role="user", text="4", final=True, start_s=0.1, end_s=0.3),
                                AudioAcknowledged(until_s=0.3)]


def test_the_turn_table_refuses_a_move_it_does_not_list() -> None:
    assert (Turn.IDLE, Turn.IDLE) not in _ALLOWED and len(_ALLOWED) == 6
    a = adapter()
    with pytest.raises(ValueError, match="idle → idle"):
        a._move(Turn.IDLE)


def test_responses_delegation_function_call_becomes_a_tool_call() -> None:
    a = adapter(tools=(LOOKUP,))
    feed(a, user("7", 100, 300))
    events = feed(a, {"type": "session.delegation.created", "event_id": "e", "offset_ms": 700,
                      "delegation": {"id": "dlg_1", "target": "responses", "type": "delegation"}},
                  {"type": "response.event", "event_id": "e", "delegation_id": "dlg_1",
                   "event": {"type": "response.output_item.done", "output_index": 0,
                             "item": {"type": "function_call", "call_id": "call_9", "name": "lookup",
                                      "arguments": '{"digits": "7"}', "id": "fc_1"}}},
                  {"type": "response.event", "event_id": "e",
                   "event": {"type": "response.output_item.done", "item": {"type": "message"}}})
    assert events == [Transcript(role="user", text="7", final=True, start_s=0.1, end_s=0.3),
                      AudioAcknowledged(until_s=0.3), ToolCall(call_id="call_9", name="lookup",
                                                               arguments={"digits": "7"})]


def test_client_delegation_is_a_delegate_tool_call_answered_with_commentary() -> None:
    a = adapter()
    feed(a, user("9", 100, 300), user("#", 300, 500))
    events = feed(a, {"type": "session.delegation.created", "event_id": "e", "offset_ms": 700,
                      "delegation": {"id": "dlg_2", "target": "client", "type": "delegation"}})
    assert events[-1] == ToolCall(call_id="dlg_2", name="delegate", arguments={"request": "9#"})
    (answer,) = [sdk_valid(f) for f in a.tool_result_frames("dlg_2", "delegate", "It is nine.")]
    # the model acknowledged aloud before delegating: the request is still the caller's last turn
    feed(a, user("4", 900, 1000), said("one moment", 1200, 1500))
    events = feed(a, {"type": "session.delegation.created", "event_id": "e", "offset_ms": 1600,
                      "delegation": {"id": "dlg_3", "target": "client", "type": "delegation"}})
    assert events == [ToolCall(call_id="dlg_3", name="delegate", arguments={"request": "4"})]
    assert answer == {"type": "session.commentary.append", "content": "It is nine.", "delegation_id": "dlg_2"}


@pytest.mark.parametrize(("error", "kind", "fatal", "error_type"), [
    ({"code": "invalid_api_key", "type": "invalid_request_error", "message": f"bad {KEY}"}, ProviderRejected,
     True, "auth"),
    ({"code": "unknown_parameter", "type": "invalid_request_error", "message": "x",
      "client_event_id": "vg_session_start"}, ProviderRejected, True, "protocol"),
    ({"code": "rate_limit_exceeded", "type": "requests", "message": "slow down"}, ProviderUnavailable, False,
     "rate_limit"),
    ({"code": "invalid_value", "type": "invalid_request_error", "message": "x"}, ProviderProtocolError, False,
     "protocol"),
])
def test_errors_map_to_the_error_tree(error: dict[str, Any], kind: type, fatal: bool, error_type: str) -> None:
    (event,) = feed(adapter(), {"type": "error", "event_id": "e", "error": error})
    assert isinstance(event, ProviderFailed) and isinstance(event.error, kind)
    assert event.fatal_for_link is fatal and event.error.error_type == error_type
    assert KEY not in event.error.message


def test_planned_closes_are_not_failures() -> None:
    a = adapter()
    feed(a, user("1", 100, 300))
    events = feed(a, {"type": "session.closed", "event_id": "e", "reason": "expired", "session": {},
                      "usage": {"seconds": 3600}})
    assert events[-2:] == [UsageReported(billed_s=3600), SessionExpiring(reason="expired")]
    assert events[0].final is True
    assert a.classify_close(1000, "expired") is None
    b = adapter()
    b.close_frames()
    assert b.classify_close(1000, "") is None
    c = adapter()
    assert isinstance(c.classify_close(1011, "boom"), ProviderUnavailable)
    assert c.classify_close(1011, "boom").breaker_failure is True  # type: ignore[union-attr]
    assert c.classify_close(1000, "").breaker_failure is False  # type: ignore[union-attr]
    assert c.classify_close(None, "").error_type == "network"  # type: ignore[union-attr]
    content = feed(adapter(), {"type": "session.closed", "event_id": "e", "reason": "content", "session": {},
                               "usage": {"seconds": 1}})
    assert isinstance(content[-1].error, ProviderRejected) and content[-1].fatal_for_link


def test_usage_is_reported_acknowledgements_relay_nothing_bad_frames_are_protocol_failures() -> None:
    a = adapter()
    feed(a, {"type": "session.started", "event_id": "e", "session": {"id": "sess_9"}})
    assert feed(a, {"type": "session.usage.updated", "event_id": "e", "usage": {"seconds": 60}},
                {"type": "session.instructions.appended", "event_id": "e", "start_ms": 1, "end_ms": 1}) == [
        UsageReported(billed_s=60, provider_session_id="sess_9")]
    (bad,) = a.parse("not json")
    assert isinstance(bad, ProviderFailed) and isinstance(bad.error, ProviderProtocolError)
    assert a.parse(json.dumps({"type": "session.input_transcript.delta", "delta": 5})) == []


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12),
       st.sampled_from(["session.started", "session.closed", "error", "session.input_transcript.delta",
                        "session.output_transcript.delta", "session.output_audio.delta",
                        "session.delegation.created", "response.event"]))
def test_parse_never_raises(payload: Any, kind: str) -> None:
    a = adapter()
    message = payload if isinstance(payload, dict) else {"value": payload}
    a.parse(json.dumps({**message, "type": kind}))
    a.quiet_events()
