"""Fuzz the native client protocol (docs/protocol.md, `WS /v1/voice`): whatever a client sends, it gets
an `error` event with a stable code or a legitimate reply, and the call goes on. Two levels:

- without sockets: `parse_session_start`, and `NativeConnection.on_text`/`on_audio` on a connection
  whose every provider breaker is held OPEN (so no link is ever attempted): each input succeeds or
  raises a ClientError subclass, nothing else;
- over real sockets (tests/harness.py): batches of hostile messages on live calls, each answered in
  order, the connection never closed, and a DTMF round trip working afterwards.

VG_FUZZ_EXAMPLES sets the examples per unit-level test (default 200); the socket test runs a
fifth of that (at least 3) batches of calls. Each test records how many inputs it fed
(`inputs_tried` in the junit report, printed with `-s`).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import json
import os
from collections import Counter
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio.formats import ENCODINGS, PCM16_16K, SAMPLE_RATES_HZ, AudioFormat
from gateway import metrics
from gateway.auth import TokenClaims
from gateway.clients.native import NativeConnection, parse_session_start
from gateway.clock import VirtualClock
from gateway.config import ProviderSettings, Settings
from gateway.errors import BadMessage, ClientError
from gateway.runtime import Runtime
from gateway.session_config import SessionConfig, ToolSpec
from providers.registry import PROVIDER_NAMES as PROVIDERS
from tests.fuzzing import field_slots, json_values
from tests.harness import Gateway, VoiceClient, dtmf_utterance

pytestmark = pytest.mark.timeout(60)

EXAMPLES = int(os.environ.get("VG_FUZZ_EXAMPLES", "200"))
SOCKET_BATCHES = max(3, EXAMPLES // 5)
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Every `error.code` the native protocol may send (docs/protocol.md plus the specific client codes).
CLIENT_CODES = frozenset({"bad_message", "bad_audio", "session_not_started", "unknown_type", "forbidden",
                          "rate_limited", "message_too_big"})
ASYNC_CODES = frozenset({"provider_unavailable", "provider_error", "provider_rejected", "provider_protocol_error",
                         "tool_result_not_delivered", "tool_call_abandoned",
                         "not_supported"})  # text or tool.result on a speech-to-text-only provider
STABLE_CODES = CLIENT_CODES | ASYNC_CODES
MESSAGE_TYPES = ("session.start", "audio.append", "audio.commit", "text", "tool.result", "response.cancel",
                 "provider.switch", "session.end")

# -- building blocks ------------------------------------------------------------------------------
json_scalar = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_value = json_values(json_scalar)


def weighted(common: st.SearchStrategy, rare: st.SearchStrategy, rare_in: int = 8) -> st.SearchStrategy:
    """`common` except one time in `rare_in` (st.one_of does not weight its branches evenly)."""
    return st.integers(1, rare_in).flatmap(lambda k: rare if k == rare_in else common)


def not_none_nor_str(v: object) -> bool:
    return v is not None and not isinstance(v, str)


# audio formats (docs/protocol.md `audio.input {encoding: pcm16|mulaw|alaw, sample_rate}`)
GOOD_FORMATS = [{"encoding": "pcm16", "sample_rate": r} for r in SAMPLE_RATES_HZ] + [
    {"encoding": "mulaw", "sample_rate": 8000}, {"encoding": "alaw", "sample_rate": 8000},
    {"encoding": "mulaw"}, {"encoding": "pcm16"}, {}]
good_format = st.sampled_from(GOOD_FORMATS)
# compressed input (docs/demo.md): decoded at the edge into PCM16 at the declared rate (input only)
good_input_format = st.one_of(good_format, st.sampled_from(
    [{"encoding": "opus"}, {"encoding": "webm", "sample_rate": 16000}, {"encoding": "opus", "sample_rate": 8000}]))
bad_format = st.one_of(
    st.sampled_from([{"encoding": "flac"}, {"encoding": "opus", "sample_rate": 44100}, {"encoding": "PCM16"}, {"encoding": None}, {"encoding": ["pcm16"]},
                     {"encoding": "pcm16", "sample_rate": 44100}, {"encoding": "pcm16", "sample_rate": "16000"},
                     {"encoding": "pcm16", "sample_rate": 16000.0}, {"encoding": "pcm16", "sample_rate": True},
                     {"encoding": "mulaw", "sample_rate": 16000}, {"encoding": "alaw", "sample_rate": 0},
                     {"sample_rate": -1}, "pcm16", 16000, [], 0, True]),
    json_scalar.filter(lambda v: v is not None))
good_tool = st.fixed_dictionaries({"name": st.sampled_from(["lookup", "get_weather", "t"])}, optional={
    "description": json_scalar, "parameters": st.just({"type": "object", "properties": {}})})
bad_tool = st.one_of(
    st.sampled_from([{}, {"name": ""}, {"name": None}, {"name": "x", "parameters": []}, {"name": "x", "parameters": None},
                     {"description": "no name"}]),
    json_scalar.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries({"name": json_value.filter(lambda v: not isinstance(v, str))}))
options_value = st.dictionaries(st.sampled_from(["model", "temperature", "x", ""]), json_scalar, max_size=2)


def session_start(*, socket_safe: bool = False) -> st.SearchStrategy:
    """A valid session.start. socket_safe: only what lets a real call reach a provider (no odd models,
    output formats a DTMF round trip can use)."""
    audio = st.fixed_dictionaries({}, optional={
        "input": good_format if socket_safe else good_input_format,
        "output": good_format if socket_safe else st.one_of(good_format, good_format.map(
            lambda f: {**f, "transport": "json"}))})
    optional: dict[str, st.SearchStrategy] = {
        "instructions": st.one_of(st.none(), st.text(max_size=40)),
        "voice": st.one_of(st.none(), st.sampled_from(["alloy", "Puck", ""])),
        "language": st.one_of(st.none(), st.sampled_from(["en", "en-US", "de"])),
        "tools": st.lists(good_tool, max_size=2, unique_by=lambda t: t["name"]),
        "audio": audio,
    }
    if socket_safe:
        return st.fixed_dictionaries({"type": st.just("session.start"), "provider": st.sampled_from(PROVIDERS),
                                      "audio": st.fixed_dictionaries({"input": st.sampled_from(GOOD_FORMATS[:6])})},
                                     optional={k: v for k, v in optional.items() if k != "audio"})
    optional |= {
        "provider": st.sampled_from((*PROVIDERS, "auto")),
        "fallback": st.one_of(st.lists(st.sampled_from(PROVIDERS), min_size=1, max_size=4),
                              st.sampled_from(["gemini,openai", "deepgram"])),
        "provider_options": st.dictionaries(st.sampled_from(PROVIDERS), options_value, max_size=3),
    }
    return st.fixed_dictionaries({"type": st.just("session.start")}, optional=optional)


# One definitely-bad value per session.start field (each breaks parse_session_start on its own).
BAD_START_FIELDS: dict[str, st.SearchStrategy] = {
    "provider": json_value.filter(lambda v: v not in (*PROVIDERS, "auto")),
    "fallback": st.one_of(
        json_scalar.filter(lambda v: not isinstance(v, str)),
        st.dictionaries(st.text(max_size=4), json_scalar, max_size=2),
        st.lists(st.sampled_from(PROVIDERS), max_size=2).flatmap(lambda ok: st.one_of(
            st.text(max_size=8), json_scalar).filter(lambda b: b not in PROVIDERS).map(lambda b: [*ok, b]))),
    "audio": st.one_of(
        st.sampled_from(["pcm16", 5, [1], True, 1.5]),
        st.fixed_dictionaries({"input": bad_format}), st.fixed_dictionaries({"output": bad_format})),
    "instructions": json_value.filter(not_none_nor_str),
    "voice": json_value.filter(not_none_nor_str),
    "language": json_value.filter(not_none_nor_str),
    "tools": st.one_of(json_scalar.filter(lambda v: v is not None and not isinstance(v, list)),
                       st.lists(good_tool, max_size=2).flatmap(lambda ok: bad_tool.map(lambda b: [*ok, b]))),
    "provider_options": st.one_of(
        st.sampled_from(["x", 5, [1], True, 2.5]),
        st.dictionaries(st.sampled_from(PROVIDERS), json_value.filter(lambda v: not isinstance(v, dict)),
                        min_size=1, max_size=2)),
}


@st.composite
def bad_session_start(draw) -> dict:
    msg = dict(draw(session_start()))
    field = draw(st.sampled_from(sorted(BAD_START_FIELDS)))
    msg[field] = draw(BAD_START_FIELDS[field])
    return msg



@st.composite
def mutated(draw, template: st.SearchStrategy) -> dict:
    """A valid message, then 0-2 mutations anywhere inside it: a field replaced by any JSON value, or removed."""
    msg = copy.deepcopy(draw(template))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        slots = [(p, k) for p, k in field_slots(msg) if not (p is msg and k == "type")]
        if not slots:
            break
        parent, key = draw(st.sampled_from(slots))
        if draw(st.booleans()):
            parent[key] = draw(json_value)
        else:
            del parent[key]
    return msg


good_b64 = st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode())
bad_b64 = st.one_of(st.sampled_from(["!!!!", "abc", "////=", "====", "é", "Zm9v\nYmFy", "-_-_", "Zm9v YmFy", "A"]),
                    st.text(max_size=30))


def call_messages(*, allow_end: bool, max_audio: int = 600) -> st.SearchStrategy:
    """Mid-call messages of every native protocol type (docs/protocol.md): mostly well-typed, some with fields of the wrong type (and
    mutated() breaks or drops a field of any of them)."""
    switch_to = weighted(st.sampled_from(PROVIDERS), st.one_of(
        st.sampled_from(["auto", "GEMINI", "", "whisper"]), json_value), rare_in=2)
    templates = st.one_of(
        st.fixed_dictionaries({"type": st.just("audio.append"), "audio": weighted(
            st.binary(max_size=max_audio).map(lambda b: base64.b64encode(b).decode()),
            st.one_of(bad_b64, json_value), rare_in=3)}),
        st.just({"type": "audio.commit"}),
        st.fixed_dictionaries({"type": st.just("text"), "text": weighted(
            st.one_of(st.sampled_from(["12", "hello", "#"]), st.text(min_size=1, max_size=20)),
            st.one_of(st.just(""), json_value), rare_in=3)}),
        st.fixed_dictionaries({"type": st.just("tool.result"), "call_id": weighted(
            st.sampled_from(["call_1", "", "fc_9"]), json_value, rare_in=3), "output": json_value}),
        st.just({"type": "response.cancel"}),
        st.fixed_dictionaries({"type": st.just("provider.switch"), "provider": switch_to}),
        session_start(),
    )
    if allow_end:
        templates = weighted(templates, st.just({"type": "session.end"}), rare_in=12)
    return mutated(templates)


def unknown_types() -> st.SearchStrategy:
    return st.one_of(st.text(max_size=20), st.sampled_from(
        ["", "Session.Start", "audio.append ", "session.update", "ping", "x" * 200])).filter(
        lambda t: t not in MESSAGE_TYPES).map(lambda t: {"type": t, "audio": "AAAA"})


def as_text(messages: st.SearchStrategy, *, huge_bytes: int) -> st.SearchStrategy:
    """Messages as JSON text, plus frames that are not JSON objects with a string `type`."""
    encoded = messages.map(lambda m: json.dumps(m, ensure_ascii=False))
    garbage = st.one_of(
        st.text(max_size=80),  # not JSON (mostly)
        json_value.map(json.dumps),  # JSON, but rarely an object with a string type
        encoded.map(lambda s: s[: len(s) // 2]),  # truncated
        st.sampled_from(["", " ", "{}", "[]", "null", '{"type": 7}', '{"type": null}', '{"type": ["text"]}',
                         '{"type":"text","text":NaN}', '{"type":"audio.commit"', "[" * 3000 + "]" * 3000,
                         '{"type":"' + "\u0000" + '"}']),
        st.integers(1000, huge_bytes).map(lambda n: '{"type":"audio.append","audio":"' + "!" * n + '"}'),
        st.integers(1000, huge_bytes).map(lambda n: "x" * n),
    )
    return weighted(encoded, garbage, rare_in=4)


def frames(messages: st.SearchStrategy, *, max_audio: int, huge_bytes: int) -> st.SearchStrategy:
    """Text frames, and binary frames (audio) of any length, odd ones included."""
    binary = st.one_of(st.binary(max_size=max_audio), st.just(b""), st.binary(min_size=1, max_size=9))
    return weighted(as_text(weighted(messages, unknown_types(), rare_in=6), huge_bytes=huge_bytes), binary, rare_in=4)


# -- what each input must get (docs/protocol.md) ------------------------------------------------------
def expected_code(frame: str | bytes, *, started: bool, input_encoding: str) -> str | None:
    """The error code an input must produce, "" when it must produce none, None when either a
    legitimate reply or any client error is right (a known type whose fields may be wrong)."""
    if isinstance(frame, bytes):
        if not started:
            return "session_not_started"
        if input_encoding in ("opus", "webm"):  # the codec decides: a packet decodes or is bad_audio
            return "" if not frame else None
        return "bad_audio" if input_encoding == "pcm16" and len(frame) % 2 else ""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return "bad_message"
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return "bad_message"
    kind = msg["type"]
    if kind == "session.start":
        return "bad_message" if started else None
    if not started:
        return "session_not_started"
    return None if kind in MESSAGE_TYPES else "unknown_type"


def check_event(event: dict[str, Any]) -> None:
    """Every gateway event has type, session_id and ts; errors carry a stable code and a message."""
    assert isinstance(event.get("type"), str) and isinstance(event.get("session_id"), str), event
    assert isinstance(event.get("ts"), int | float), event
    if event["type"] == "error":
        assert event["code"] in STABLE_CODES, event
        assert isinstance(event["message"], str) and event["message"], event
        assert "Traceback" not in event["message"] and "Error(" not in event["message"], event


def check_config(cfg: SessionConfig) -> None:
    assert cfg.provider in (*PROVIDERS, "auto")
    assert cfg.fallback and set(cfg.fallback) <= set(PROVIDERS), cfg.fallback
    for fmt in (cfg.input_format, cfg.output_format):
        assert fmt.encoding in ENCODINGS and fmt.sample_rate_hz in SAMPLE_RATES_HZ
        assert fmt.encoding == "pcm16" or fmt.sample_rate_hz == 8000
    assert isinstance(cfg.instructions, str)
    assert cfg.voice is None or isinstance(cfg.voice, str)
    assert cfg.language is None or isinstance(cfg.language, str)
    assert all(isinstance(t, ToolSpec) and isinstance(t.name, str) and t.name and isinstance(t.parameters, dict)
               and isinstance(t.description, str) for t in cfg.tools)
    assert all(isinstance(k, str) and isinstance(v, dict) for k, v in cfg.provider_options.items())
    assert isinstance(cfg.json_audio, bool)


def kind_of(frame: str | bytes) -> str:
    """For the outcome counts: binary, garbage, or the message type."""
    if isinstance(frame, bytes):
        return "binary"
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return "not_json"
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return "no_type"
    return msg["type"] if msg["type"] in MESSAGE_TYPES else "unknown"


def report(record_property, label: str, counter: Counter[str]) -> None:
    # What the inputs turned into (replies and refusals by code) shows how deep the fuzzing reached.
    record_property("inputs_tried", counter["inputs"])
    record_property("outcomes", dict(counter))
    print(f"\n{label}: {counter['inputs']} inputs tried; outcomes {dict(counter.most_common())}")
    assert counter["inputs"] > 0


# -- level 1: no sockets ----------------------------------------------------------------------------
def test_fuzz_parse_session_start(record_property) -> None:
    counter: Counter[str] = Counter()
    starts = st.one_of(session_start(), mutated(session_start()), bad_session_start().map(lambda m: ("bad", m)))

    @FUZZ
    @given(starts)
    def run(drawn: dict | tuple[str, dict]) -> None:
        must_fail, msg = (True, drawn[1]) if isinstance(drawn, tuple) else (False, drawn)
        counter["inputs"] += 1
        try:
            cfg = parse_session_start(msg, default_provider="gemini", default_fallback=PROVIDERS)
        except ClientError as exc:
            counter[exc.code] += 1
            assert isinstance(exc, BadMessage) and exc.code == "bad_message"
            return
        assert not must_fail, f"accepted a session.start with a bad field: {msg!r}"
        counter["accepted"] += 1
        check_config(cfg)

    run()
    report(record_property, "parse_session_start", counter)


def test_auto_with_an_empty_fallback_is_refused_or_defaulted() -> None:
    msg = {"type": "session.start", "provider": "auto", "fallback": []}
    try:
        cfg = parse_session_start(msg, default_provider="gemini", default_fallback=PROVIDERS)
    except BadMessage:
        return
    check_config(cfg)


class RecordingSocket:
    """Stands in for aiohttp's WebSocketResponse under NativeConnection: what the gateway sends, recorded."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio_frames = 0
        self.close_codes: list[int] = []

    async def send_frame(self, message: bytes, opcode: WSMsgType) -> None:
        assert opcode is WSMsgType.TEXT
        self.events.append(orjson.loads(message))

    async def send_bytes(self, data: bytes) -> None:
        self.audio_frames += 1

    async def close(self, *, code: int = 1000) -> None:
        self.close_codes.append(code)


