"""The receive loop every client connection shares: receive a frame, check it against the
connection's ceilings, hand it to the protocol, keep going after a client error.

Invariant: nothing a client sends ends the loop except a disconnect or the protocol saying the call
is over; a client error (bad input, a rate ceiling) goes to the protocol's handler and the call goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from gateway import metrics
from gateway.config import Settings
from gateway.errors import ClientError, RateLimited
from gateway.limits import ConnectionLimits, FrameRateLimiter

Dispatch = Callable[[bytes | str], Awaitable[bool | None]]  # True: the call is over
OnError = Callable[[ClientError], Awaitable[None]]


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The configured ceilings of one client connection (before the call's format refines them)."""
    return ConnectionLimits(
        max_message_bytes=settings.max_message_bytes, max_frames_per_s=settings.max_frames_per_s,
        max_bytes_per_s=settings.max_bytes_per_s or ConnectionLimits().max_bytes_per_s,
        idle_timeout_s=settings.idle_timeout_s)


async def receive_frames(ws: web.WebSocketResponse, limiter: FrameRateLimiter, client: str, dispatch: Dispatch,
                         on_error: OnError) -> None:
    """Until the client disconnects (a close, an error such as an oversized frame: aiohttp has then
    closed the socket with 1009) or `dispatch` says the call is over. A rate-ceiling hit is counted
    here, per client kind. Frames go straight from aiohttp's reader to `dispatch`: no queue."""
    receive = ws.receive
    while True:
        msg = await receive()
        kind = msg.type
        frame: bytes | str
        if kind is _BINARY:
            frame = msg.data
            size = len(frame)
        elif kind is _TEXT:
            text: str = msg.data
            frame = text
            # bytes on the wire; an ASCII text frame (every Twilio/Telnyx media message) is its length
            size = len(text) if text.isascii() else len(text.encode())
        elif kind in _OVER:
            return
        else:  # PING/PONG when autoping is off: nothing to do
            continue
        try:
            limiter.check(size)
            if await dispatch(frame):
                return
        except ClientError as e:
            if isinstance(e, RateLimited):
                metrics.rate_limited(client).inc()
            await on_error(e)


_OVER = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
# enum members as module constants: on Python 3.11 `Enum.MEMBER` is a ~0.13 µs lookup, and these
# are read per frame
_BINARY, _TEXT = WSMsgType.BINARY, WSMsgType.TEXT
