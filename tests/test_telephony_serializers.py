"""Telephony serializers: vendor wire messages in, typed events out; our audio out in exact frames."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audio.formats import ALAW_8K, MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from gateway.errors import BadAudio, BadMessage
from gateway.telephony import (
    CallStarted,
    CallStopped,
    Cleared,
    Connected,
    DtmfReceived,
    MarkPlayed,
    MediaReceived,
    PlayoutTracker,
    TelephonyError,
    TelnyxMediaStream,
    TwilioMediaStream,
    VonageMediaStream,
    serializer_for,
)

SID = "MZ0123456789abcdef0123456789abcdef"


def twilio_start(params: dict | None = None, **start_overrides) -> str:
    start = {"streamSid": SID, "accountSid": "AC0", "callSid": "CA1", "tracks": ["inbound"],
             "customParameters": params or {},
             "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
    start.update(start_overrides)
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": SID, "start": start})


def twilio_media(payload: bytes, *, track: str = "inbound", sid: str = SID) -> str:
    return json.dumps({"event": "media", "sequenceNumber": "2", "streamSid": sid,
                       "media": {"track": track, "chunk": "1", "timestamp": "20",
                                 "payload": base64.b64encode(payload).decode()}})


def started_twilio(params: dict | None = None) -> TwilioMediaStream:
    s = TwilioMediaStream()
    s.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}')
    s.parse(twilio_start(params))
    return s


def payload_of(message: str) -> bytes:
    return base64.b64decode(json.loads(message)["media"]["payload"])


# == Twilio ========================================================================================
def test_twilio_call_lifecycle() -> None:
    s = TwilioMediaStream()
    assert s.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == [Connected()]
    params = {"provider": "openai", "fallback": "openai,deepgram", "instructions": "be brief", "tenant": "acme"}
    assert s.parse(twilio_start(params)) == [CallStarted(SID, "CA1", params, MULAW_8K, MULAW_8K)]
    assert s.parse(twilio_media(b"\x01\x02" * 80)) == [MediaReceived(b"\x01\x02" * 80, MULAW_8K)]
    assert s.parse(json.dumps({"event": "dtmf", "streamSid": SID,
                               "dtmf": {"track": "inbound_track", "digit": "#"}})) == [DtmfReceived("#")]
    assert s.parse(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "vg-1"}})) == [MarkPlayed("vg-1")]
    stop = {"event": "stop", "sequenceNumber": "9", "streamSid": SID, "stop": {"accountSid": "AC0", "callSid": "CA1"}}
    assert s.parse(json.dumps(stop)) == [CallStopped()]
    with pytest.raises(BadMessage):
        s.parse(twilio_media(b"\xff" * 160))


def test_twilio_ignores_what_is_not_caller_audio() -> None:
    s = started_twilio()
    assert s.parse(twilio_media(b"\x00" * 160, track="outbound")) == []
    assert s.parse(twilio_media(b"")) == []
    assert s.parse(json.dumps({"event": "some-future-event", "streamSid": SID})) == []


@pytest.mark.parametrize(("frame", "error"), [
    (twilio_media(b"\xff" * 160), BadMessage),  # media before start
    ('{"event":"mark","mark":{"name":"x"}}', BadMessage),
    ("not json", BadMessage),
    ("[1,2]", BadMessage),
    ('{"event":5}', BadMessage),
    (b'{"event":"connected"}', BadMessage),  # Twilio never sends binary frames
    (json.dumps({"event": "start", "start": {"streamSid": ""}}), BadMessage),
    (json.dumps({"event": "start", "start": "x"}), BadMessage),
    (twilio_start(mediaFormat={"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}), BadAudio),
    (twilio_start(customParameters={"nested": {"a": 1}}), BadMessage),
])
def test_twilio_refuses_bad_input_with_typed_errors(frame, error) -> None:
    with pytest.raises(error):
        TwilioMediaStream().parse(frame)


@pytest.mark.parametrize(("frame", "error"), [
    (twilio_start(), BadMessage),  # a second start
    ('{"event":"connected"}', BadMessage),
    (twilio_media(b"\xff", sid="MZother"), BadMessage),
    (json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "!!!notb64"}}), BadAudio),
    (json.dumps({"event": "media", "streamSid": SID, "media": {"payload": 5}}), BadAudio),
    (json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "//8=", "track": 1}}), BadMessage),
    (json.dumps({"event": "media", "streamSid": SID}), BadMessage),
    (json.dumps({"event": "dtmf", "streamSid": SID, "dtmf": {"digit": "x"}}), BadMessage),
    (json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": None}}), BadMessage),
])
def test_twilio_refuses_bad_input_mid_call_and_keeps_going(frame, error) -> None:
    s = started_twilio()
    with pytest.raises(error):
        s.parse(frame)
    assert s.parse(twilio_media(b"\x7f" * 160)) == [MediaReceived(b"\x7f" * 160, MULAW_8K)]


def test_twilio_outbound_media_is_exactly_160_bytes_with_the_stream_sid() -> None:
    s = started_twilio()
    audio = bytes(range(256)) * 2  # 512 bytes: 3 frames + 32 carried
    messages = s.media_frames(audio)
    assert len(messages) == 3
    for m in messages:
        body = json.loads(m)
        assert body["event"] == "media" and body["streamSid"] == SID
        assert len(payload_of(m)) == 160
    more = s.media_frames(b"\x10" * 200)  # 32 carried + 200 → 1 frame + 72 carried
    assert [len(payload_of(m)) for m in more] == [160]
    tail = s.flush_media()
    assert len(tail) == 1
    assert payload_of(tail[0]) == b"\x10" * 72 + b"\xff" * 88  # μ-law silence pads the last frame
    assert b"".join(payload_of(m) for m in messages + more) + payload_of(tail[0])[:72] == audio + b"\x10" * 200
    assert s.flush_media() == []


def test_twilio_mark_and_clear_messages() -> None:
    s = started_twilio()
    assert json.loads(s.mark("vg-3")) == {"event": "mark", "streamSid": SID, "mark": {"name": "vg-3"}}
    s.media_frames(b"\x01" * 100)  # a tail under one frame
    assert json.loads(s.clear()) == {"event": "clear", "streamSid": SID}
    assert s.flush_media() == []  # the clear dropped the unsent tail


@given(st.lists(st.binary(max_size=700), max_size=12))
def test_chunked_outbound_audio_equals_whole(pieces: list[bytes]) -> None:
    whole, chunked = started_twilio(), started_twilio()
    one = [payload_of(m) for m in whole.media_frames(b"".join(pieces)) + whole.flush_media()]
    many = [payload_of(m) for p in pieces for m in chunked.media_frames(p)]
    many += [payload_of(m) for m in chunked.flush_media()]
    assert one == many
    assert all(len(p) == 160 for p in many)


# == Telnyx ========================================================================================
TELNYX_ID = "32de0dea-53cb-4b21-89a4-9e0819c043bc"


def telnyx_start(encoding: str = "PCMU", rate: int = 8000, **start_extra) -> str:
    start = {"call_control_id": "v3:abc123", "call_session_id": "cs-1", "from": "+15551230001",
             "to": "+15551230002", "media_format": {"encoding": encoding, "sample_rate": rate, "channels": 1}}
    start.update(start_extra)
    return json.dumps({"event": "start", "sequence_number": "1", "stream_id": TELNYX_ID, "start": start})


def telnyx_media(payload: bytes) -> str:
    return json.dumps({"event": "media", "sequence_number": "3", "stream_id": TELNYX_ID,
                       "media": {"track": "inbound", "chunk": "2", "timestamp": "40",
                                 "payload": base64.b64encode(payload).decode()}})


def test_telnyx_call_lifecycle_pcmu() -> None:
    s = TelnyxMediaStream()
    assert s.parse('{"event":"connected","version":"1.0.0"}') == [Connected()]
    [started] = s.parse(telnyx_start(custom_parameters={"provider": "deepgram"}))
    assert started == CallStarted(TELNYX_ID, "v3:abc123", {"provider": "deepgram"}, MULAW_8K, MULAW_8K)
    assert s.parse(telnyx_media(b"\x55" * 160)) == [MediaReceived(b"\x55" * 160, MULAW_8K)]
    assert s.parse(json.dumps({"event": "dtmf", "stream_id": TELNYX_ID, "dtmf": {"digit": "7"}})) == [DtmfReceived("7")]
    assert s.parse(json.dumps({"event": "mark", "stream_id": TELNYX_ID, "mark": {"name": "m"}})) == [MarkPlayed("m")]
    assert s.parse(json.dumps({"event": "stop", "stream_id": TELNYX_ID, "stop": {}})) == [CallStopped()]


def test_telnyx_outbound_has_no_stream_id() -> None:
    s = TelnyxMediaStream()
    s.parse(telnyx_start())
    [m] = s.media_frames(b"\x01" * 160)
    assert json.loads(m) == {"event": "media", "media": {"payload": base64.b64encode(b"\x01" * 160).decode()}}
    assert json.loads(s.mark("n")) == {"event": "mark", "mark": {"name": "n"}}
    assert json.loads(s.clear()) == {"event": "clear"}


def test_telnyx_pcma_pads_with_alaw_silence() -> None:
    s = TelnyxMediaStream()
    [started] = s.parse(telnyx_start("PCMA"))
    assert started.input_format == ALAW_8K
    s.media_frames(b"\x01")
    [m] = s.flush_media()
    assert payload_of(m) == b"\x01" + b"\xd5" * 159


def test_telnyx_l16_is_big_endian_on_the_wire() -> None:
    s = TelnyxMediaStream()
    [started] = s.parse(telnyx_start("L16", 16000))
    assert started.input_format == PCM16_16K
    assert s.parse(telnyx_media(b"\x12\x34\x56\x78")) == [MediaReceived(b"\x34\x12\x78\x56", PCM16_16K)]
    frames = s.media_frames(b"\x01\x00" * 320)  # little-endian 1s, 20 ms at 16 kHz
    assert [payload_of(m) for m in frames] == [b"\x00\x01" * 320]
    with pytest.raises(BadAudio):
        s.parse(telnyx_media(b"\x00\x01\x02"))


def test_telnyx_output_format_can_be_set_by_the_endpoint() -> None:
    s = TelnyxMediaStream(output_format=PCM16_8K)
    [started] = s.parse(telnyx_start())
    assert (started.input_format, started.output_format) == (MULAW_8K, PCM16_8K)
    assert [len(payload_of(m)) for m in s.media_frames(b"\x00" * 640)] == [320, 320]


def test_telnyx_error_event_and_parameter_list() -> None:
    s = TelnyxMediaStream()
    [started] = s.parse(telnyx_start(custom_parameters=[{"name": "voice", "value": "alloy"}]))
    assert started.params == {"voice": "alloy"}
    err = s.parse(json.dumps({"event": "error", "stream_id": TELNYX_ID,
                              "payload": {"code": 100002, "title": "Malformed frame", "detail": "bad payload"}}))
    assert err == [TelephonyError("100002 Malformed frame bad payload")]
    assert s.parse('{"event":"error"}') == [TelephonyError("Telnyx reported an error on the media stream")]


@pytest.mark.parametrize("frame", [
    telnyx_start("OPUS", 16000), telnyx_start("PCMU", 16000), telnyx_start("L16", 11025),
    json.dumps({"event": "start", "stream_id": TELNYX_ID, "start": {"media_format": {"encoding": "PCMU",
                                                                                       "channels": 2}}}),
])
def test_telnyx_unsupported_formats_are_bad_audio(frame: str) -> None:
    with pytest.raises(BadAudio):
        TelnyxMediaStream().parse(frame)


# == Vonage ========================================================================================
def vonage_connected(rate: int = 16000, **headers) -> str:
    return json.dumps({"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}", **headers})


def test_vonage_call_lifecycle() -> None:
    s = VonageMediaStream()
    events = s.parse(vonage_connected(caller="+15551230001", uuid="call-9", provider="gemini", n=3, nested={"x": 1}))
    assert events == [Connected(), CallStarted("call-9", "call-9",
                                               {"caller": "+15551230001", "uuid": "call-9", "provider": "gemini",
                                                "n": "3"}, PCM16_16K, PCM16_16K)]
    assert s.parse(b"\x01\x00" * 320) == [MediaReceived(b"\x01\x00" * 320, PCM16_16K)]
    assert s.parse(b"") == []
    assert s.parse('{"event":"websocket:dtmf","digit":"5","duration":250}') == [DtmfReceived("5")]
    assert s.parse('{"event":"websocket:dtmf","dtmf":{"digits":"12","duration":100}}') == [DtmfReceived("1"),
                                                                                           DtmfReceived("2")]
    assert s.parse('{"event":"websocket:notify","payload":{"name":"vg-1"}}') == [MarkPlayed("vg-1")]
    assert s.parse('{"event":"websocket:cleared"}') == [Cleared()]
    assert s.parse('{"event":"websocket:something-new"}') == []


@pytest.mark.parametrize(("rate", "frame_bytes"), [(8000, 320), (16000, 640), (24000, 960)])
def test_vonage_outbound_frames_are_exactly_20ms(rate: int, frame_bytes: int) -> None:
    s = VonageMediaStream()
    s.parse(vonage_connected(rate))
    frames = s.media_frames(b"\x02" * (frame_bytes * 2 + 10))
    assert frames == [b"\x02" * frame_bytes] * 2
    assert s.flush_media() == [b"\x02" * 10 + b"\x00" * (frame_bytes - 10)]
    assert json.loads(s.mark("vg-7")) == {"action": "notify", "payload": {"name": "vg-7"}}
    assert json.loads(s.clear()) == {"action": "clear"}


@pytest.mark.parametrize(("frames", "error"), [
    ([b"\x00\x00"], BadMessage),  # audio before websocket:connected
    (['{"event":"websocket:notify","payload":{"name":"x"}}'], BadMessage),
    ([vonage_connected(44100)], BadAudio),
    (['{"event":"websocket:connected","content-type":"audio/opus"}'], BadAudio),
    (['{"event":"websocket:connected"}'], BadMessage),
    ([vonage_connected(), vonage_connected()], BadMessage),
    ([vonage_connected(), b"\x00\x01\x02"], BadAudio),
    ([vonage_connected(), '{"event":"websocket:dtmf"}'], BadMessage),
    ([vonage_connected(), '{"event":"websocket:dtmf","digit":"Z"}'], BadMessage),
    ([vonage_connected(), '{"event":"websocket:notify","payload":"x"}'], BadMessage),
    ([vonage_connected(), "{"], BadMessage),
])
def test_vonage_refuses_bad_input(frames, error) -> None:
    s = VonageMediaStream()
    for f in frames[:-1]:
        s.parse(f)
    with pytest.raises(error):
        s.parse(frames[-1])


def test_serializer_for_gives_a_fresh_instance() -> None:
    a, b = serializer_for("twilio"), serializer_for("twilio")
    assert isinstance(a, TwilioMediaStream) and a is not b
    assert isinstance(serializer_for("vonage"), VonageMediaStream)


# == playout tracking ==============================================================================
def test_heard_ms_follows_returned_marks() -> None:
    tracker = PlayoutTracker(MULAW_8K)
    names = []
    for _ in range(10):  # 1 s of reply in 100 ms batches, a mark after each
        tracker.sent("item-1", 800)
        names.append(tracker.new_mark())
    assert tracker.heard_ms("item-1") == 0 and tracker.sent_ms("item-1") == 1000
    assert tracker.played(names[0]) and tracker.played(names[2])  # a later mark implies the earlier ones
    assert tracker.heard_ms("item-1") == 300
    assert tracker.pending_marks == 7


def test_marks_returned_by_a_clear_count_for_nothing() -> None:
    tracker = PlayoutTracker(PCM16_24K)
    names = []
    for _ in range(5):
        tracker.sent("a", 4800)  # 100 ms at 24 kHz
        names.append(tracker.new_mark())
    tracker.played(names[1])
    tracker.cleared()  # barge-in: the vendor now sends back names[2:] at once
    assert [tracker.played(n) for n in names[2:]] == [False, False, False]
    assert tracker.heard_ms("a") == 200
    tracker.sent("b", 2400)
    nb = tracker.new_mark()
    assert tracker.played(nb) and tracker.heard_ms("b") == 50 and tracker.heard_ms("a") == 200


def test_unknown_marks_and_forgotten_items() -> None:
    tracker = PlayoutTracker(AudioFormat(encoding="pcm16", sample_rate_hz=16000))
    assert not tracker.played("someone-elses-mark")
    tracker.sent("x", 3200)
    name = tracker.new_mark()
    tracker.forget("x")
    assert tracker.played(name)
    assert tracker.heard_ms("unknown") == 0
