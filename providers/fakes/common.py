"""Shared machinery of the fake provider servers: fault scripts, recording, the DTMF dialect, the server base.

Invariants: the dialect works in *stream time* (seconds of audio received), never wall time, so results
do not depend on how fast a client sends; connections are numbered from 1 per server instance; nothing
secret (keys, tokens) is ever recorded or logged.

- `FaultScript` / `Fault`: scriptable per connection number (1-based) from tests and `--faults SPEC`.
- `ConnectionRecord`: what one connection received, for tests to assert on.
- `DialectRecognizer`: DTMF digits in the input audio are words; plain speech (energy without DTMF) is
  kept to be echoed back (parrot).
- Plain speech with a `SpeechEngine` (providers/fakes/speech.py, `speech=` at construction): the fake
  transcribes it with `await self.hear(...)` and answers in synthesized speech with `await self.speak(...)`
  instead of the parrot echo. Off by default (tests), on in the embedded default and `--speech`.
- `FakeServer`: websockets asyncio server on 127.0.0.1 (port 0 unless given), optional TLS, connection
  numbering, handshake refusal faults, recording, start()/stop()/url.

Fault SPEC grammar (also for the CLI `--faults`): rules separated by `;`, each
    <conn>:<kind>[,key=value ...]
  conn: a connection number (1-based), a range `2-4`, or `*` (every connection)
  kind: drop (TCP abort, no close frame) | close (close frame; key code=, reason=) |
        refuse (handshake HTTP status; key status=401|403|429|500|503, retry_after=) |
        delay (key ms= added before every server message) | stall (stop reading and writing) |
        malformed (send one malformed message) | goaway (Gemini goAway; key time_left=) |
        expire (OpenAI session_expired / provider's planned close)
  triggers (for drop/close/stall/malformed/goaway/expire; default immediately after setup):
        messages=N (after N client messages) | seconds=T (wall time after upgrade) |
        audio_bytes=N (after N bytes of input audio)
  random drops for load tests: `*:drop,p=0.01,seed=7` drops after each message with probability p.
Example: "1:drop,audio_bytes=16000;2:refuse,status=503;*:delay,ms=20"

How a subclass uses the base (the helper API):
- `provider`, `refusal_body(status)`; override `check_request(connection, request, record) -> Response |
  None` to reject paths/credentials/query at the HTTP upgrade (return `connection.respond(status, body)`;
  `key_ok(key)` compares against `api_key`; called after `refuse` faults), `select_subprotocol(connection,
  offered) -> str | None` to answer subprotocol offers, and `decorate_response(connection, request,
  response, record)` to add headers to every handshake response (101 and refusals alike).
  `record.extra` holds per-connection provider state created at handshake time.
- `async handler(ws, record)`: the session. Call `await self.session_ready(ws, record)` once the provider's
  setup is done (Gemini setupComplete, OpenAI session.created, Deepgram upgrade): untriggered faults fire
  there. After every client message call `await self.fault_tick(ws, record, messages=1,
  audio_bytes=<decoded input audio bytes>)`. Send every server message with `await self.send(ws, frame)`
  (applies `delay`, blocks while stalled).
- Faults the base performs itself: drop (`ws.transport.abort()`), close (`ws.close(code, reason)`), stall
  (reading paused, `send` blocks; ended by the client going away or `stop()`). These raise `FaultFired`
  out of `fault_tick`/`session_ready`; let it propagate, the base catches it.
- Provider-specific faults (malformed, goaway, expire) call the subclass's `async inject_fault(ws, record,
  fault)`, from `fault_tick`/`session_ready` or from the `seconds=` timer task (so it may run concurrently
  with the handler).
- Tests synchronise with `await fake.connection_done(n)` (connection n's handler has ended) and
  `await fake.fault_fired(n, kind)` (a fault has fired on connection n).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import random
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from audio.dtmf import DtmfDetector
from gateway.clock import Clock, MonotonicClock
from gateway.errors import ConfigError
from providers.fakes.speech import SpeechEngine, reply_text

log = logging.getLogger("providers.fakes")

# A fake assistant speaks at most this many digits back (6.4 s of tones): a typed turn or tool call
# of hundreds of digits (the fuzz run sends them) would otherwise be minutes of synthesized audio
MAX_REPLY_DIGITS = 32
FaultKind = Literal["drop", "close", "refuse", "delay", "stall", "malformed", "goaway", "expire"]
FAULT_KINDS: tuple[str, ...] = ("drop", "close", "refuse", "delay", "stall", "malformed", "goaway", "expire")
# Header and query names that carry credentials: never recorded.
SECRET_HEADERS = frozenset({"authorization", "x-goog-api-key", "sec-websocket-protocol", "cookie", "api-key",
                            "openai-api-key", "x-api-key"})
SECRET_QUERY = frozenset({"key", "access_token", "token", "api_key"})


@dataclass(slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    messages: int | None = None
    seconds: float | None = None
    audio_bytes: int | None = None
    code: int | None = None  # close code
    reason: str = ""
    status: int | None = None  # HTTP status for refuse
    retry_after: int | None = None
    ms: float = 0.0  # delay
    time_left: float = 10.0  # goaway
    p: float | None = None  # random drop probability per message
    seed: int = 0

    @property
    def untriggered(self) -> bool:
        return self.messages is None and self.seconds is None and self.audio_bytes is None and self.p is None


_FAULT_FIELD_TYPES: dict[str, type] = {
    "messages": int, "seconds": float, "audio_bytes": int, "code": int, "reason": str, "status": int,
    "retry_after": int, "ms": float, "time_left": float, "p": float, "seed": int,
}


def _parse_conn(conn: int | str) -> tuple[int, int] | None:
    if isinstance(conn, int):
        return (conn, conn)
    text = conn.strip()
    if text == "*":
        return None
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
        else:
            lo = hi = int(text)
    except ValueError:
        raise ConfigError(f"fault rule: bad connection selector {text!r}") from None
    if lo < 1 or hi < lo:
        raise ConfigError(f"fault rule: bad connection range {text!r}")
    return (lo, hi)


def _parse_rule(rule: str) -> tuple[tuple[int, int] | None, Fault]:
    conn, sep, rest = rule.partition(":")
    if not sep:
        raise ConfigError(f"fault rule {rule!r}: expected <conn>:<kind>[,key=value...]")
    kind, *pairs = [p.strip() for p in rest.split(",")]
    if kind not in FAULT_KINDS:
        raise ConfigError(f"fault rule {rule!r}: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})")
    values: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or key not in _FAULT_FIELD_TYPES:
            raise ConfigError(f"fault rule {rule!r}: bad option {pair!r}")
        try:
            values[key] = _FAULT_FIELD_TYPES[key](value.strip())
        except ValueError:
            raise ConfigError(f"fault rule {rule!r}: bad value for {key}") from None
    fault = Fault(kind=kind, **values)  # type: ignore[arg-type]
    if fault.kind == "refuse" and fault.status not in (401, 403, 429, 500, 503):
        raise ConfigError(f"fault rule {rule!r}: refuse needs status=401|403|429|500|503")
    return _parse_conn(conn), fault


@dataclass(slots=True)
class FaultScript:
    rules: list[tuple[tuple[int, int] | None, Fault]] = field(default_factory=list)  # (range or None=*, fault)

    @classmethod
    def parse(cls, spec: str | None) -> FaultScript:
        """Parse the SPEC grammar above; a bad SPEC raises ConfigError naming the rule."""
        script = cls()
        for rule in (spec or "").split(";"):
            if rule.strip():
                script.rules.append(_parse_rule(rule.strip()))
        return script

    def add(self, conn: int | str, fault: Fault) -> FaultScript:
        """Tests: script.add(1, Fault(kind="drop", audio_bytes=16000)). conn: int, "2-4" or "*"."""
        self.rules.append((_parse_conn(conn), fault))
        return self

    def for_connection(self, number: int) -> list[Fault]:
        return [f for rng, f in self.rules if rng is None or rng[0] <= number <= rng[1]]


@dataclass(slots=True)
class ConnectionRecord:
    number: int
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)  # secrets removed
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, secrets removed
    auth: str = ""  # how the client authenticated, e.g. "header:x-goog-api-key" (never the secret)
    refused: int | None = None  # HTTP status when the upgrade was refused
    messages: list[Any] = field(default_factory=list)  # every client text message, parsed JSON (or raw str)
    setup: dict[str, Any] | None = None  # Gemini setup / OpenAI last session.update / Deepgram query
    items: list[dict[str, Any]] = field(default_factory=list)  # conversation items / clientContent turns received
    audio: bytearray = field(default_factory=bytearray)  # input audio as PCM16 at `audio_rate_hz`
    audio_rate_hz: int = 16000
    audio_chunks: int = 0  # audio messages received
    digits: str = ""  # DTMF digits heard, in order (the recognizer's words)
    transcripts: list[str] = field(default_factory=list)  # finalized user utterances (text)
    faults_fired: list[str] = field(default_factory=list)  # kinds, in the order they fired
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific per-connection state
    replies: list[str] = field(default_factory=list)  # what the fake said in synthesized speech (text)
    close_code: int | None = None
    closed_by: Literal["client", "server", "fault", None] = None


# -- the DTMF dialect -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str  # DTMF digits as a word, e.g. "1234#"; "" for plain speech
    start_s: float
    end_s: float
    audio: bytes  # PCM16 at the recognizer rate (for the parrot echo of plain speech)
    is_dtmf: bool


@dataclass(frozen=True, slots=True)
class SpeechStart:
    at_s: float


@dataclass(frozen=True, slots=True)
class PartialWords:
    text: str  # digits so far in the current utterance
    start_s: float
    end_s: float


DialectEvent = SpeechStart | PartialWords | Utterance


def energy_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(samples.astype(np.float64)))))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class DialectRecognizer:
    """Feed PCM16 at `sample_rate_hz`; get SpeechStart / PartialWords / Utterance events.

    Audio is analysed in 10 ms blocks of stream time, so any chunking gives the same events. A block is
    speech when its level exceeds `speech_threshold_dbfs`. An utterance ends
    after `end_silence_ms` of non-speech (stream time); its `end_s` is the end of its last speech block.
    Digits come from audio.dtmf.DtmfDetector (reported when each tone ends)."""

    BLOCK_MS = 10

    def __init__(self, sample_rate_hz: int, *, end_silence_ms: int = 300, speech_threshold_dbfs: float = -45.0) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.end_silence_s = end_silence_ms / 1000.0
        self.speech_threshold_dbfs = speech_threshold_dbfs
        self._detector = DtmfDetector(sample_rate_hz)
        self._block_samples = sample_rate_hz * self.BLOCK_MS // 1000
        self._pending = bytearray()  # bytes not yet forming a whole block (odd byte carried too)
        self._samples_done = 0  # samples analysed in whole blocks
        self._in_utterance = False
        self._utt_start_s = 0.0
        self._last_speech_end_s = 0.0
        self._digits = ""
        self._utt_audio = bytearray()
        self._utt_audio_speech_len = 0  # bytes of _utt_audio up to the end of the last speech block

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio fed so far (including a partial block not yet analysed)."""
        return (self._samples_done + len(self._pending) // 2) / self.sample_rate_hz

    @property
    def in_utterance(self) -> bool:
        return self._in_utterance

    def feed(self, pcm16: bytes) -> list[DialectEvent]:
        self._pending += pcm16
        events: list[DialectEvent] = []
        block_bytes = self._block_samples * 2
        whole = len(self._pending) - len(self._pending) % block_bytes
        for offset in range(0, whole, block_bytes):
            self._analyse(bytes(self._pending[offset:offset + block_bytes]), events)
        del self._pending[:whole]
        return events

    def flush(self) -> list[DialectEvent]:
        """End of stream (Finalize/CloseStream): close any open utterance."""
        events: list[DialectEvent] = []
        tail = bytes(self._pending[: len(self._pending) - len(self._pending) % 2])
        self._pending.clear()
        if tail:
            self._analyse(tail, events)
        for digit in self._detector.flush():
            self._add_digit(digit.digit, digit.end_s, events)
        if self._in_utterance:
            self._end_utterance(events)
        return events

    def _analyse(self, block: bytes, events: list[DialectEvent]) -> None:
        samples = np.frombuffer(block, dtype="<i2")
        t0 = self._samples_done / self.sample_rate_hz
        self._samples_done += samples.size
        t1 = self._samples_done / self.sample_rate_hz
        for digit in self._detector.feed(block):
            self._add_digit(digit.digit, digit.end_s, events)
        # Level alone decides speech: the detector's tones need >= -38 dBFS, above the threshold, and its
        # in_tone flag lags a tone's end by two blocks.
        speech = energy_dbfs(samples) > self.speech_threshold_dbfs
        if speech:
            if not self._in_utterance:
                self._begin(t0, events)
            self._utt_audio += block
            self._utt_audio_speech_len = len(self._utt_audio)
            self._last_speech_end_s = t1
        elif self._in_utterance:
            self._utt_audio += block
            if t1 - self._last_speech_end_s >= self.end_silence_s - 1e-9:
                self._end_utterance(events)

    def _begin(self, at_s: float, events: list[DialectEvent]) -> None:
        self._in_utterance = True
        self._utt_start_s = at_s
        self._last_speech_end_s = at_s
        self._digits = ""
        self._utt_audio.clear()
        self._utt_audio_speech_len = 0
        events.append(SpeechStart(at_s))

    def _add_digit(self, digit: str, end_s: float, events: list[DialectEvent]) -> None:
        if not self._in_utterance:  # a tone too short for the level check; still a word
            self._begin(end_s, events)
        self._digits += digit
        self._last_speech_end_s = max(self._last_speech_end_s, end_s)
        events.append(PartialWords(self._digits, self._utt_start_s, end_s))

    def _end_utterance(self, events: list[DialectEvent]) -> None:
        audio = bytes(self._utt_audio[: self._utt_audio_speech_len])
        events.append(Utterance(self._digits, self._utt_start_s, self._last_speech_end_s, audio,
                                bool(self._digits)))
        self._in_utterance = False
        self._digits = ""
        self._utt_audio.clear()
        self._utt_audio_speech_len = 0


# -- the server base --------------------------------------------------------------------------------------


class FaultFired(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised out of fault helpers after a drop/close/stall ended the connection; the base catches it."""


@dataclass(slots=True)
class _ConnectionFaults:
    """Per-connection fault state: which faults are still armed and the counters that trigger them."""

    armed: list[Fault]
    rngs: dict[int, random.Random]
    messages: int = 0
    audio_bytes: int = 0
    delay_s: float = 0.0
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    timers: list[asyncio.Task[None]] = field(default_factory=list)


class FakeServer:
    """Base class. Subclasses implement `handler(ws, record)` and auth/paths (see the module docstring).

    Usage in tests:
        fake = FakeGemini(api_key="test-key", faults=FaultScript.parse("1:drop,messages=5"))
        await fake.start()          # 127.0.0.1, port 0 unless given
        fake.url                    # "ws://127.0.0.1:PORT" (origin; wss:// with TLS)
        fake.connections            # list[ConnectionRecord], 1-based numbers
        await fake.stop()
    Also usable as `async with FakeGemini(...) as fake:`.
    """

    provider: str = ""
    close_timeout_s: float = 2.0
    stall_max_s: float = 60.0  # wall time a stalled connection is kept before its socket is cut
    max_message_bytes: int = 16 * 1024 * 1024

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: Any = None, faults: FaultScript | None = None, seed: int = 0,
                 clock: Clock | None = None, record_limit_bytes: int | None = None,
                 keep_connections: int | None = None, speech: SpeechEngine | None = None) -> None:
        self.api_key = api_key
        self.speech = speech  # None: plain speech is echoed back (parrot); see providers/fakes/speech.py
        # Long-lived use (the gateway's embedded default): keep only the newest `record_limit_bytes` of
        # each connection's recorded audio (and as many recent messages), and only the newest
        # `keep_connections` finished records. Tests leave both None: everything is kept.
        self.record_limit_bytes = record_limit_bytes
        self.keep_connections = keep_connections
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.faults = faults or FaultScript()
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock: Clock = clock or MonotonicClock()
        self.connections: list[ConnectionRecord] = []
        self._numbered = 0
        self._server: Server | None = None
        self._records: dict[ServerConnection, ConnectionRecord] = {}
        self._fault_state: dict[int, _ConnectionFaults] = {}  # record.number -> state
        self._done: dict[int, asyncio.Event] = {}
        self._live: set[ServerConnection] = set()
        self._fault_fired = asyncio.Condition()

    # -- lifecycle ------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake server not started")
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> FakeServer:
        self._server = await serve(
            self._run_connection, self.host, self.port, ssl=self.ssl_context,
            process_request=self._process_request, process_response=self._process_response,
            select_subprotocol=self.select_subprotocol,
            compression=None, max_size=self.max_message_bytes, close_timeout=self.close_timeout_s,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        for ws in list(self._live):  # stalled links cannot finish a closing handshake: cut them
            state = self._fault_state.get(self._records[ws].number)
            if state is not None and state.stalled.is_set():
                ws.transport.abort()
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def cut(self, number: int | None = None, *, code: int | None = None, reason: str = "") -> None:
        """Tests: end live connection `number` (default: the newest) NOW — abruptly (TCP abort, no
        close frame) when `code` is None, else with a close frame. Recorded as closed by a fault."""
        for ws in list(self._live):
            record = self._records[ws]
            if number is None and record is not self.connections[-1] or number not in (None, record.number):
                continue
            record.closed_by = "fault"
            if code is None:
                ws.transport.abort()
            else:
                await ws.close(code, reason)

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def connection_done(self, number: int, timeout_s: float = 5.0) -> ConnectionRecord:
        """Wait until connection `number` has ended (handler returned, socket closed) and return its record."""
        event = self._done.setdefault(number, asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout_s)
        record = self._record(number)
        assert record is not None, f"connection {number} is no longer kept (keep_connections)"
        return record

    def _record(self, number: int) -> ConnectionRecord | None:
        return next((r for r in self.connections if r.number == number), None)

    async def fault_fired(self, number: int, kind: FaultKind, timeout_s: float = 5.0) -> ConnectionRecord:
        """Wait until a fault of `kind` has fired on connection `number` (for a stall: reading is already
        paused when this returns)."""
        async with asyncio.timeout(timeout_s), self._fault_fired:
            await self._fault_fired.wait_for(
                lambda: (r := self._record(number)) is not None and kind in r.faults_fired)
        record = self._record(number)
        assert record is not None
        return record

    # -- hooks for subclasses -----------------------------------------------------------------------------
    def key_ok(self, key: str | None) -> bool:
        """With `api_key` set only that key is accepted; without it any non-empty key is."""
        if not key:
            return False
        if self.api_key is None:
            return True
        return hmac.compare_digest(key.encode(), self.api_key.encode())

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        """Return `connection.respond(status, body)` to refuse the upgrade (bad path, credentials), else None."""
        return None

    def decorate_response(self, connection: ServerConnection, request: Request, response: Response,
                          record: ConnectionRecord) -> None:
        """Add provider headers to a handshake response (called for 101 and for every refusal)."""

    def select_subprotocol(self, connection: ServerConnection, offered: Iterable[str]) -> str | None:
        return None

    def refusal_body(self, status: int) -> str:
        """Body text of a `refuse` fault response; subclasses mimic their provider's error body."""
        return f"{status} {HTTPStatus(status).phrase}\n"

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        raise NotImplementedError

    def on_fault(self, record: ConnectionRecord, fault: Fault) -> None:
        """Called as a fault fires, before it acts (subclasses may count or signal it)."""

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        """Perform a provider-specific fault (malformed, goaway, expire). Default: a malformed text frame
        for `malformed`, a 1001 close for the others; subclasses send their provider's shapes."""
        if fault.kind == "malformed":
            await self.send(ws, '{"type": ')
        else:
            await ws.close(1001, "going away")

    # -- helpers for subclasses ---------------------------------------------------------------------------
    async def hear(self, record: ConnectionRecord, pcm16: bytes, sample_rate_hz: int) -> str | None:
        """The words of a plain-speech utterance, or None when this fake has no speech engine (or it
        failed: then the caller falls back to the parrot echo). Recorded in `record.transcripts`."""
        if self.speech is None:
            return None
        try:
            text = await self.speech.transcribe(pcm16, sample_rate_hz)
        except Exception:  # a broken engine must not end the call: the parrot still answers
            log.exception("fake %s conn %d: speech recognition failed", self.provider, record.number)
            return None
        record.transcripts.append(text)
        return text

    async def speak(self, record: ConnectionRecord, heard: str, sample_rate_hz: int,
                    voice: str | None = None) -> tuple[str, bytes]:
        """The assistant's answer to `heard`: (its text, PCM16 at `sample_rate_hz`). Needs `speech`."""
        assert self.speech is not None
        text = reply_text(heard)
        try:
            audio = await self.speech.synthesize(text, sample_rate_hz, voice)
        except Exception:
            log.exception("fake %s conn %d: speech synthesis failed", self.provider, record.number)
            audio = b""
        record.replies.append(text)
        return text, audio

    async def send(self, ws: ServerConnection, frame: str | bytes) -> None:
        """Send one server message, after any `delay` fault; blocks forever while the link is stalled."""
        record = self._records.get(ws)
        state = self._fault_state.get(record.number) if record is not None else None
        if state is not None:
            if state.stalled.is_set():
                await ws.wait_closed()  # a stalled server never writes again
                raise FaultFired("stall")
            if state.delay_s:
                await self.clock.sleep(state.delay_s)
        await ws.send(frame)

    async def session_ready(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        """The provider's setup is done: fire the faults that have no trigger."""
        state = self._fault_state[record.number]
        for fault in [f for f in state.armed if f.untriggered]:
            await self._fire(ws, record, fault)

    async def fault_tick(self, ws: ServerConnection, record: ConnectionRecord, *, messages: int = 1,
                         audio_bytes: int = 0) -> None:
        """Count one client message (and its decoded input audio bytes) and fire faults now due."""
        state = self._fault_state[record.number]
        state.messages += messages
        state.audio_bytes += audio_bytes
        if self.record_limit_bytes is not None:
            self._trim(record, self.record_limit_bytes)
        for fault in list(state.armed):
            due = ((fault.messages is not None and state.messages >= fault.messages)
                   or (fault.audio_bytes is not None and state.audio_bytes >= fault.audio_bytes))
            if fault.p is not None and messages:
                due = due or state.rngs[id(fault)].random() < fault.p
            if due:
                await self._fire(ws, record, fault)

    # -- internals ------------------------------------------------------------------------------------------
    async def _fire(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        state = self._fault_state[record.number]
        if fault.p is None and fault in state.armed:
            state.armed.remove(fault)  # one-shot; random drops stay armed
        record.faults_fired.append(fault.kind)
        self.on_fault(record, fault)
        log.info("fake %s conn %d: fault %s", self.provider, record.number, fault.kind)
        if fault.kind == "stall":  # before anyone waiting for the fault can act on it
            state.stalled.set()
            ws.transport.pause_reading()  # a black hole: no reads, so no pongs and no close handshake
        async with self._fault_fired:
            self._fault_fired.notify_all()
        if fault.kind == "drop":
            record.closed_by = "fault"
            ws.transport.abort()
            raise FaultFired(fault.kind)
        if fault.kind == "close":
            record.closed_by = "fault"
            await ws.close(fault.code or 1011, fault.reason)
            raise FaultFired(fault.kind)
        if fault.kind == "stall":
            record.closed_by = "fault"
            # Paused reading also hides the client's FIN: the socket is cut after `stall_max_s` (or at stop()).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), self.stall_max_s)
            ws.transport.abort()
            await ws.wait_closed()
            raise FaultFired(fault.kind)
        await self.inject_fault(ws, record, fault)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self._numbered += 1  # not len(connections): old records may have been let go
        number = self._numbered
        split = urlsplit(request.path)
        record = ConnectionRecord(
            number=number, path=split.path,
            query={k: v for k, v in parse_qsl(split.query, keep_blank_values=True) if k not in SECRET_QUERY},
            headers={k.lower(): v for k, v in request.headers.raw_items() if k.lower() not in SECRET_HEADERS},
        )
        self.connections.append(record)
        self._records[connection] = record
        faults = self.faults.for_connection(number)
        for fault in faults:
            if fault.kind == "refuse":
                return self._refuse(connection, record, fault.status or 503, self.refusal_body(fault.status or 503),
                                    retry_after=fault.retry_after if fault.status == 429 else None)
        refusal = self.check_request(connection, request, record)
        if refusal is not None:
            return self._refused(record, refusal)
        self._fault_state[number] = _ConnectionFaults(
            armed=[f for f in faults if f.kind not in ("refuse", "delay")],
            rngs={id(f): random.Random(f.seed * 1_000_003 + number) for f in faults if f.p is not None},
            delay_s=sum(f.ms for f in faults if f.kind == "delay") / 1000.0,
        )
        return None

    def _refuse(self, connection: ServerConnection, record: ConnectionRecord, status: int, body: str,
                *, retry_after: int | None = None) -> Response:
        response = connection.respond(status, body)
        if status == 429:
            response.headers["Retry-After"] = str(retry_after if retry_after is not None else 1)
        return self._refused(record, response)

    def _refused(self, record: ConnectionRecord, response: Response) -> Response:
        record.refused = response.status_code
        record.closed_by = "server"
        self._done.setdefault(record.number, asyncio.Event()).set()
        return response

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        record = self._records.get(connection)
        if record is not None:
            self.decorate_response(connection, request, response, record)

    async def _run_connection(self, ws: ServerConnection) -> None:
        record = self._records[ws]
        state = self._fault_state[record.number]
        self._live.add(ws)
        for fault in [f for f in state.armed if f.seconds is not None]:
            state.timers.append(asyncio.create_task(self._fire_later(ws, record, fault)))
        try:
            await self.handler(ws, record)
        except (FaultFired, ConnectionClosed):
            pass
        except Exception:
            log.exception("fake %s conn %d: handler failed", self.provider, record.number)
            await ws.close(1011, "Internal error occurred.")
        finally:
            for timer in state.timers:
                timer.cancel()
            self._live.discard(ws)
            if not state.stalled.is_set():
                with contextlib.suppress(Exception):
                    await ws.close()
            self._finish(ws, record)

    async def _fire_later(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        await self.clock.sleep(fault.seconds or 0.0)
        state = self._fault_state[record.number]
        if fault not in state.armed:
            return
        with contextlib.suppress(FaultFired, ConnectionClosed):
            await self._fire(ws, record, fault)

    def _finish(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        self._records.pop(ws, None)
        self._fault_state.pop(record.number, None)
        record.close_code = ws.close_code
        if record.closed_by is None:
            record.closed_by = "client" if ws.protocol.close_rcvd_then_sent else "server"
        self._done.setdefault(record.number, asyncio.Event()).set()
        if self.keep_connections is not None and len(self.connections) > self.keep_connections:
            for old in self.connections[:-self.keep_connections]:
                self._done.pop(old.number, None)
            del self.connections[:-self.keep_connections]

    @staticmethod
    def _trim(record: ConnectionRecord, limit_bytes: int) -> None:
        if len(record.audio) > 2 * limit_bytes:  # trim in steps, not on every message
            del record.audio[:len(record.audio) - limit_bytes]
        if len(record.messages) > 2 * 256:
            del record.messages[:-256]


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """Server-side TLS context for `wss://` (google-genai only speaks TLS with an API key)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def header(request: Request, name: str) -> str | None:
    """A request header by case-insensitive name, or None."""
    headers: Headers = request.headers
    return headers.get(name)


__all__ = [
    "FAULT_KINDS", "MAX_REPLY_DIGITS", "ConnectionRecord", "DialectEvent", "DialectRecognizer", "Fault", "FaultFired",
    "FaultKind", "FaultScript", "FakeServer", "PartialWords", "SpeechStart", "Utterance", "energy_dbfs",
    "header", "tls_context",
]
