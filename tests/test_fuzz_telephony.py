"""Fuzz every telephony serializer: any frame sequence either parses into telephony events or raises
an error from the ClientError subtree. Nothing else may escape (no KeyError, TypeError, ...).

VG_FUZZ_EXAMPLES sets the number of sequences per test (default 200); each test records how many
frames it actually fed (`frames_tried` in the junit report, and printed with `-s`).
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.core import given

from gateway.errors import ClientError
from gateway.telephony import (
    CallStarted,
    CallStopped,
    Cleared,
    Connected,
    DtmfReceived,
    MarkPlayed,
    MediaReceived,
    MediaStreamSerializer,
    TelephonyError,
    TelnyxMediaStream,
    TwilioMediaStream,
    VonageMediaStream,
)
from tests.fuzzing import field_slots, json_values

EXAMPLES = int(os.environ.get("VG_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENT_TYPES = (Connected, CallStarted, MediaReceived, DtmfReceived, MarkPlayed, Cleared, CallStopped, TelephonyError)
SID = "MZ0123456789abcdef0123456789abcdef"

# -- building blocks ------------------------------------------------------------------------------
json_scalar = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_value = json_values(json_scalar)


def sometimes_wrong(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the right shape, sometimes any JSON value at all."""
    return st.one_of(valid, valid, json_value)


good_b64 = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())
bad_b64 = st.sampled_from(["!!!!", "abc", "////=", "====", "é", "\x00", "Zm9v\nYmFy", "-_-_"]) | st.text(max_size=30)
payload = st.one_of(good_b64, good_b64, bad_b64)
digit = st.sampled_from(list("0123456789*#ABCD")) | st.text(max_size=3)


def twilio_like(keys: dict[str, str]) -> st.SearchStrategy:
    """Twilio (camelCase) or Telnyx (snake_case) messages, every field possibly the wrong type."""
    fmt = st.fixed_dictionaries({keys["encoding"]: sometimes_wrong(st.sampled_from(
        ["audio/x-mulaw", "PCMU", "PCMA", "L16", "OPUS", "pcmu"])),
        keys["rate"]: sometimes_wrong(st.sampled_from([8000, 16000, 24000, 44100, 0])),
        "channels": sometimes_wrong(st.sampled_from([1, 2]))})
    start = st.fixed_dictionaries({}, optional={
        keys["sid"]: sometimes_wrong(st.just(SID)), keys["call"]: sometimes_wrong(st.just("CA1")),
        keys["params"]: sometimes_wrong(st.dictionaries(st.text(max_size=8), json_scalar, max_size=4)),
        keys["format"]: sometimes_wrong(fmt)})
    media = st.fixed_dictionaries({}, optional={
        "track": sometimes_wrong(st.sampled_from(["inbound", "outbound", "inbound_track"])),
        "chunk": json_value, "timestamp": json_value, "payload": payload})
    body = {
        "start": start, "media": media,
        "dtmf": st.fixed_dictionaries({}, optional={"digit": sometimes_wrong(digit)}),
        "mark": st.fixed_dictionaries({}, optional={"name": sometimes_wrong(st.text(max_size=10))}),
        "stop": st.dictionaries(st.text(max_size=8), json_scalar, max_size=2),
        "error": st.dictionaries(st.sampled_from(["payload", "error"]), json_value, max_size=2),
    }
    # Weighted towards media: that is where most of a real call's frames go.
    events = st.sampled_from(["connected", "start", "media", "media", "media", "media", "dtmf", "mark",
                              "mark", "stop", "error", "clear", "nope"])

    @st.composite
    def message(draw) -> dict:
        event = draw(weighted(events, json_value))
        msg: dict = {"event": event}
        if draw(st.booleans()):
            msg[keys["sid"]] = draw(sometimes_wrong(st.just(SID)))
        if isinstance(event, str) and event in body and draw(st.integers(0, 4)):
            msg[event] = draw(sometimes_wrong(body[event]))
        return msg

    return message()


def weighted(common: st.SearchStrategy, rare: st.SearchStrategy, rare_in: int = 8) -> st.SearchStrategy:
    """`common` except one time in `rare_in` (st.one_of does not weight its branches evenly)."""
    return st.integers(1, rare_in).flatmap(lambda k: rare if k == rare_in else common)


