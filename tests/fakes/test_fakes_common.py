"""providers/fakes/common.py: the fault SPEC, the DTMF-dialect recognizer, and the FakeServer base's
numbering, recording and fault injection, exercised through a trivial echo subclass on real sockets."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

from audio.dtmf import generate_dtmf
from gateway.errors import ConfigError
from providers.fakes.common import (
    ConnectionRecord,
    DialectRecognizer,
    FakeServer,
    Fault,
    FaultScript,
    SpeechStart,
    Utterance,
)

# -- the SPEC grammar ----------------------------------------------------------------------------------


def test_spec_example_from_the_docstring_parses_into_rules_per_connection() -> None:
    script = FaultScript.parse("1:drop,audio_bytes=16000;2:refuse,status=503;*:delay,ms=20")
    first = script.for_connection(1)
    assert [f.kind for f in first] == ["drop", "delay"]
    assert first[0].audio_bytes == 16000 and first[1].ms == 20.0
    assert [(f.kind, f.status) for f in script.for_connection(2)] == [("refuse", 503), ("delay", None)]
    assert [f.kind for f in script.for_connection(3)] == ["delay"]


def test_spec_ranges_and_every_option() -> None:
    script = FaultScript.parse(
        " 2-4:close,code=4001,reason=bye,seconds=1.5 ; 5:refuse,status=429,retry_after=7;"
        "*:drop,p=0.25,seed=9;6:goaway,time_left=3,messages=2;7:stall,audio_bytes=10")
    assert [f.kind for f in script.for_connection(1)] == ["drop"]
    close = script.for_connection(3)[0]
    assert (close.kind, close.code, close.reason, close.seconds) == ("close", 4001, "bye", 1.5)
    assert script.for_connection(4)[0].kind == "close"
    assert script.for_connection(5)[0].retry_after == 7
    assert script.for_connection(1)[0].p == 0.25 and script.for_connection(1)[0].seed == 9
    goaway = script.for_connection(6)[1]  # after the `*` drop, in rule order
    assert (goaway.time_left, goaway.messages) == (3.0, 2)
    assert FaultScript.parse(None).rules == [] and FaultScript.parse("").rules == []


def test_add_matches_parse() -> None:
    script = FaultScript().add(1, Fault(kind="drop", audio_bytes=100)).add("2-3", Fault(kind="stall")).add(
        "*", Fault(kind="delay", ms=5))
    assert [f.kind for f in script.for_connection(2)] == ["stall", "delay"]
    assert [f.kind for f in script.for_connection(9)] == ["delay"]


@pytest.mark.parametrize("spec", [
    "drop", "1:explode", "1:drop,bogus=1", "1:drop,messages=many", "x:drop", "3-1:drop", "0:drop",
    "1:refuse", "1:refuse,status=404", "1:drop,messages",
])
def test_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        FaultScript.parse(spec)


# -- the server base, through a trivial echo fake -------------------------------------------------------


class EchoFake(FakeServer):
    """Requires ?key=; echoes every message; binary messages count as input audio."""

    provider = "echo"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.fault_seen = asyncio.Event()

    def on_fault(self, record: ConnectionRecord, fault: Fault) -> None:
        self.fault_seen.set()

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        key = dict(p.split("=", 1) for p in request.path.partition("?")[2].split("&") if "=" in p).get("key")
        if not self.key_ok(key):
            return connection.respond(401, "bad key\n")
        record.auth = "query:key"
        return None

    def decorate_response(self, connection: ServerConnection, request: Request, response: Response,
                          record: ConnectionRecord) -> None:
        response.headers["x-echo-conn"] = str(record.number)

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        await self.session_ready(ws, record)
        async for message in ws:
            record.messages.append(message)
            audio = len(message) if isinstance(message, bytes) else 0
            await self.fault_tick(ws, record, audio_bytes=audio)
            await self.send(ws, message)


async def echo_fake(spec: str = "", api_key: str | None = "k") -> EchoFake:
    return await EchoFake(api_key=api_key, faults=FaultScript.parse(spec)).start()  # type: ignore[return-value]


async def test_connections_are_numbered_and_recorded_without_secrets() -> None:
    fake = await echo_fake()
    try:
        for n in (1, 2):
            async with connect(f"{fake.url}/path?key=k&x={n}", additional_headers={"Authorization": "secret"}) as ws:
                assert ws.response.headers["x-echo-conn"] == str(n)
                await ws.send("hi")
                assert await ws.recv() == "hi"
        first = await fake.connection_done(1)
        assert [r.number for r in fake.connections] == [1, 2]
        assert first.path == "/path" and first.query == {"x": "1"} and first.auth == "query:key"
        assert "authorization" not in first.headers and "host" in first.headers
        assert first.messages == ["hi"] and first.closed_by == "client" and first.close_code == 1000
    finally:
        await fake.stop()


async def test_wrong_key_is_refused_by_the_subclass_and_still_recorded() -> None:
    fake = await echo_fake()
    try:
        with pytest.raises(InvalidStatus) as err:
            await connect(f"{fake.url}/?key=wrong")
        assert err.value.response.status_code == 401
        assert err.value.response.headers["x-echo-conn"] == "1"  # decorate_response sees refusals too
        assert fake.connections[0].refused == 401
    finally:
        await fake.stop()


async def test_without_api_key_any_non_empty_key_is_accepted() -> None:
    fake = await echo_fake(api_key=None)
    try:
        async with connect(f"{fake.url}/?key=anything"):
            pass
        with pytest.raises(InvalidStatus):
            await connect(f"{fake.url}/?key=")
    finally:
        await fake.stop()


@pytest.mark.parametrize(("status", "retry_after"), [(401, None), (403, None), (429, "7"), (500, None), (503, None)])
async def test_refuse_fault_answers_the_upgrade_with_the_status(status: int, retry_after: str | None) -> None:
    fake = await echo_fake(f"1:refuse,status={status},retry_after=7")
    try:
        with pytest.raises(InvalidStatus) as err:
            await connect(f"{fake.url}/?key=k")
        assert err.value.response.status_code == status
        assert err.value.response.headers.get("Retry-After") == retry_after
        async with connect(f"{fake.url}/?key=k") as ws:  # connection 2 is not scripted
            await ws.send("ok")
            assert await ws.recv() == "ok"
        assert [r.refused for r in fake.connections] == [status, None]
    finally:
        await fake.stop()


async def test_drop_after_n_messages_aborts_tcp_without_close_frame() -> None:
    fake = await echo_fake("1:drop,messages=3")
    try:
        async with connect(f"{fake.url}/?key=k") as ws:
            for i in range(2):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            await ws.send("m2")
            with pytest.raises(ConnectionClosed) as err:
                await ws.recv()
            assert err.value.rcvd is None  # no close frame: the client sees 1006
        record = await fake.connection_done(1)
        assert record.closed_by == "fault" and record.faults_fired == ["drop"] and len(record.messages) == 3
    finally:
        await fake.stop()


async def test_close_after_audio_bytes_sends_the_scripted_code_and_reason() -> None:
    fake = await echo_fake("1:close,code=4002,reason=enough,audio_bytes=1000")
    try:
        async with connect(f"{fake.url}/?key=k") as ws:
            await ws.send(b"\0" * 600)
            assert await ws.recv() == b"\0" * 600
            await ws.send("text does not count as audio")
            await ws.recv()
            await ws.send(b"\0" * 400)
            with pytest.raises(ConnectionClosed) as err:
                await ws.recv()
            assert (err.value.rcvd.code, err.value.rcvd.reason) == (4002, "enough")
    finally:
        await fake.stop()


async def test_untriggered_close_fires_right_after_session_ready() -> None:
    fake = await echo_fake("*:close,code=1011,reason=Internal error occurred.")
    try:
        async with connect(f"{fake.url}/?key=k") as ws:
            with pytest.raises(ConnectionClosed) as err:
                await ws.recv()
            assert err.value.rcvd.code == 1011
        assert (await fake.connection_done(1)).close_code == 1011
    finally:
        await fake.stop()


async def test_seconds_trigger_closes_on_a_timer() -> None:
    fake = await echo_fake("1:close,code=4003,seconds=0.05")
    try:
        async with connect(f"{fake.url}/?key=k") as ws:
            with pytest.raises(ConnectionClosed) as err:
                await asyncio.wait_for(ws.recv(), 2)
            assert err.value.rcvd.code == 4003
    finally:
        await fake.stop()


async def test_delay_holds_every_server_message() -> None:
    fake = await echo_fake("*:delay,ms=60")
    try:
        async with connect(f"{fake.url}/?key=k") as ws:
            started = time.monotonic()
            await ws.send("a")
            await ws.recv()
            assert time.monotonic() - started >= 0.06
    finally:
        await fake.stop()


async def test_malformed_fault_calls_the_subclass_hook_default_sends_broken_json() -> None:
    fake = await echo_fake("1:malformed,messages=1")
    try:
        async with connect(f"{fake.url}/?key=k") as ws:
            await ws.send("x")
            assert await ws.recv() == '{"type": '
            assert await ws.recv() == "x"  # the session goes on
    finally:
        await fake.stop()


async def test_stall_stops_answering_even_pings_and_stop_cuts_it() -> None:
    fake = await echo_fake("1:stall,messages=2")
    try:
        ws = await connect(f"{fake.url}/?key=k", ping_interval=None)
        await ws.send("a")
        assert await ws.recv() == "a"
        await ws.send("b")
        await asyncio.wait_for(fake.fault_seen.wait(), 2)
        pong = await ws.ping()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pong), 0.3)
        started = time.monotonic()
        await fake.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(ConnectionClosed) as err:
            await asyncio.wait_for(ws.recv(), 2)
        assert err.value.rcvd is None
        assert fake.connections[0].closed_by == "fault"
    finally:
        await fake.stop()


async def test_random_drops_are_deterministic_for_a_seed() -> None:
    async def messages_until_drop() -> int:
        fake = await echo_fake("*:drop,p=0.2,seed=11")
        try:
            async with connect(f"{fake.url}/?key=k") as ws:
                with pytest.raises(ConnectionClosed):
                    for i in range(200):
                        await ws.send(str(i))
                        await ws.recv()
            return len((await fake.connection_done(1)).messages)
        finally:
            await fake.stop()

    first, second = await messages_until_drop(), await messages_until_drop()
    assert first == second and 1 <= first < 200


async def test_async_context_manager_starts_and_stops() -> None:
    async with EchoFake(api_key="k") as fake:
        assert fake.url.startswith("ws://127.0.0.1:")
        async with connect(f"{fake.url}/?key=k") as ws:
            await ws.send("x")
            assert await ws.recv() == "x"


# -- the DTMF dialect recognizer ------------------------------------------------------------------------


def silence(ms: int, rate_hz: int = 16000) -> bytes:
    return b"\0\0" * (rate_hz * ms // 1000)


def noise(ms: int, rate_hz: int = 16000, dbfs: float = -20.0, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    samples = rng.normal(0.0, 32768 * 10 ** (dbfs / 20), rate_hz * ms // 1000)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def run_chunked(audio: bytes, rate_hz: int = 16000, chunk_ms: int = 20, **kwargs: object) -> list[object]:
    recognizer = DialectRecognizer(rate_hz, **kwargs)  # type: ignore[arg-type]
    step = 2 * rate_hz * chunk_ms // 1000
    events: list[object] = []
    for offset in range(0, len(audio), step):
        events += recognizer.feed(audio[offset:offset + step])
    return events + recognizer.flush()


def test_dtmf_digits_become_words_with_stream_times() -> None:
    # 0.5 s silence, "12#" (100 ms tones, 100 ms gaps = 0.6 s), 0.5 s silence, then noise speech, silence.
    audio = silence(500) + generate_dtmf("12#", 16000) + silence(500) + noise(400) + silence(500)
    events = run_chunked(audio)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStart", "PartialWords", "PartialWords", "PartialWords", "Utterance",
                     "SpeechStart", "Utterance"]
    start, *partials, dtmf, speech_start, speech = events
    assert isinstance(start, SpeechStart) and start.at_s == pytest.approx(0.5, abs=0.011)
    assert [p.text for p in partials] == ["1", "12", "12#"]
    assert partials[-1].end_s == pytest.approx(1.0, abs=0.03)  # third tone ends at 0.5 + 0.5
    assert isinstance(dtmf, Utterance) and dtmf.is_dtmf and dtmf.text == "12#"
    assert (dtmf.start_s, dtmf.end_s) == (pytest.approx(0.5, abs=0.011), pytest.approx(1.0, abs=0.03))
    assert isinstance(speech_start, SpeechStart) and speech_start.at_s == pytest.approx(1.6, abs=0.011)
    assert isinstance(speech, Utterance) and not speech.is_dtmf and speech.text == ""
    assert (speech.start_s, speech.end_s) == (pytest.approx(1.6, abs=0.011), pytest.approx(2.0, abs=0.011))
    assert len(speech.audio) == pytest.approx(2 * 16000 * 0.4, abs=2 * 160)  # the speech, for the parrot


@pytest.mark.parametrize("chunk_ms", [7, 20, 100, 1000])
def test_chunking_never_changes_the_events(chunk_ms: int) -> None:
    audio = silence(200) + generate_dtmf("*09D", 16000) + silence(400) + noise(300, seed=3) + silence(400)
    assert run_chunked(audio, chunk_ms=chunk_ms) == run_chunked(audio, chunk_ms=20)


def test_quiet_noise_is_silence_and_gaps_shorter_than_end_silence_keep_one_utterance() -> None:
    # 100 ms tone gap + 150 ms = 250 ms of silence < 300 ms end-of-utterance silence
    audio = noise(500, dbfs=-60.0) + generate_dtmf("5", 16000) + silence(150) + generate_dtmf("6", 16000) + silence(400)
    utterances = [e for e in run_chunked(audio) if isinstance(e, Utterance)]
    assert [u.text for u in utterances] == ["56"]


def test_utterance_ends_only_after_end_silence_in_stream_time() -> None:
    recognizer = DialectRecognizer(8000, end_silence_ms=300)
    assert not [e for e in recognizer.feed(generate_dtmf("7", 8000, gap_ms=0)) if isinstance(e, Utterance)]
    assert not [e for e in recognizer.feed(silence(280, 8000)) if isinstance(e, Utterance)]
    assert recognizer.in_utterance
    ended = [e for e in recognizer.feed(silence(30, 8000)) if isinstance(e, Utterance)]
    assert [u.text for u in ended] == ["7"]
    assert recognizer.stream_time_s == pytest.approx(0.41)


def test_flush_closes_an_open_utterance_and_odd_bytes_are_carried() -> None:
    recognizer = DialectRecognizer(24000)
    tones = generate_dtmf("3", 24000, gap_ms=0)
    events = recognizer.feed(tones[:1001]) + recognizer.feed(tones[1001:])
    assert [type(e).__name__ for e in events] == ["SpeechStart"]
    closing = recognizer.flush()
    assert [(type(e).__name__, getattr(e, "text", None)) for e in closing] == [
        ("PartialWords", "3"), ("Utterance", "3")]
    assert recognizer.flush() == []


async def test_cut_ends_a_live_connection_abruptly_or_with_a_code() -> None:
    fake = await echo_fake()
    try:
        first = await connect(f"{fake.url}/?key=k")
        second = await connect(f"{fake.url}/?key=k")
        await fake.cut(1)
        with pytest.raises(ConnectionClosed) as abrupt:
            await asyncio.wait_for(first.recv(), 2)
        assert abrupt.value.rcvd is None
        await fake.cut(code=4005, reason="bye")  # default: the newest connection
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(second.recv(), 2)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4005, "bye")
        assert [(await fake.connection_done(n)).closed_by for n in (1, 2)] == ["fault", "fault"]
    finally:
        await fake.stop()


async def test_bounded_recording_for_long_lived_use() -> None:
    """The embedded default runs the fakes for days: recorded audio and old records are bounded."""
    import websockets as _ws

    from providers.fakes.deepgram import FakeDeepgram

    async with FakeDeepgram(api_key="k-1234", record_limit_bytes=3200, keep_connections=2) as fake:
        for _ in range(3):
            async with _ws.connect(fake.url + "/v1/listen?encoding=linear16&sample_rate=16000",
                                   additional_headers={"Authorization": "Token k-1234"}) as c:
                for _ in range(20):
                    await c.send(bytes(640))
                await c.send('{"type":"CloseStream"}')
                async for _ in c:
                    pass
            await fake.connection_done(fake.connections[-1].number)
        assert [r.number for r in fake.connections] == [2, 3]
        assert all(len(r.audio) <= 2 * 3200 for r in fake.connections)
        assert all(r.audio_chunks == 20 for r in fake.connections)  # counting is not bounded
