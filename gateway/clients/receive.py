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
from gateway.ws_direct import FrameTap, Pending

Dispatch = Callable[[bytes | str], Pending]  # None: done; else await it (True: the call is over)
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
    here, per client kind. Frames go from aiohttp's parser straight to `dispatch`, in its callback
    (gateway/ws_direct.py): no queue, no task wake-up, no coroutine unless something must wait."""
    check = limiter.check

    async def failed(e: ClientError) -> None:
        if isinstance(e, RateLimited):
            metrics.rate_limited(client).inc()
        await on_error(e)

    async def finish(pending: Awaitable[bool | None]) -> bool | None:
        try:
            return await pending
        except ClientError as e:
            await failed(e)
            return None

    def on_message(frame: bytes | str) -> Pending:
        # bytes on the wire; an ASCII text frame (every Twilio/Telnyx media message) is its length
        size = len(frame) if type(frame) is bytes or frame.isascii() else len(frame.encode())  # type: ignore[union-attr]
        try:
            check(size)
            pending = dispatch(frame)
        except ClientError as e:
            return failed(e)
        return finish(pending) if pending is not None else None

    tap = FrameTap(ws)
    while True:
        msg = await tap.run(on_message)
        if msg is None or msg.type in _OVER:
            return
        # else PING/PONG when autoping is off: nothing to do


_OVER = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})

