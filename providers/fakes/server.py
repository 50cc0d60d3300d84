"""The base of the fake provider servers: a websockets asyncio server on 127.0.0.1 (port 0 unless
given), optional TLS, connection numbering from 1 per server instance, handshake refusal faults,
recording (nothing secret, keys or tokens, is ever recorded or logged), start()/stop()/url.

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
import random
import ssl
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway.clock import Clock, MonotonicClock
from providers.fakes.fault_injection import FaultFired, FaultInjection, _ConnectionFaults
from providers.fakes.faults import FaultScript
from providers.fakes.records import SECRET_HEADERS, SECRET_QUERY, ConnectionRecord
from providers.fakes.speech import SpeechEngine, reply_text

log = logging.getLogger("providers.fakes")

class FakeServer(FaultInjection):
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