async def start_offline_runtime() -> Runtime:
    """A runtime whose providers all have their breaker forced OPEN: calls start and wait for a
    provider (buffering audio), and nothing ever dials out. Virtual time: no idle timeout fires."""
    providers = {p: ProviderSettings(name=p, api_key="unused", base_url="ws://127.0.0.1:9", simulated=False)
                 for p in PROVIDERS}
    rt = Runtime(dataclasses.replace(Settings(), providers=providers), clock=VirtualClock())
    await rt.start()
    for p in PROVIDERS:
        rt.breakers.get(p).force_open("auth")
    return rt


async def stop_offline_runtime(rt: Runtime) -> None:
    await rt.stop()
    for p in PROVIDERS:
        rt.breakers.get(p).reset()


async def feed_offline(rt: Runtime, drawn: tuple, counter: Counter[str]) -> None:
    allow_switch, start, mid_call, before = drawn
    ws = RecordingSocket()
    claims = TokenClaims(subject="fuzz", kind="anonymous", allow_switch=allow_switch)
    conn = NativeConnection(ws, claims, rt)  # type: ignore[arg-type]
    started = False
    async with asyncio.timeout(5):  # nothing may hang
        for frame in [*before, start, *mid_call]:
            counter["inputs"] += 1
            encoding = (conn.session.config.input_codec or conn.session.config.input_format.encoding
                        if conn.session else "pcm16")
            want = expected_code(frame, started=started, input_encoding=encoding)
            try:
                ended = await (conn.on_audio(frame) if isinstance(frame, bytes) else conn.on_text(frame))
            except ClientError as exc:  # NativeConnection.run() answers these with an error event
                counter[f"refused:{kind_of(frame)}:{exc.code}"] += 1
                assert exc.code in CLIENT_CODES, exc
                assert want is None or exc.code == want, (frame, exc.code, want)
                await conn.error(exc)
                continue
            assert want in (None, ""), f"{frame!r} should have been refused with {want}"
            counter[f"accepted:{kind_of(frame)}"] += 1
            started = started or conn.session is not None
            if ended:
                assert orjson.loads(frame)["type"] == "session.end" and ws.close_codes == [1000]
                break
        if conn.session is not None:
            await conn.session.end("client_disconnected")
    for event in ws.events:
        check_event(event)
    counter.update(f"event:{e['type']}" if e["type"] != "error" else f"event:error:{e['code']}" for e in ws.events)
    assert not rt.sessions  # every call of this connection is over


