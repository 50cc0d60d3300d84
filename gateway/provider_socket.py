"""The WebSocket client for provider links, on aiohttp (its C-accelerated frame reader costs about
half of the pure-Python client's CPU per frame: docs/architecture.md).

`ProviderConnector.connect()` performs the upgrade under a deadline and returns a `ProviderSocket`;
a refused upgrade surfaces as `HandshakeRefused(status)` for the adapter to classify. `receive()`
returns a frame or a `Closed(code, reason)`; an abrupt TCP loss reads as code 1006.

Stall detection is ours, not aiohttp's `heartbeat`: after `stall_after_s` with nothing received the
socket pings, and with nothing received (the pong or any frame) within half as long again it is dead:
the connection is cut and `receive()` returns `Closed(1006)`. aiohttp's heartbeat does the same but
re-arms a timer through a loop callback on every received message (~1.5 µs per reply frame at 100
calls, benchmarks/PROFILE.md); here a message costs one clock read, and the timer wakes up once per
`stall_after_s` of traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import socket
import ssl as ssl_module
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import aiohttp

from gateway.ws_direct import OP_BINARY, OP_TEXT, FrameTap, Handler, Pending, frame_sender
from providers.base import ConnectRequest, Frame


class HandshakeRefused(Exception):
    def __init__(self, status: int, body: str = "", *, retry_after_s: float | None = None) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s  # the response's Retry-After, when it had one


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; None when absent or unreadable. Capped at an
    hour so a hostile header cannot park a call for days."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 3600.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    delay = when.timestamp() - (time.time() if now is None else now)  # wall clock: the header is a date
    return min(max(0.0, delay), 3600.0)


class ConnectTimeout(Exception):
    pass


class ConnectFailed(Exception):
    """TCP/TLS failure before any HTTP status (refused, reset, DNS)."""


# enum members as module constants: on Python 3.11 `Enum.MEMBER` is a ~0.13 µs lookup, and these
# are read per frame
_TEXT, _BINARY = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
_PING, _PONG = aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG
_monotonic = time.monotonic


def _cut(ws: aiohttp.ClientWebSocketResponse) -> None:
    """End a stalled connection now: shut the TCP socket down (through a duplicate of its descriptor,
    the only handle aiohttp's public API gives), so the pending read sees end-of-stream at once. A
    close handshake would wait for a peer that no longer answers."""
    sock = ws.get_extra_info("socket")
    fileno = sock.fileno() if sock is not None else -1
    if fileno < 0:
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as dup:
        dup.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True, slots=True)
class Closed:
    code: int | None
    reason: str


class ProviderSocket:
    __slots__ = ("_ws", "closed_by_us", "_stall_after_s", "_rx_at", "_ping_at", "_watch", "_pinger", "_reading",
                 "stalled", "_tap", "_write")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, stall_after_s: float | None = None) -> None:
        self._ws = ws
        self.closed_by_us = False
        self.stalled = False  # the stall watchdog cut the connection
        self._stall_after_s = stall_after_s
        self._rx_at = _monotonic()  # when anything last came from the provider
        self._reading = False  # a receive() is waiting: silence only counts while someone listens
        self._tap = FrameTap(ws)  # read(): frames handled in aiohttp's parser callback (gateway/ws_direct.py)
        self._write = frame_sender(ws)
        self._ping_at = 0.0
        self._pinger: asyncio.Task[None] | None = None
        self._watch: asyncio.TimerHandle | None = None
        if stall_after_s:
            self._watch = asyncio.get_running_loop().call_later(stall_after_s, self._check_silence)

    # -- stall watchdog (see the module docstring) --------------------------------------------------
    def _check_silence(self) -> None:
        assert self._stall_after_s is not None
        if self._ws.closed:  # closed meanwhile (and its descriptor perhaps reused): nothing to watch
            self._watch = None
            return
        loop = asyncio.get_running_loop()
        silent_s = _monotonic() - self._rx_at
        if not self._listening:  # nobody reads it now (a handover's next socket): what arrived is queued
            silent_s = 0.0
        if silent_s < self._stall_after_s:  # traffic since: look again when it would be that long
            self._watch = loop.call_later(self._stall_after_s - silent_s, self._check_silence)
            return
        self._ping_at = _monotonic()
        self._pinger = loop.create_task(self._ping())
        self._watch = loop.call_later(self._stall_after_s / 2, self._check_pong)

    async def _ping(self) -> None:
        with contextlib.suppress(Exception):  # a dead transport shows in receive(), not here
            await self._ws.ping()

    def _check_pong(self) -> None:
        if self._ws.closed:
            self._watch = None
            return
        if self._rx_at >= self._ping_at or not self._listening:  # the pong, or anything else: alive
            self._check_silence()
            return
        self._watch = None
        self.stalled = True
        _cut(self._ws)

    def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None

    @property
    def _listening(self) -> bool:
        """Someone waits for the provider's next message (silence only counts then)."""
        return self._reading or self._tap.waiting

    def send_now(self, frame: Frame) -> Awaitable[None] | None:
        """Write the frame now; returns None, or the drain wait to await when the send buffer is full
        (the frame is written either way). Raises ConnectionError when the socket is closing."""
        write = self._write  # (a callable attribute: `self._write(…)` is not specialised on Python 3.11)
        if type(frame) is str:
            return write(frame.encode(), OP_TEXT)
        return write(frame, OP_BINARY)  # type: ignore[arg-type]

    def send(self, frame: Frame) -> Awaitable[None]:
        """Await it. Returns aiohttp's own send (one coroutine level fewer per frame than an
        `async def` wrapper: this is on every uplink frame)."""
        if isinstance(frame, str):
            return self._ws.send_str(frame)
        return self._ws.send_bytes(frame)

    async def read(self, on_frame: Handler) -> Closed | None:
        """Hand each frame to `on_frame` (see gateway/ws_direct.py: it runs in aiohttp's parser
        callback, returns None or what to await) until a pending result says True (returns None) or
        the connection closes (returns how)."""
        tap = self._tap

        def on_message(frame: Frame) -> Pending:
            self._rx_at = _monotonic()
            return on_frame(frame)

        while True:
            msg = await tap.run(on_message)
            if msg is None:
                return None
            self._rx_at = _monotonic()
            if not await self._ping_or_pong(msg):
                return self._closed(msg)

    async def receive(self) -> Frame | Closed:
        while True:
            self._reading = True
            try:
                msg = await self._ws.receive()
            finally:
                self._reading = False
            self._rx_at = _monotonic()
            if msg.type is _TEXT or msg.type is _BINARY:
                return msg.data
            if not await self._ping_or_pong(msg):
                return self._closed(msg)

    async def _ping_or_pong(self, msg: aiohttp.WSMessage) -> bool:
        """True for a ping (answered: autoping is off, the watchdog must see pongs) or a pong."""
        if msg.type is _PING:
            with contextlib.suppress(Exception):
                await self._ws.pong(msg.data)
            return True
        return msg.type is _PONG

    def _closed(self, msg: aiohttp.WSMessage) -> Closed:
        t = msg.type
        self._stop_watch()
        if self.stalled:
            return Closed(1006, "")
        if t is aiohttp.WSMsgType.CLOSE:
            return Closed(msg.data if isinstance(msg.data, int) else self._ws.close_code, msg.extra or "")
        # CLOSED / ERROR / CLOSING: the transport went away without (or after) a close frame
        code = self._ws.close_code
        if code is None or code == 1000 and t is aiohttp.WSMsgType.ERROR:
            code = 1006
        return Closed(code, "")

    @property
    def is_closed(self) -> bool:
        return self._ws.closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_by_us = True
        self._stop_watch()
        if not self._ws.closed:
            self._tap.interrupt()  # a read waiting in the tap ends now, as a pending receive() would
            try:
                await asyncio.wait_for(self._ws.close(code=code, message=reason.encode()), 2.0)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass


class ProviderConnector:
    """Owns one aiohttp ClientSession for all provider links of the process."""

    def __init__(self, *, ssl_context: ssl_module.SSLContext | None = None, heartbeat_s: float = 20.0) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl_context
        # the stall watchdog (ProviderSocket) cuts a link when nothing, not even a pong, comes within
        # heartbeat/2 of its ping; 20 s → 10 s grace. Gemini's pongs can take many seconds
        # (docs/architecture.md), so keep this generous.
        self.heartbeat_s = heartbeat_s

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl if self._ssl is not None else True),
            )
        return self._session

    async def connect(self, req: ConnectRequest, *, timeout_s: float,
                      heartbeat_s: float | None = None) -> ProviderSocket:
        """`heartbeat_s` (default: the connector's): ping after that long without receiving anything
        from the provider, and close as 1006 when no pong comes within half of it (stall detection)."""
        try:
            async with asyncio.timeout(timeout_s):
                ws = await self._client().ws_connect(
                    req.url, headers=dict(req.headers), protocols=req.subprotocols,
                    max_msg_size=16 * 1024 * 1024, compress=0, autoclose=True,
                    autoping=False,  # ProviderSocket answers pings and watches for pongs itself
                )
        except aiohttp.WSServerHandshakeError as e:
            retry_after = e.headers.get("Retry-After") if e.headers is not None else None
            raise HandshakeRefused(e.status, e.message or "", retry_after_s=parse_retry_after(retry_after)) from None
        except TimeoutError:
            raise ConnectTimeout(f"connect timed out after {timeout_s:.1f}s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ConnectFailed(type(e).__name__) from None
        return ProviderSocket(ws, stall_after_s=heartbeat_s or self.heartbeat_s)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