def text_frames(messages: st.SearchStrategy) -> st.SearchStrategy:
    as_json = messages.map(lambda m: json.dumps(m, ensure_ascii=False))
    garbage = st.one_of(
        st.text(max_size=200),  # not JSON
        json_value.map(json.dumps),  # JSON, but not an object
        as_json.map(lambda s: s[: len(s) // 2]),  # truncated
        st.sampled_from(["", "{}", '{"event":"media","media":{"payload":NaN}}', "[" * 5000 + "]" * 5000,
                         '{"event":"' + "x" * 70_000 + '"}']),
    )
    return weighted(as_json, garbage)


def run_sequence(serializer: MediaStreamSerializer, frames: list, counter: Counter[str]) -> None:
    for frame in frames:
        counter["frames"] += 1
        try:
            events = serializer.parse(frame)
        except ClientError as exc:
            counter[type(exc).__name__] += 1
            continue
        assert isinstance(events, list)
        assert all(isinstance(e, EVENT_TYPES) for e in events)
        counter.update(type(e).__name__ for e in events)


def fuzz(serializer_cls, prefix: list, frames_strategy: st.SearchStrategy, record_property, label: str,
         *, always_start: bool = False) -> None:
    counter: Counter[str] = Counter()

    @FUZZ
    @given(st.booleans(), st.lists(frames_strategy, max_size=8))
    def run(start_first: bool, frames: list) -> None:
        run_sequence(serializer_cls(), (prefix if start_first or always_start else []) + frames, counter)

    run()
    # What the inputs turned into (events and refusals by type) shows how deep the fuzzing reached.
    record_property("frames_tried", counter["frames"])
    record_property("outcomes", dict(counter))
    print(f"\n{label}: {counter['frames']} frames tried; outcomes {dict(counter.most_common())}")
    assert counter["frames"] > 0


# -- the tests ------------------------------------------------------------------------------------
TWILIO_KEYS = {"sid": "streamSid", "call": "callSid", "params": "customParameters", "format": "mediaFormat",
               "encoding": "encoding", "rate": "sampleRate"}
TELNYX_KEYS = {"sid": "stream_id", "call": "call_control_id", "params": "custom_parameters",
               "format": "media_format", "encoding": "encoding", "rate": "sample_rate"}
TWILIO_PREFIX = ['{"event":"connected","protocol":"Call","version":"1.0.0"}',
                 json.dumps({"event": "start", "streamSid": SID, "start": {"streamSid": SID, "callSid": "CA1"}})]
TELNYX_PREFIX = ['{"event":"connected","version":"1.0.0"}',
                 json.dumps({"event": "start", "stream_id": SID, "start": {
                     "call_control_id": "v3:x", "media_format": {"encoding": "L16", "sample_rate": 16000}}})]


def test_fuzz_twilio(record_property) -> None:
    frames = weighted(text_frames(twilio_like(TWILIO_KEYS)), st.binary(max_size=64))
    fuzz(TwilioMediaStream, TWILIO_PREFIX, frames, record_property, "twilio")


def test_fuzz_telnyx(record_property) -> None:
    frames = weighted(text_frames(twilio_like(TELNYX_KEYS)), st.binary(max_size=64))
    fuzz(TelnyxMediaStream, TELNYX_PREFIX, frames, record_property, "telnyx")


# -- mid-call: near-valid messages with one or two fields broken -------------------------------------

@st.composite
def mutated(draw, template: st.SearchStrategy) -> dict:
    """A valid message, then 0-2 mutations: a field replaced by any JSON value, or removed."""
    msg = copy.deepcopy(draw(template))  # sampled templates are shared: never mutate them
    for _ in range(draw(st.integers(0, 2))):
        parent, key = draw(st.sampled_from(field_slots(msg)))
        if draw(st.booleans()):
            parent[key] = draw(json_value | payload)
        else:
            del parent[key]
        if not msg:
            break
    return msg


def twilio_mid_call(sid_key: str) -> st.SearchStrategy:
    media = st.builds(lambda p, track: {"event": "media", sid_key: SID, "media": {
        "track": track, "chunk": "7", "timestamp": "140", "payload": p}},
        good_b64, st.sampled_from(["inbound", "inbound_track", "outbound"]))
    others = st.sampled_from([
        {"event": "dtmf", sid_key: SID, "dtmf": {"track": "inbound_track", "digit": "5"}},
        {"event": "mark", sid_key: SID, "mark": {"name": "vg-1"}},
        {"event": "stop", sid_key: SID, "stop": {"callSid": "CA1"}},
        {"event": "error", sid_key: SID, "payload": {"code": 1, "title": "t"}},
        {"event": "connected", "version": "1.0.0"},
        {"event": "start", sid_key: SID, "start": {sid_key: SID}},
    ])
    return weighted(mutated(weighted(media, others, rare_in=3)),
                    text_frames(st.just({"event": "media"})))


def test_fuzz_twilio_mid_call(record_property) -> None:
    frames = twilio_mid_call("streamSid").map(lambda m: m if isinstance(m, str) else json.dumps(m))
    fuzz(TwilioMediaStream, TWILIO_PREFIX, frames, record_property, "twilio mid-call", always_start=True)


def test_fuzz_telnyx_mid_call(record_property) -> None:
    frames = twilio_mid_call("stream_id").map(lambda m: m if isinstance(m, str) else json.dumps(m))
    fuzz(TelnyxMediaStream, TELNYX_PREFIX, frames, record_property, "telnyx mid-call", always_start=True)


def vonage_messages() -> st.SearchStrategy:
    content_type = sometimes_wrong(st.sampled_from(
        ["audio/l16;rate=16000", "audio/l16;rate=8000", "AUDIO/L16; rate=24000", "audio/l16;rate=44100",
         "audio/l16", "audio/pcmu", ""]))
    connected = st.fixed_dictionaries({"event": st.just("websocket:connected")},
                                      optional={"content-type": content_type,
                                                "caller": json_value, "uuid": json_value})
    dtmf = st.fixed_dictionaries({"event": st.just("websocket:dtmf")},
                                 optional={"digit": sometimes_wrong(digit), "dtmf": sometimes_wrong(
                                     st.fixed_dictionaries({}, optional={"digit": digit, "digits": digit}))})
    notify = st.fixed_dictionaries({"event": st.just("websocket:notify")}, optional={
        "payload": sometimes_wrong(st.fixed_dictionaries({}, optional={"name": sometimes_wrong(st.text())}))})
    other = st.fixed_dictionaries({"event": sometimes_wrong(st.sampled_from(
        ["websocket:cleared", "websocket:error", "websocket:connected", "x"]))})
    return st.one_of(connected, dtmf, notify, other)


def test_fuzz_vonage(record_property) -> None:
    frames = st.one_of(text_frames(vonage_messages()), st.binary(max_size=700), st.binary(max_size=700),
                       st.just(b"\x00" * 70_000), st.just(b"\x00" * 70_001))
    prefix = ['{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}']
    fuzz(VonageMediaStream, prefix, frames, record_property, "vonage")


def test_fuzz_outbound_never_breaks_framing(record_property) -> None:
    """Whatever audio the bridge hands over, every outbound media frame has the exact 20 ms size."""
    counter = [0]

    @FUZZ
    @given(st.sampled_from(["twilio", "telnyx", "vonage"]), st.lists(
        st.one_of(st.binary(max_size=2000), st.sampled_from(["flush", "clear", "mark"])), max_size=10))
    def run(vendor: str, ops: list) -> None:
        cls, prefix = {"twilio": (TwilioMediaStream, TWILIO_PREFIX), "telnyx": (TelnyxMediaStream, TELNYX_PREFIX),
                       "vonage": (VonageMediaStream, ['{"event":"websocket:connected","content-type":'
                                                      '"audio/l16;rate=24000"}'])}[vendor]
        s = cls()
        for f in prefix:
            s.parse(f)
        assert s.output_format is not None
        size = s.output_format.frame_bytes(20)
        for op in ops:
            counter[0] += 1
            if op == "clear":
                s.clear()
                continue
            if op == "mark":
                s.mark("m")
                continue
            out = s.flush_media() if op == "flush" else s.media_frames(op)
            for frame in out:
                raw = frame if isinstance(frame, bytes) else base64.b64decode(json.loads(frame)["media"]["payload"])
                assert len(raw) == size

    run()
    record_property("operations_tried", counter[0])
    print(f"\noutbound: {counter[0]} operations tried")