async def test_a_waiting_call_that_ends_at_once_leaves_no_provider_gauge_as_it_was() -> None:
    rt = await start_offline_runtime()
    try:
        before = metrics.sample("voice_gateway_no_provider_sessions")
        conn = NativeConnection(RecordingSocket(), TokenClaims(  # type: ignore[arg-type]
            subject="fuzz", kind="anonymous", allow_switch=True), rt)
        await conn.on_text('{"type": "session.start"}')  # no provider admits a call: it waits
        assert await conn.on_text('{"type": "session.end"}')
        assert metrics.sample("voice_gateway_no_provider_sessions") == before
    finally:
        await stop_offline_runtime(rt)


offline_inputs = st.tuples(
    st.booleans(),  # may switch providers
    weighted(session_start(), st.one_of(mutated(session_start()), bad_session_start()), rare_in=5).map(json.dumps),
    st.lists(frames(call_messages(allow_end=True), max_audio=700, huge_bytes=70_000), max_size=10),
    st.lists(frames(call_messages(allow_end=True), max_audio=64, huge_bytes=2000), max_size=3),  # before start
)


def test_fuzz_native_connection_without_sockets(record_property) -> None:
    counter: Counter[str] = Counter()
    loop = asyncio.new_event_loop()
    rt = loop.run_until_complete(start_offline_runtime())
    try:
        @FUZZ
        @given(offline_inputs)
        def run(drawn: tuple) -> None:
            loop.run_until_complete(feed_offline(rt, drawn, counter))

        run()
    finally:
        loop.run_until_complete(stop_offline_runtime(rt))
        loop.close()
    report(record_property, "native connection (no sockets)", counter)


