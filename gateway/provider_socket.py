"""The WebSocket client for provider links, on aiohttp (its C-accelerated frame reader costs about
half of the pure-Python client's CPU per frame: docs/architecture.md).

`ProviderConnector.connect()` performs the upgrade under a deadline and returns a `ProviderSocket`;
a refused upgrade surfaces as `HandshakeRefused(status)` for the adapter to classify. `receive()`
returns a frame or a `Closed(code, reason)`; an abrupt TCP loss reads as code 1006.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl as ssl_module
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import aiohttp

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


@dataclass(frozen=True, slots=True)
class Closed:
    code: int | None
    reason: str


class ProviderSocket:
    __slots__ = ("_ws", "closed_by_us")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.closed_by_us = False

    def send(self, frame: Frame) -> Awaitable[None]:
        """Await it. Returns aiohttp's own send (one coroutine level fewer per frame than an
        `async def` wrapper: this is on every uplink frame)."""
        if isinstance(frame, str):
            return self._ws.send_str(frame)
        return self._ws.send_bytes(frame)

    async def receive(self) -> Frame | Closed:
        msg = await self._ws.receive()
        t = msg.type
        if t is _TEXT:
            return msg.data
        if t is _BINARY:
            return msg.data
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
        if not self._ws.closed:
            try:
                await asyncio.wait_for(self._ws.close(code=code, message=reason.encode()), 2.0)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass


class ProviderConnector:
    """Owns one aiohttp ClientSession for all provider links of the process."""

    def __init__(self, *, ssl_context: ssl_module.SSLContext | None = None, heartbeat_s: float = 20.0) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl_context
        # aiohttp closes a link when a pong is late by heartbeat/2; 20 s → 10 s grace. Gemini's
        # pongs can take many seconds (docs/architecture.md), so keep this generous.
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
                    heartbeat=heartbeat_s or self.heartbeat_s, max_msg_size=16 * 1024 * 1024, compress=0,
                    autoclose=True,
                )
        except aiohttp.WSServerHandshakeError as e:
            retry_after = e.headers.get("Retry-After") if e.headers is not None else None
            raise HandshakeRefused(e.status, e.message or "", retry_after_s=parse_retry_after(retry_after)) from None
        except TimeoutError:
            raise ConnectTimeout(f"connect timed out after {timeout_s:.1f}s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ConnectFailed(type(e).__name__) from None
        return ProviderSocket(ws)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
