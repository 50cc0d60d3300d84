"""The per-frame short paths give exactly what the general parsers give (issue 19 added them for
speed): Twilio/Telnyx inbound media (`media_audio` vs `parse`), Gemini reply audio and OpenAI
audio deltas (`parse` vs the general message handlers). Hypothesis varies the messages around the
common shape: other alphabets and padding, tracks, stream ids, rates, extra fields, broken bits."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadAudio, BadMessage
from gateway.events import ProviderEvent
from gateway.session_config import SessionConfig
from gateway.telephony import MediaReceived, MediaStreamSerializer, TelnyxMediaStream, TwilioMediaStream
from providers.base import Endpoint
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter

SID, TELNYX_ID = "MZ0123456789abcdef0123456789abcdef", "stream-abc"


def _twilio() -> TwilioMediaStream:
    s = TwilioMediaStream()
    s.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}')
    s.parse(json.dumps({"event": "start", "streamSid": SID, "start": {
        "streamSid": SID, "accountSid": "AC0", "callSid": "CA1", "tracks": ["inbound"], "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    return s


def _telnyx(encoding: str) -> TelnyxMediaStream:
    s = TelnyxMediaStream()
    s.parse(json.dumps({"event": "start", "sequence_number": "1", "stream_id": TELNYX_ID, "start": {
        "call_control_id": "v3:abc", "media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1}}}))
    return s


def _b64_variants(data: bytes) -> st.SearchStrategy[object]:
    std = base64.b64encode(data).decode()
    return st.sampled_from([std, std.rstrip("="), base64.urlsafe_b64encode(data).decode(), std + "!", "", None, 7])


@st.composite
def _media_frames(draw: st.DrawFn, id_key: str, stream_id: str) -> str:
    data = draw(st.binary(min_size=0, max_size=200))
    media: dict[str, Any] = {"payload": draw(_b64_variants(data))}
    if media["payload"] is None:
        del media["payload"]
    # not a string, and unhashable: a set lookup of a list raises TypeError (found by benchmarks/fuzz_long.py)
    track = draw(st.sampled_from([None, "inbound", "inbound_track", "outbound", "both", 3, ["inbound"], {"t": 1}]))
    if track is not None:
        media["track"] = track
    message: dict[str, Any] = {"event": draw(st.sampled_from(["media", "media", "media", "mark", 5])),
                               "media": draw(st.sampled_from([media, media, "not an object"]))}
    sid = draw(st.sampled_from([stream_id, stream_id, "other", None]))
    if sid is not None:
        message[id_key] = sid
    if draw(st.booleans()):
        message["sequenceNumber"] = "4"
    text = json.dumps(message)
    return draw(st.sampled_from([text, text, text[:-1], "[1, 2]"]))


def _general(s: MediaStreamSerializer, frame: str) -> object:
    try:
        return s.parse(frame)
    except (BadAudio, BadMessage) as e:
        return (type(e), e.message)


def _fast(s: MediaStreamSerializer, frame: str) -> object:
    try:
        audio = s.media_audio(frame)
    except (BadAudio, BadMessage) as e:
        return (type(e), e.message)
    if audio is None:
        return None
    assert s.input_format is not None
    return [MediaReceived(audio, s.input_format)] if audio else []


@settings(max_examples=300, deadline=None)
@given(frame=_media_frames("streamSid", SID))
def test_twilio_media_audio_is_what_parse_gives(frame: str) -> None:
    fast = _fast(_twilio(), frame)
    assert fast is None or fast == _general(_twilio(), frame)


@settings(max_examples=300, deadline=None)
@given(frame=_media_frames("stream_id", TELNYX_ID), encoding=st.sampled_from(["PCMU", "PCMA", "L16"]))
def test_telnyx_media_audio_is_what_parse_gives(frame: str, encoding: str) -> None:
    fast = _fast(_telnyx(encoding), frame)
    assert fast is None or fast == _general(_telnyx(encoding), frame)


def test_the_common_media_message_takes_the_short_path() -> None:
    frame = json.dumps({"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(b"\x7f" * 160).decode()}})
    assert _twilio().media_audio(frame) == b"\x7f" * 160


# == providers =====================================================================================
ENDPOINT = Endpoint(base_url="ws://127.0.0.1:1", api_key="k")


def _events(events: list[ProviderEvent]) -> list[tuple[str, dict[str, Any]]]:
    return [(type(e).__name__, {k: getattr(e, k) for k in getattr(e, "__slots__", ())}) for e in events]


@st.composite
def _gemini_messages(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(min_size=0, max_size=64))
    blob: dict[str, Any] = {"mimeType": draw(st.sampled_from(["audio/pcm;rate=24000", "audio/pcm;rate=16000",
                                                             "audio/pcm", "text/plain", "audio/pcm;rate=1"])),
                            "data": draw(_b64_variants(data))}
    part: dict[str, Any] = draw(st.sampled_from([{"inlineData": blob}, {"inline_data": blob}, {"text": "hm"}]))
    parts = draw(st.sampled_from([[part], [part, part], [], "x"]))
    content: dict[str, Any] = {"modelTurn": {"parts": parts}}
    if draw(st.booleans()):
        content[draw(st.sampled_from(["turnComplete", "interrupted", "generationComplete"]))] = True
    return orjson.dumps({"serverContent": content})


@settings(max_examples=300, deadline=None)
@given(message=_gemini_messages(), in_turn=st.booleans(), user_text=st.sampled_from(["", "one two"]))
def test_gemini_reply_audio_short_path_is_the_general_parse(message: bytes, in_turn: bool, user_text: str) -> None:
    fast, general = GeminiAdapter(SessionConfig(), ENDPOINT), GeminiAdapter(SessionConfig(), ENDPOINT)
    for a in (fast, general):  # the same state before the message: a model turn under way or not
        a.parse(orjson.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
            "mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}]}}}))  # teaches the MIME cache too
        if not in_turn:
            a.parse(orjson.dumps({"serverContent": {"turnComplete": True}}))
        a._user_text = user_text  # noqa: SLF001 - the adapter's own state, set as a transcription would
    expected: list[ProviderEvent] = []
    try:
        general._parse_message(orjson.loads(message), expected)  # noqa: SLF001 - the general path itself
    except Exception:
        return  # parse() reports those as protocol failures, and the short path declined them
    assert _events(fast.parse(message)) == _events(expected)
    assert (fast._turn_started, fast._user_text) == (general._turn_started, general._user_text)  # noqa: SLF001


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=64), response=st.sampled_from(["resp_1", "resp_cut", None, 3]),
       item=st.sampled_from(["item_1", None, 4]))
def test_openai_audio_delta_short_path_is_the_handler(data: bytes, response: object, item: object) -> None:
    fast, general = OpenAIAdapter(SessionConfig(), ENDPOINT), OpenAIAdapter(SessionConfig(), ENDPOINT)
    for a in (fast, general):
        a._interrupted.add("resp_cut")  # noqa: SLF001 - a response the caller already cut off
    for delta in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode().rstrip("=")):
        message: dict[str, Any] = {"type": "response.output_audio.delta", "delta": delta, "output_index": 0}
        if response is not None:
            message["response_id"] = response
        if item is not None:
            message["item_id"] = item
        expected: list[ProviderEvent] = []
        general._handlers["response.output_audio.delta"](message, expected)  # noqa: SLF001
        assert _events(fast.parse(orjson.dumps(message))) == _events(expected)