# -- level 2: over real sockets ---------------------------------------------------------------------
def must_fail_before_start() -> st.SearchStrategy:
    """(frame, code) pairs that no call may start with: each gets exactly that error, in order."""
    definite = frames(call_messages(allow_end=True, max_audio=64), max_audio=300, huge_bytes=4000).map(
        lambda f: (f, expected_code(f, started=False, input_encoding="pcm16"))).filter(lambda fw: fw[1] is not None)
    return st.one_of(definite, bad_session_start().map(lambda m: (json.dumps(m), "bad_message")))


socket_inputs = st.tuples(
    st.lists(must_fail_before_start(), max_size=5),
    session_start(socket_safe=True),
    st.lists(frames(call_messages(allow_end=False, max_audio=400), max_audio=1200, huge_bytes=12_000),
             min_size=4, max_size=12),
    st.text("0123456789", min_size=1, max_size=3),
)


async def send_frame(c: VoiceClient, frame: str | bytes) -> None:
    assert c.ws is not None
    await c.ws.send(frame)


async def wait_probe(c: VoiceClient, n: int, start: int) -> int:
    """Index of the error answering probe `n` (an unknown type, so answered in order)."""
    probe = await c.wait_for("error", lambda e: e["message"].endswith(f"'fuzz.probe.{n}'"), start=start)
    return next(i for i in range(start, len(c.events)) if c.events[i] is probe)


