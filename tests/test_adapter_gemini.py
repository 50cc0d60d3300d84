"""GeminiAdapter: wire messages from docs/providers/gemini.md in, event lists out; setup and input frames
checked against the protocol doc's worked examples."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.formats import PCM16_24K, AudioFormat
from gateway.errors import ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AssistantTurn,
    AudioAcknowledged,
    GoAway,
    ProviderFailed,
    ReplyAudio,
    ResumptionHandle,
    SetupComplete,
    ToolCall,
    ToolCallCancelled,
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
from providers.gemini import GeminiAdapter

KEY = "AIzaSyTESTKEY-0123456789abcdef"
ENDPOINT = Endpoint(base_url="https://gemini.test:8443/", api_key=KEY)
WEATHER = ToolSpec(name="get_weather", description="Weather for a city",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def adapter(**config: object) -> GeminiAdapter:
    return GeminiAdapter(SessionConfig(**config), ENDPOINT)


def server(obj: dict) -> bytes:
    """The real server sends JSON in binary frames, sometimes pretty-printed (§1 "Framing")."""
    return json.dumps(obj, indent=2).encode() + b"\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def audio_part(data: bytes, mime: str = "audio/pcm;rate=24000") -> dict:
    return {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": mime, "data": b64(data)}}]}}}


def feed(a: GeminiAdapter, *messages: dict | bytes | str) -> list:
    events: list = []
    for m in messages:
        events += a.parse(server(m) if isinstance(m, dict) else m)
    return events


# -- opening ------------------------------------------------------------------------------------
def test_connect_request_targets_the_bidi_path_with_the_key_in_a_header_only():
    req = adapter().connect_request()
    assert req.url == ("wss://gemini.test:8443/ws/google.ai.generativelanguage.v1beta."
                       "GenerativeService.BidiGenerateContent")
    assert req.headers == (("x-goog-api-key", KEY),)
    assert KEY not in req.url and KEY not in repr(req)


def test_setup_matches_the_worked_example():
    a = adapter(instructions="You are a concise phone assistant.", tools=(WEATHER,))
    [frame] = a.open_frames(history=[], resume_handle=None)
    assert isinstance(frame, str)
    assert json.loads(frame) == {"setup": {
        "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}},
        "systemInstruction": {"parts": [{"text": "You are a concise phone assistant."}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                   "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                  "required": ["city"]}}]}],
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": False, "silenceDurationMs": 500}},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {},
        "contextWindowCompression": {"slidingWindow": {}},
    }}


def test_setup_carries_voice_language_and_model_choices():
    a = GeminiAdapter(SessionConfig(voice="Kore", language="de-DE",
                                    provider_options={"gemini": {"model": "gemini-live-2.5-flash-preview"}}),
                      ENDPOINT)
    setup = json.loads(a.open_frames(history=[], resume_handle=None)[0])["setup"]
    assert setup["model"] == "models/gemini-live-2.5-flash-preview"
    assert setup["generationConfig"]["speechConfig"] == {
        "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}, "languageCode": "de-DE"}
    assert "systemInstruction" not in setup and "tools" not in setup  # empty instructions/tools omitted
    endpoint_model = GeminiAdapter(SessionConfig(), Endpoint(base_url="ws://x", api_key="k", model="models/m1"))
    assert json.loads(endpoint_model.open_frames(history=[], resume_handle=None)[0])["setup"]["model"] == "models/m1"


def test_tool_schema_becomes_the_openapi_subset():
    tool = ToolSpec(name="book", parameters={
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "properties": {"when": {"type": ["string", "null"], "format": "date-time"},
                       "seats": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                       "kind": {"anyOf": [{"type": "number"}, {"type": "boolean"}]}}})
    decl = json.loads(adapter(tools=(tool,)).open_frames(history=[], resume_handle=None)[0])["setup"]["tools"]
    assert decl == [{"functionDeclarations": [{"name": "book", "parameters": {"type": "OBJECT", "properties": {
        "when": {"type": "STRING", "nullable": True, "format": "date-time"},
        "seats": {"type": "ARRAY", "items": {"type": "INTEGER", "minimum": 1}},
        "kind": {"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}]}}}}]}]
    # a parameterless tool: the server rejects an OBJECT without properties, so none are sent
    bare = json.loads(adapter(tools=(ToolSpec(name="hang_up"),)).open_frames(history=[], resume_handle=None)[0])
    assert bare["setup"]["tools"] == [{"functionDeclarations": [{"name": "hang_up"}]}]


def test_resumption_handle_goes_into_setup_and_no_history_is_seeded():
    history = [UserTurn("My order number is 1234."), AssistantTurn("Thanks, I have it.")]
    a = adapter()
    setup = json.loads(a.open_frames(history=history, resume_handle="Cj4KJ-opaque")[0])["setup"]
    assert setup["sessionResumption"] == {"handle": "Cj4KJ-opaque"}
    assert "historyConfig" not in setup
    assert a.ready_frames(history=history, resumed=True) == []


def test_history_is_seeded_as_alternating_turns_ending_with_the_user():
    history = [UserTurn("My order number is 1234."), AssistantTurn("Thanks, I have it."),
               ToolInvocation("fc-1", "lookup", {"order": 1234}), ToolOutput("fc-1", "lookup", "shipped"),
               AssistantTurn("It has shipped.")]
    a = adapter()
    setup = json.loads(a.open_frames(history=history, resume_handle=None)[0])["setup"]
    assert setup["historyConfig"] == {"initialHistoryInClientContent": True}
    [frame] = a.ready_frames(history=history, resumed=False)
    assert json.loads(frame) == {"clientContent": {"turns": [
        {"role": "user", "parts": [{"text": "My order number is 1234."}]},
        {"role": "model", "parts": [{"text": 'Thanks, I have it.\n[called tool lookup with {"order":1234}]'}]},
        {"role": "user", "parts": [{"text": "[tool lookup returned: shipped]"}]},
        {"role": "model", "parts": [{"text": "It has shipped."}]},
        {"role": "user", "parts": [{"text": " "}]}],
        "turnComplete": False}}


def test_no_history_means_no_seed_and_no_history_config():
    a = adapter()
    setup = json.loads(a.open_frames(history=[UserTurn("  ")], resume_handle=None)[0])["setup"]
    assert "historyConfig" not in setup
    assert a.ready_frames(history=[UserTurn("  ")], resumed=False) == []


# -- input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("client_format", "rate"), [
    (AudioFormat(encoding="pcm16", sample_rate_hz=24000), 16000),  # resampled to the native 16 kHz
    (AudioFormat(encoding="pcm16", sample_rate_hz=48000), 16000),
    # 8 kHz callers are declared as 8 kHz and the server resamples (§1 audio formats): the gateway
    # only decodes μ-law, and the uplink payload halves
    (AudioFormat(encoding="mulaw", sample_rate_hz=8000), 8000),
    (AudioFormat(encoding="pcm16", sample_rate_hz=8000), 8000),
])
def test_audio_is_pcm16_realtime_input_in_a_text_frame(client_format: AudioFormat, rate: int):
    a = adapter(input_format=client_format)
    assert a.input_format == AudioFormat(encoding="pcm16", sample_rate_hz=rate) and a.output_format == PCM16_24K
    pcm = bytes(range(256)) * 3
    frame = a.audio_frame(pcm)
    assert isinstance(frame, str)
    msg = json.loads(frame)
    assert msg == {"realtimeInput": {"audio": {"data": b64(pcm), "mimeType": f"audio/pcm;rate={rate}"}}}
    assert base64.b64decode(msg["realtimeInput"]["audio"]["data"]) == pcm


def test_commit_and_text_frames():
    a = adapter()
    assert [json.loads(f) for f in a.commit_frames()] == [{"realtimeInput": {"audioStreamEnd": True}}]
    assert [json.loads(f) for f in a.text_frames("What's the weather?")] == [{"clientContent": {
        "turns": [{"role": "user", "parts": [{"text": "What's the weather?"}]}], "turnComplete": True}}]
    assert a.cancel_frames() == [] and a.keepalive_frame() is None


# -- a whole turn -----------------------------------------------------------------------------------
def test_realistic_turn_setup_transcripts_reply_and_turn_complete():
    a = adapter()
    reply = b"\x00\x00\x00\x00\xff\xff\x01\x00"
    events = feed(
        a,
        {"setupComplete": {}},
        {"serverContent": {"inputTranscription": {"text": "What's the"}}},
        {"serverContent": {"inputTranscription": {"text": " weather?"}}},
        audio_part(reply),
        {"serverContent": {"outputTranscription": {"text": "Sure, let me"}}},
        audio_part(reply),
        {"serverContent": {"outputTranscription": {"text": " check."}}},
        {"serverContent": {"generationComplete": True}},
        {"serverContent": {"turnComplete": True},
         "usageMetadata": {"promptTokenCount": 412, "responseTokenCount": 96, "totalTokenCount": 508}},
    )
    assert events == [
        SetupComplete(),
        Transcript("user", "What's the", False),
        Transcript("user", "What's the weather?", False),
        Transcript("user", "What's the weather?", True),
        AudioAcknowledged(None),
        TurnStarted("assistant"),
        ReplyAudio(reply, PCM16_24K),
        Transcript("assistant", "Sure, let me", False),
        ReplyAudio(reply, PCM16_24K),
        Transcript("assistant", "Sure, let me check.", False),
        Transcript("assistant", "Sure, let me check.", True),
        TurnCompleted("assistant"),
    ]


def test_text_frames_are_accepted_as_well_as_binary():
    assert adapter().parse('{"setupComplete": {"sessionId": "s-1"}}') == [SetupComplete("s-1")]


def test_finished_input_transcription_finalizes_the_user_turn():
    a = adapter()
    assert feed(a, {"serverContent": {"inputTranscription": {"text": "hello", "finished": True}}}) == [
        Transcript("user", "hello", False), Transcript("user", "hello", True), AudioAcknowledged(None)]
    # nothing pending: a later turnComplete adds no user final
    assert feed(a, {"serverContent": {"turnComplete": True}}) == [TurnCompleted("assistant")]


def test_every_field_of_a_bundled_message_is_processed():
    a = adapter()
    reply = b"\x01\x00\x02\x00"
    events = feed(a, {"serverContent": {
        "inputTranscription": {"text": "hi"},
        "modelTurn": {"parts": [{"text": "planning a greeting", "thought": True},
                                {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": b64(reply)}}]},
        "outputTranscription": {"text": "Hello!"},
        "turnComplete": True}}, )
    assert events == [
        Transcript("user", "hi", False), Transcript("user", "hi", True), AudioAcknowledged(None),
        TurnStarted("assistant"), ReplyAudio(reply, PCM16_24K),
        Transcript("assistant", "Hello!", False), Transcript("assistant", "Hello!", True),
        TurnCompleted("assistant")]


def test_reply_audio_rate_comes_from_the_mime_type_and_both_alphabets_decode():
    a = adapter()
    data = bytes([0xFB, 0xFF, 0xBF, 0x00])  # standard base64 "+/+/AA==", URL-safe "-_-_AA"
    [_, at16k] = feed(a, {"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=16000", "data": "-_-_AA"}}]}}})
    assert at16k == ReplyAudio(data, AudioFormat(encoding="pcm16", sample_rate_hz=16000))
    [bare] = feed(a, audio_part(data, mime="audio/pcm"))
    assert bare == ReplyAudio(data, PCM16_24K)


# -- barge-in -------------------------------------------------------------------------------------
def test_barge_in_flushes_and_the_following_turn_complete_is_not_a_second_end():
    a = adapter()
    chunk = b"\x00\x01" * 4
    feed(a, audio_part(chunk), {"serverContent": {"outputTranscription": {"text": "The weather in"}}})
    events = feed(a, {"serverContent": {"interrupted": True}}, {"serverContent": {"turnComplete": True}})
    assert events == [Transcript("assistant", "The weather in", True), TurnInterrupted()]
    # the next answer is a new turn, and its completion is reported
    assert feed(a, audio_part(chunk), {"serverContent": {"turnComplete": True}}) == [
        TurnStarted("assistant"), ReplyAudio(chunk, PCM16_24K), TurnCompleted("assistant")]


def test_barge_in_with_pending_user_words_finalizes_them():
    a = adapter()
    events = feed(a, {"serverContent": {"inputTranscription": {"text": "wait"}}},
                  {"serverContent": {"interrupted": True}})
    assert events == [Transcript("user", "wait", False), Transcript("user", "wait", True),
                      AudioAcknowledged(None), TurnInterrupted()]


def test_voice_activity_start_is_user_speech():
    events = feed(adapter(), {"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "1.5s"}},
                  {"voiceActivity": {"type": "ACTIVITY_END"}})
    assert events == [UserSpeechStarted(at_s=1.5)]


# -- tools ----------------------------------------------------------------------------------------
def test_tool_round_trip():
    a = adapter(tools=(WEATHER,))
    events = feed(a, {"serverContent": {"inputTranscription": {"text": "Weather in Paris?"}}},
                  {"toolCall": {"functionCalls": [{"id": "fc-7", "name": "get_weather", "args": {"city": "Paris"}}]}})
    assert events[-3:] == [Transcript("user", "Weather in Paris?", True), AudioAcknowledged(None),
                           ToolCall("fc-7", "get_weather", {"city": "Paris"})]
    [plain] = a.tool_result_frames("fc-7", "get_weather", "18C, cloudy")
    assert json.loads(plain) == {"toolResponse": {"functionResponses": [
        {"id": "fc-7", "name": "get_weather", "response": {"output": {"result": "18C, cloudy"}}}]}}
    [as_json] = a.tool_result_frames("fc-7", "", '{"temp_c": 18}')  # name recovered from the call
    assert json.loads(as_json)["toolResponse"]["functionResponses"][0] == {
        "id": "fc-7", "name": "get_weather", "response": {"output": {"temp_c": 18}}}
    assert json.loads(a.tool_result_frames("fc-7", "get_weather", "[1, 2]")[0])[
        "toolResponse"]["functionResponses"][0]["response"] == {"output": {"result": "[1, 2]"}}


def test_result_for_a_call_made_elsewhere_is_told_as_text():
    # e.g. a call the caller's previous provider made: this Gemini session has no such id
    [frame] = adapter().tool_result_frames("call_9", "get_weather", "18C")
    assert json.loads(frame) == {"clientContent": {"turns": [
        {"role": "user", "parts": [{"text": "[tool get_weather returned: 18C]"}]}], "turnComplete": True}}


def test_tool_call_cancellation():
    assert feed(adapter(), {"toolCallCancellation": {"ids": ["fc-7", "fc-8"]}}) == [
        ToolCallCancelled(("fc-7", "fc-8"))]


# -- lifecycle --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("left", "seconds"), [("50s", 50.0), ("9.5s", 9.5), ("0s", 0.0), ("soon", 0.0)])
def test_go_away_time_left(left, seconds):
    assert feed(adapter(), {"goAway": {"timeLeft": left}}) == [GoAway(seconds)]


def test_close_after_go_away_is_the_announced_one():
    a = adapter()
    feed(a, {"goAway": {"timeLeft": "5s"}})
    assert a.classify_close(1011, "Internal error occurred.") is None
    assert a.classify_close(None, "") is None


def test_resumption_updates_keep_only_resumable_handles():
    events = feed(adapter(),
                  {"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}},
                  {"sessionResumptionUpdate": {"newHandle": "", "resumable": False}},
                  {"sessionResumptionUpdate": {"newHandle": "h-late", "resumable": False}},
                  {"sessionResumptionUpdate": {"newHandle": "h2", "resumable": "true"}},
                  {"session_resumption_update": {"new_handle": "h3", "resumable": True}})
    assert events == [ResumptionHandle("h1"), ResumptionHandle("h2"), ResumptionHandle("h3")]


def test_snake_case_server_keys_parse_too():
    events = feed(adapter(), {"setup_complete": {}},
                  {"server_content": {"output_transcription": {"text": "Hi"}, "turn_complete": True}})
    assert events == [SetupComplete(), TurnStarted("assistant"), Transcript("assistant", "Hi", False),
                      Transcript("assistant", "Hi", True), TurnCompleted("assistant")]


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("frame", [b"\xff\xfe not utf-8", "not json", "[1, 2]", b'"just a string"', ""])
def test_unparseable_frames_become_non_fatal_protocol_failures(frame):
    [event] = adapter().parse(frame)
    assert isinstance(event, ProviderFailed) and not event.fatal_for_link
    assert isinstance(event.error, ProviderProtocolError) and event.error.error_type == "protocol"


def test_bad_audio_payload_keeps_the_events_before_it():
    events = feed(adapter(), {"serverContent": {
        "inputTranscription": {"text": "hi"},
        "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": "***not base64***"}}]}}})
    assert events[0] == Transcript("user", "hi", False)
    assert isinstance(events[-1], ProviderFailed) and isinstance(events[-1].error, ProviderProtocolError)


def test_an_error_payload_is_reported_without_the_key():
    [event] = feed(adapter(), {"error": {"code": 400, "message": f"bad key {KEY}"}})
    assert isinstance(event, ProviderFailed) and not event.fatal_for_link
    assert KEY not in str(event.error) and KEY not in repr(event)


def test_unknown_messages_are_ignored():
    assert feed(adapter(), {"usageMetadata": {"totalTokenCount": 3}},
                {"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_SOS"}}) == []


# -- failures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "reason", "kind", "error_type", "breaker_failure"), [
    (1007, "API key not valid. Please pass a valid API key.", ProviderRejected, "auth", True),
    (1007, "API key expired. Please renew the API key.", ProviderRejected, "auth", True),
    (1007, "Request contains an invalid argument.", ProviderRejected, "protocol", True),
    (1008, "models/x is not found for API version v1beta, or is not supported for bidiGenerateContent.",
     ProviderRejected, "protocol", True),
    (1008, "BidiGenerateContent session not found", ProviderUnavailable, "protocol", False),
    (1011, "Internal error occurred.", ProviderUnavailable, "server", True),
    (1011, "RESOURCE_EXHAUSTED: quota exceeded", ProviderUnavailable, "rate_limit", True),
    (1006, "", ProviderUnavailable, "network", True),
    (None, "", ProviderUnavailable, "network", True),
    (1000, "", ProviderUnavailable, "network", False),
    (1001, "going away", ProviderUnavailable, "network", False),
])
def test_close_codes(code, reason, kind, error_type, breaker_failure):
    error = adapter().classify_close(code, reason)
    assert type(error) is kind
    assert (error.error_type, error.breaker_failure, error.provider) == (error_type, breaker_failure, "gemini")
    assert error.stale_handle is (code == 1008 and "session not found" in reason)
    assert error.retryable is (kind is ProviderUnavailable)


def test_not_found_after_a_resume_attempt_is_a_stale_handle_but_a_bad_model_is_not():
    resuming = adapter()
    resuming.open_frames(history=[], resume_handle="old-handle")
    stale = resuming.classify_close(1008, "Requested entity was not found.")
    assert isinstance(stale, ProviderUnavailable) and stale.stale_handle is True
    bad_model = resuming.classify_close(1008, "models/x is not found for API version v1beta")
    assert isinstance(bad_model, ProviderRejected)
    fresh = adapter()
    fresh.open_frames(history=[], resume_handle=None)
    assert isinstance(fresh.classify_close(1008, "Requested entity was not found."), ProviderRejected)


def test_implausible_reply_rate_is_a_protocol_failure():
    [event] = feed(adapter(), audio_part(b"\x00\x00", mime="audio/pcm;rate=0"))
    assert isinstance(event, ProviderFailed) and isinstance(event.error, ProviderProtocolError)


def test_bad_model_close_names_the_problem_for_the_operator():
    error = adapter().classify_close(1008, "models/x is not found for API version v1beta")
    assert "1008" in error.message and "models/x is not found" in error.message


@pytest.mark.parametrize(("status", "kind", "error_type"), [
    (401, ProviderRejected, "auth"), (403, ProviderRejected, "auth"), (429, ProviderUnavailable, "rate_limit"),
    (500, ProviderUnavailable, "server"), (503, ProviderUnavailable, "server"),
    (404, ProviderRejected, "protocol"), (400, ProviderRejected, "protocol"),
])
def test_handshake_statuses(status, kind, error_type):
    error = adapter().classify_handshake(status, f"denied for key {KEY}")
    assert type(error) is kind and error.error_type == error_type
    assert str(status) in error.message and KEY not in error.message and KEY not in str(error.fields)


# -- robustness -------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parse_never_raises_on_arbitrary_frames(frame):
    adapter().parse(frame)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
KEYS = st.sampled_from(["setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway",
                        "sessionResumptionUpdate", "voiceActivity", "error"])
CONTENT_KEYS = st.sampled_from(["modelTurn", "inputTranscription", "outputTranscription", "turnComplete",
                                "interrupted", "generationComplete"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, st.one_of(JSON, st.dictionaries(CONTENT_KEYS, JSON, max_size=4)), max_size=4))
def test_parse_never_raises_on_wrongly_typed_known_fields(message):
    a = adapter()
    events = a.parse(json.dumps(message))
    assert isinstance(events, list)


# -- fidelity: every client frame is a valid message for the official SDK's types ------------------
def test_client_frames_validate_against_the_google_genai_types():
    from google.genai import types
    from pydantic import ValidationError

    a = adapter(instructions="Be brief.", tools=(WEATHER,), language="en-US")
    history = [UserTurn("My order is 1234."), AssistantTurn("Got it.")]
    a.parse(server({"toolCall": {"functionCalls": [{"id": "fc-1", "name": "get_weather", "args": {}}]}}))
    frames = [*a.open_frames(history=history, resume_handle=None), *a.ready_frames(history=history, resumed=False),
              *a.open_frames(history=[], resume_handle="h-1"), a.audio_frame(b"\x00\x01" * 80),
              *a.commit_frames(), *a.text_frames("hi"), *a.tool_result_frames("fc-1", "get_weather", "18C")]
    for frame in frames:
        message = json.loads(frame)
        setup = message.get("setup", {})
        # LiveClientSetup (3.4) lacks realtimeInputConfig although the SDK's converter sends it there
        types.RealtimeInputConfig.model_validate(setup.pop("realtimeInputConfig", {}))
        types.LiveClientMessage.model_validate(message)  # extra="forbid": a misspelled key fails
    with pytest.raises(ValidationError):  # the check has teeth
        types.LiveClientMessage.model_validate({"setup": {"model": "m", "generationConfig": {"voice": "Puck"}}})


# The reply-audio message (`serverContent` with only `modelTurn`) takes a shortcut past the lookups
# of every other field; anything it matches must give exactly what the general path gives. An extra
# unknown top-level field sends the same content down the general path.
def inline(data: bytes, mime: str = "audio/pcm;rate=24000") -> dict:
    return {"inlineData": {"mimeType": mime, "data": b64(data)}}


SHORTCUT_CONTENTS = [
    {"modelTurn": {"parts": [inline(b"\x01\x02" * 240)]}},
    {"modelTurn": {"parts": [inline(b"\x01\x02" * 240), inline(b"\x03\x04" * 8, "audio/pcm;rate=16000")]}},
    {"modelTurn": {"parts": [{"text": "thinking"}, 7, None, inline(b"")]}},
    {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "!!not base64"}}]}},
    {"modelTurn": {"parts": [{"inline_data": {"mime_type": "audio/pcm;rate=999999", "data": b64(b"\x00\x00")}}]}},
    {"modelTurn": {"parts": "not a list"}},
    {"modelTurn": {}},
]


@pytest.mark.parametrize("content", SHORTCUT_CONTENTS)
def test_the_reply_audio_shortcut_gives_what_the_general_path_gives(content: dict) -> None:
    def run(message: dict) -> list[str]:
        a = adapter()
        return [repr(ev) for frame in (message, message) for ev in a.parse(server(frame))]

    shortcut = run({"serverContent": content})
    assert shortcut == run({"serverContent": content, "unknownField": 1})
