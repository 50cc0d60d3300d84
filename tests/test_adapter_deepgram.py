"""DeepgramAdapter: query string and frames per docs/providers/deepgram.md, Results in, transcript/ack events out;
plus the adapter registry."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audio.formats import AudioFormat
from gateway.errors import ConfigError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ProviderFailed,
    Transcript,
    TurnCompleted,
    UserSpeechStarted,
    UserTurn,
)
from gateway.session_config import SessionConfig
from providers.base import Endpoint
from providers.deepgram import DeepgramAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter
from providers.registry import ADAPTERS, adapter_for

KEY = "dg0123456789abcdefTESTKEY"
ENDPOINT = Endpoint(base_url="ws://127.0.0.1:9100", api_key=KEY)
MULAW = AudioFormat(encoding="mulaw", sample_rate_hz=8000)
META = {"request_id": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
        "model_info": {"name": "general-nova-3", "version": "2025-04-17.0", "arch": "nova-3"},
        "model_uuid": "11111111-2222-3333-4444-555555555555"}


def adapter(**config: object) -> DeepgramAdapter:
    return DeepgramAdapter(SessionConfig(**config), ENDPOINT)


def results(text: str, start: float, duration: float, *, final: bool, speech_final: bool = False,
            from_finalize: bool = False) -> dict:
    return {"type": "Results", "channel_index": [0, 1], "start": start, "duration": duration, "is_final": final,
            "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.9, "words": []}]}, "metadata": META}


def feed(a: DeepgramAdapter, *messages: dict | str | bytes) -> list:
    events: list = []
    for m in messages:
        events += a.parse(json.dumps(m) if isinstance(m, dict) else m)
    return events


# -- opening ------------------------------------------------------------------------------------
def query(a: DeepgramAdapter) -> tuple[str, dict[str, str]]:
    url = urlsplit(a.connect_request().url)
    return f"{url.scheme}://{url.netloc}{url.path}", dict(parse_qsl(url.query))


def test_connect_request_declares_the_client_format_and_conversation_settings():
    base, params = query(adapter(input_format=MULAW))
    assert base == "ws://127.0.0.1:9100/v1/listen"
    assert params == {"model": "nova-3", "encoding": "mulaw", "sample_rate": "8000", "channels": "1",
                      "interim_results": "true", "endpointing": "300", "utterance_end_ms": "1000",
                      "vad_events": "true", "punctuate": "true"}
    req = adapter().connect_request()
    assert req.headers == (("Authorization", f"Token {KEY}"),)
    assert KEY not in req.url and KEY not in repr(req)


@pytest.mark.parametrize(("fmt", "encoding", "rate"), [
    (AudioFormat(encoding="pcm16", sample_rate_hz=16000), "linear16", "16000"),
    (AudioFormat(encoding="pcm16", sample_rate_hz=48000), "linear16", "48000"),
    (AudioFormat(encoding="alaw", sample_rate_hz=8000), "alaw", "8000"),
])
def test_audio_is_sent_in_the_clients_own_format(fmt, encoding, rate):
    a = adapter(input_format=fmt)
    assert a.input_format == fmt  # no transcoding
    _, params = query(a)
    assert (params["encoding"], params["sample_rate"]) == (encoding, rate)
    chunk = bytes(range(160))
    assert a.audio_frame(chunk) == chunk and isinstance(a.audio_frame(chunk), bytes)


def test_language_and_model_choices():
    _, params = query(DeepgramAdapter(SessionConfig(language="en-US",
                                                    provider_options={"deepgram": {"model": "nova-2-phonecall"}}),
                                      ENDPOINT))
    assert (params["model"], params["language"]) == ("nova-2-phonecall", "en-US")
    _, from_endpoint = query(DeepgramAdapter(SessionConfig(), Endpoint(base_url="https://dg.test", api_key="k",
                                                                       model="nova-2")))
    assert from_endpoint["model"] == "nova-2"


def test_transcripts_only_link_is_up_at_the_upgrade():
    a = adapter()
    assert DeepgramAdapter.ready_on_upgrade and DeepgramAdapter.keepalive_idle_s == 5.0
    assert a.output_format is None
    assert DeepgramAdapter.capabilities.to_wire() == {"audio_output": False, "transcripts": True,
                                                       "assistant_transcripts": False, "tools": False}
    assert a.open_frames(history=[UserTurn("hello")], resume_handle=None) == []
    assert a.ready_frames(history=[UserTurn("hello")], resumed=False) == []


def test_control_messages_are_text_frames():
    a = adapter()
    assert json.loads(a.keepalive_frame()) == {"type": "KeepAlive"}
    assert [json.loads(f) for f in a.commit_frames()] == [{"type": "Finalize"}]
    assert [json.loads(f) for f in a.close_frames()] == [{"type": "CloseStream"}]
    assert all(isinstance(f, str) for f in [a.keepalive_frame(), *a.commit_frames(), *a.close_frames()])


# -- receiving ------------------------------------------------------------------------------------
def test_typical_sequence():
    events = feed(
        adapter(),
        {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 3.18},
        results("what's the", 3.2, 1.1, final=False),
        results("what's the weather", 3.2, 1.5, final=False),
        results("What's the weather?", 3.2, 1.9, final=True, speech_final=True),
        {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 5.1},
        {"type": "Metadata", "transaction_key": "deprecated", "request_id": META["request_id"],
         "sha256": "incomplete", "created": "2026-01-01T12:00:00.000Z", "duration": 12.48, "channels": 1},
    )
    assert events == [
        UserSpeechStarted(at_s=3.18),
        Transcript("user", "what's the", False, 3.2, 3.2 + 1.1),
        Transcript("user", "what's the weather", False, 3.2, 3.2 + 1.5),
        Transcript("user", "What's the weather?", True, 3.2, 3.2 + 1.9),
        AudioAcknowledged(until_s=3.2 + 1.9),
        TurnCompleted("user"),  # once: the UtteranceEnd after speech_final adds nothing
    ]


def test_a_phrase_in_several_finals_ends_once():
    events = feed(adapter(),
                  results("I'd like to book", 0.0, 2.0, final=True),
                  results("a table for two", 2.0, 1.5, final=True, speech_final=True))
    assert events == [Transcript("user", "I'd like to book", True, 0.0, 2.0), AudioAcknowledged(2.0),
                      Transcript("user", "a table for two", True, 2.0, 3.5), AudioAcknowledged(3.5),
                      TurnCompleted("user")]


def test_silence_is_acknowledged_but_is_no_transcript_and_no_turn():
    events = feed(adapter(),
                  results("", 0.0, 1.0, final=False),
                  results("", 0.0, 4.0, final=True, speech_final=True),
                  results("", 4.0, 0.5, final=True, from_finalize=True))
    assert events == [AudioAcknowledged(4.0), AudioAcknowledged(4.5)]


def test_utterance_end_closes_a_turn_endpointing_missed():
    events = feed(adapter(), results("hello there", 1.0, 1.2, final=True),
                  {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.1})
    assert events[-1] == TurnCompleted("user") and events.count(TurnCompleted("user")) == 1


def test_error_message_is_reported_without_echoing_client_text():
    [event] = feed(adapter(), {"type": "Error", "variant": "SchemaError", "description": "Unknown message type",
                               "message": '{"type":"Secret stuff the client sent"}'})
    assert isinstance(event, ProviderFailed) and not event.fatal_for_link
    assert isinstance(event.error, ProviderProtocolError) and event.error.breaker_failure is False
    assert "SchemaError" in event.error.message and "Secret stuff" not in event.error.message


def test_unknown_and_informational_messages_are_ignored():
    assert feed(adapter(), {"type": "ConfigureSuccess", "request_id": "r"}, {"type": "FutureThing"}) == []


@pytest.mark.parametrize("frame", ["nope", "[]", '{"no": "type"}', b"\x00\x01binary"])
def test_unparseable_frames_become_non_fatal_protocol_failures(frame):
    [event] = adapter().parse(frame)
    assert isinstance(event, ProviderFailed) and not event.fatal_for_link
    assert isinstance(event.error, ProviderProtocolError)


def test_results_without_timing_are_a_protocol_failure():
    [event] = feed(adapter(), {"type": "Results", "is_final": True, "channel": {"alternatives": [{"transcript": "x"}]}})
    assert isinstance(event, ProviderFailed) and isinstance(event.error, ProviderProtocolError)


# -- failures ---------------------------------------------------------------------------------------
def test_normal_close_is_only_normal_after_close_stream():
    unexpected = adapter().classify_close(1000, "")
    assert isinstance(unexpected, ProviderUnavailable) and unexpected.breaker_failure is False
    a = adapter()
    a.close_frames()
    assert a.classify_close(1000, "") is None


@pytest.mark.parametrize(("code", "reason", "kind", "error_type", "breaker_failure"), [
    (1011, "Deepgram did not receive audio data or a text message within the timeout window. "
           "See https://dpgr.am/net0001 NET-0001", ProviderUnavailable, "timeout", False),
    # the verbatim real reason (docs/providers/deepgram.md §4) carries only the link, not the tag
    (1011, "Deepgram did not receive audio data or a text message within the timeout window. "
           "See https://dpgr.am/net0001", ProviderUnavailable, "timeout", False),
    (1011, "NET-0000: the service did not produce a text frame", ProviderUnavailable, "server", True),
    (1008, "DATA-0000: the payload could not be decoded as audio", ProviderRejected, "protocol", True),
    (1006, "", ProviderUnavailable, "network", True),
    (None, "", ProviderUnavailable, "network", True),
])
def test_close_codes(code, reason, kind, error_type, breaker_failure):
    error = adapter().classify_close(code, reason)
    assert type(error) is kind and error.provider == "deepgram"
    assert (error.error_type, error.breaker_failure) == (error_type, breaker_failure)


@pytest.mark.parametrize(("status", "kind", "error_type"), [
    (400, ProviderRejected, "protocol"), (401, ProviderRejected, "auth"), (403, ProviderRejected, "auth"),
    (429, ProviderUnavailable, "rate_limit"), (503, ProviderUnavailable, "server"),
])
def test_handshake_statuses(status, kind, error_type):
    error = adapter().classify_handshake(status, f"dg-error: invalid credentials {KEY}")
    assert type(error) is kind and error.error_type == error_type
    assert KEY not in error.message and str(status) in error.message


# -- registry -------------------------------------------------------------------------------------
def test_registry_names_each_adapter_and_its_breaker():
    assert adapter_for("gemini") is GeminiAdapter and adapter_for("openai") is OpenAIAdapter
    assert adapter_for("deepgram") is DeepgramAdapter
    assert {name: cls.breaker_name for name, cls in ADAPTERS.items()} == {
        "gemini": "gemini_provider", "openai": "openai_provider", "deepgram": "deepgram_stt",
        "deepgram_agent": "deepgram_agent", "openai_live": "openai_live_provider"}
    for cls in (GeminiAdapter, OpenAIAdapter):
        assert cls.capabilities.to_wire() == {"audio_output": True, "transcripts": True,
                                              "assistant_transcripts": True, "tools": True}
        assert not cls.ready_on_upgrade and cls.keepalive_idle_s is None
    with pytest.raises(ConfigError):
        adapter_for("litellm")


# -- robustness -------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parse_never_raises_on_arbitrary_frames(frame):
    adapter().parse(frame)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
FIELDS = st.sampled_from(["start", "duration", "is_final", "speech_final", "channel", "timestamp", "variant",
                          "description", "code"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Results", "SpeechStarted", "UtteranceEnd", "Error", "Metadata"]),
       st.dictionaries(FIELDS, JSON, max_size=5))
def test_parse_never_raises_on_wrongly_typed_known_messages(kind, body):
    assert isinstance(adapter().parse(json.dumps({**body, "type": kind})), list)