async def fuzz_one_call(gw: Gateway, drawn: tuple, counter: Counter[str]) -> None:  # noqa: C901
    before, start, mid_call, digits = drawn
    async with gw.client() as c:
        for frame, _ in before:
            await send_frame(c, frame)
        await c.send(start)
        started = await c.wait_for("session.started", timeout=8)
        counter["inputs"] += len(before) + 1
        refusals = [e["code"] for e in c.events[:c.events.index(started)] if e["type"] == "error"]
        assert refusals == [code for _, code in before], (before, refusals)
        counter.update(f"refused:{kind_of(f)}:{code}" for f, code in before)
        fmt = AudioFormat(encoding=started["audio.input"]["encoding"],
                          sample_rate_hz=started["audio.input"]["sample_rate"])

        for n, frame in enumerate(mid_call):
            counter["inputs"] += 1
            want = expected_code(frame, started=True, input_encoding=fmt.encoding)
            mark = len(c.events)
            await send_frame(c, frame)
            await c.send({"type": f"fuzz.probe.{n}"})
            answered = await wait_probe(c, n, mark)
            codes = [e["code"] for e in c.events[mark:answered] if e["type"] == "error"]
            sync = [code for code in codes if code in CLIENT_CODES]  # answered in the read loop, in order
            if want:
                assert sync in ([want], ["rate_limited"]), (frame, codes, want)
            elif want == "":
                assert sync in ([], ["rate_limited"]), (frame, codes)
            else:
                assert len(sync) <= 1, (frame, codes)
            counter[f"{'refused' if sync else 'accepted'}:{kind_of(frame)}{':' + sync[0] if sync else ''}"] += 1
            assert not c.closed.is_set(), f"connection closed after {frame!r}"

        # the call still works: a DTMF utterance comes back as the user's transcript
        mark = len(c.events)
        await c.send_audio(dtmf_utterance(digits, fmt), fmt)
        final = await c.wait_for("transcript.final", lambda e: e["role"] == "user" and digits in e["text"],
                                 start=mark, timeout=8)
        counter[f"round_trip:{final['provider']}"] += 1
        await c.send({"type": "session.end"})
        await c.wait_for("session.ended")
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws is not None and c.ws.close_code == 1000
        for event in c.events:
            check_event(event)
        counter.update(f"event:{e['type']}" for e in c.events if e["type"] not in ("error", "transcript.partial"))
    await asyncio.wait_for(gw_idle(gw), 5)


