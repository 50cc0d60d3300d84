"""Telephony serializers: vendor wire messages in, typed events out; our audio out in exact frames."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import serve

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
from tests.telephony_clients import FakeTelnyxCaller, FakeTwilioCaller, FakeVonageCaller

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


@given(st.text(max_size=40), st.text(min_size=1, max_size=40))
def test_twilio_mark_template_writes_what_the_envelope_writes(name: str, sid: str) -> None:
    s = started_twilio()
    s.stream_id = sid  # any id (quotes, backslashes, non-ASCII, controls) and any name: JSON-escaped alike
    assert s.mark(name) == s._envelope({"event": "mark", "mark": {"name": name}})
    assert json.loads(s.mark(name)) == {"event": "mark", "streamSid": sid, "mark": {"name": name}}


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


# == over real sockets: the fake callers against a tiny bridge made of the serializers ============
class ScriptedBridge:
    """A stand-in gateway endpoint on 127.0.0.1: parses with the vendor serializer, records events,
    and lets the test push reply audio, marks and clears at chosen moments."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.events: list = []
        self.changed = asyncio.Event()
        self.serializer = None
        self.ws = None
        self.tracker: PlayoutTracker | None = None
        self.echo_audio = False

    async def handler(self, ws) -> None:
        self.ws = ws
        self.serializer = serializer_for(self.vendor)
        async for frame in ws:
            try:
                events = self.serializer.parse(frame)
            except (BadMessage, BadAudio) as exc:
                events = [exc]
            for ev in events:
                if isinstance(ev, CallStarted):
                    self.tracker = PlayoutTracker(ev.output_format)
                if isinstance(ev, MarkPlayed):
                    ev = (ev, self.tracker.played(ev.name))
                if isinstance(ev, MediaReceived) and self.echo_audio:
                    for out in self.serializer.media_frames(ev.data):
                        await ws.send(out)
                self.events.append(ev)
            self.changed.set()

    async def reply(self, item_id: str, audio: bytes, *, mark_every_bytes: int) -> list[str]:
        names = []
        for i in range(0, len(audio), mark_every_bytes):
            piece = audio[i:i + mark_every_bytes]
            for out in self.serializer.media_frames(piece):
                await self.ws.send(out)
            self.tracker.sent(item_id, len(piece))
            names.append(self.tracker.new_mark())
            await self.ws.send(self.serializer.mark(names[-1]))
        return names

    async def clear(self) -> None:
        self.tracker.cleared()
        await self.ws.send(self.serializer.clear())

    async def wait_for(self, predicate, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                if predicate(self.events):
                    return
                await self.changed.wait()

    def marks(self) -> list[tuple[str, bool]]:
        return [(m.name, ok) for item in self.events if isinstance(item, tuple) for m, ok in [item]]


@contextlib.asynccontextmanager
async def bridge(vendor: str):
    b = ScriptedBridge(vendor)
    async with serve(b.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield b, f"ws://127.0.0.1:{port}/v1/{vendor}"


CALLERS = {"twilio": lambda url, **kw: FakeTwilioCaller(url, {"provider": "gemini"}, **kw),
           "telnyx": lambda url, **kw: FakeTelnyxCaller(url, {"provider": "gemini"}, **kw),
           "vonage": lambda url, **kw: FakeVonageCaller(url, {"provider": "gemini"}, **kw)}


@pytest.mark.parametrize("vendor", ["twilio", "telnyx", "vonage"])
async def test_fake_caller_call_setup_audio_dtmf_and_hangup(vendor: str) -> None:
    async with bridge(vendor) as (b, url):
        caller = CALLERS[vendor](url)
        async with caller:
            await b.wait_for(lambda evs: any(isinstance(e, CallStarted) for e in evs))
            started = next(e for e in b.events if isinstance(e, CallStarted))
            assert started.params["provider"] == "gemini"
            assert started.input_format == caller.input_format
            audio = bytes(range(256)) * 10
            await caller.send_audio(audio)
            await caller.send_dtmf("4")
            await b.wait_for(lambda evs: any(isinstance(e, DtmfReceived) for e in evs))
            got = b"".join(e.data for e in b.events if isinstance(e, MediaReceived))
            frame = caller.input_format.frame_bytes(20)
            assert got[:len(audio)] == audio and len(got) % frame == 0 and len(got) - len(audio) < frame
            await caller.hangup()
        if vendor != "vonage":
            await b.wait_for(lambda evs: any(isinstance(e, CallStopped) for e in evs))
        assert not any(isinstance(e, Exception) for e in b.events)


@pytest.mark.parametrize("vendor", ["twilio", "telnyx", "vonage"])
async def test_marks_come_back_after_simulated_playout(vendor: str) -> None:
    async with bridge(vendor) as (b, url):
        async with CALLERS[vendor](url) as caller:
            await b.wait_for(lambda evs: any(isinstance(e, CallStarted) for e in evs))
            second = caller.output_format.bytes_per_second
            [name] = await b.reply("r1", b"\x11\x22" * (second // 2), mark_every_bytes=second)
            await caller.wait_until(lambda c: c.marks_received == [name])
            assert caller.marks_echoed == [] and caller.queued_ms == 1000
            await caller.send_silence(980)  # 0.98 s of stream time: the reply is still playing
            assert caller.marks_echoed == []
            await caller.send_silence(20)
            assert caller.marks_echoed == [name]
            await b.wait_for(lambda evs: b.marks() == [(name, True)])
            assert b.tracker.heard_ms("r1") == 1000
            assert caller.played_audio == bytes(caller.received_audio) == b"\x11\x22" * (second // 2)
            assert caller.protocol_errors == []
            assert set(caller.media_frame_sizes) == {caller.output_format.frame_bytes(20)}


@pytest.mark.parametrize("vendor", ["twilio", "telnyx", "vonage"])
async def test_clear_returns_pending_marks_at_once_and_heard_ms_stops(vendor: str) -> None:
    async with bridge(vendor) as (b, url):
        async with CALLERS[vendor](url) as caller:
            await b.wait_for(lambda evs: any(isinstance(e, CallStarted) for e in evs))
            fifth = caller.output_format.bytes_per_second // 5
            reply = bytes(range(200)) * (caller.output_format.bytes_per_second // 200)  # 1 s
            names = await b.reply("r1", reply, mark_every_bytes=fifth)  # a mark every 200 ms
            await caller.wait_until(lambda c: len(c.marks_received) == 5)
            await caller.send_silence(300)
            assert caller.marks_echoed == names[:1]
            await b.wait_for(lambda evs: b.marks() == [(names[0], True)])
            await b.clear()  # barge-in after 300 ms of the reply
            await caller.wait_until(lambda c: c.clears == 1 and c.marks_echoed == names)
            await b.wait_for(lambda evs: len(b.marks()) == 5)
            assert b.marks() == [(names[0], True)] + [(n, False) for n in names[1:]]
            assert b.tracker.heard_ms("r1") == 200  # a lower bound, exact to one mark interval
            assert caller.played_audio == reply[:3 * caller.output_format.bytes_per_second // 10]
            if vendor == "vonage":
                await b.wait_for(lambda evs: any(isinstance(e, Cleared) for e in evs))


async def test_instant_playout_echoes_marks_on_arrival() -> None:
    async with bridge("twilio") as (b, url):
        async with FakeTwilioCaller(url, instant_playout=True) as caller:
            await b.wait_for(lambda evs: any(isinstance(e, CallStarted) for e in evs))
            names = await b.reply("r1", b"\xff" * 8000, mark_every_bytes=1600)
            await caller.wait_until(lambda c: c.marks_echoed == names)


async def test_telnyx_l16_round_trip_keeps_sample_order() -> None:
    async with bridge("telnyx") as (b, url):
        b.echo_audio = True
        async with FakeTelnyxCaller(url, encoding="L16", sample_rate=16000) as caller:
            audio = b"".join(i.to_bytes(2, "little", signed=True) for i in range(-320, 320))  # 40 ms ramp
            await caller.send_audio(audio)
            await caller.wait_until(lambda c: len(c.received_audio) >= len(audio))
            assert bytes(caller.received_audio) == audio
            got = b"".join(e.data for e in b.events if isinstance(e, MediaReceived))
            assert got == audio  # the serializer hands on little-endian PCM16


async def test_twilio_signature_helper_matches_the_gateway_check() -> None:
    from gateway.auth import verify_twilio_signature
    from tests.telephony_clients import sign_twilio

    url = "wss://gw.example.com/v1/twilio?tenant=acme"
    assert verify_twilio_signature("tok", url, {}, sign_twilio("tok", url))