async def gw_idle(gw: Gateway) -> None:
    """The call's session is gone from the gateway once the client has seen it end."""
    while gw.runtime is not None and gw.runtime.sessions:  # noqa: ASYNC110 - no event for it
        await asyncio.sleep(0.005)


def test_fuzz_native_over_sockets(record_property) -> None:
    counter: Counter[str] = Counter()
    loop = asyncio.new_event_loop()
    gw = Gateway()
    loop.run_until_complete(gw.__aenter__())
    try:
        @settings(FUZZ, max_examples=SOCKET_BATCHES)
        @given(socket_inputs)
        def run(drawn: tuple) -> None:
            loop.run_until_complete(asyncio.wait_for(fuzz_one_call(gw, drawn, counter), 30))

        run()
    finally:
        loop.run_until_complete(gw.__aexit__(None, None, None))
        loop.close()
    report(record_property, "native protocol over sockets", counter)


async def test_message_over_the_size_limit_closes_1009_and_the_gateway_carries_on() -> None:
    """docs/protocol.md: 64 KiB max message. At the limit a frame is taken; one byte over closes the
    connection with 1009 (never 1011), the call ends, and the next call works."""
    async with Gateway() as gw:
        async with gw.client() as c:
            await c.start("deepgram", input_format=PCM16_16K)
            await send_frame(c, bytes(64 * 1024))  # 2 s of silence, exactly at the limit
            await c.send({"type": "fuzz.probe.0"})
            await wait_probe(c, 0, 0)
            assert not [e for e in c.of_type("error") if e["code"] != "unknown_type"]
            await send_frame(c, bytes(64 * 1024 + 2))
            await asyncio.wait_for(c.closed.wait(), 5)
            assert c.ws is not None and c.ws.close_code == 1009
        await asyncio.wait_for(gw_idle(gw), 5)
        async with gw.client() as c:
            await c.start("deepgram", input_format=PCM16_16K)
            await c.send_audio(dtmf_utterance("9", PCM16_16K), PCM16_16K)
            final = await c.wait_for("transcript.final", lambda e: e["role"] == "user")
            assert final["text"] == "9"
