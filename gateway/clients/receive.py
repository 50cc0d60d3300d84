"""The receive loop every client connection shares: receive a frame, check it against the
connection's ceilings, hand it to the protocol, keep going after a client error.

Invariant: nothing a client sends ends the loop except a disconnect or the protocol saying the call
is over; a client error (bad input, a rate ceiling) goes to the protocol's handler and the call goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket

from gateway import metrics
from gateway.config import Settings
from gateway.errors import ClientError, RateLimited
from gateway.limits import ConnectionLimits, FrameRateLimiter

Dispatch = Callable[[bytes | str], Awaitable[bool]]  # True: the call is over
OnError = Callable[[ClientError], Awaitable[None]]


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The configured ceilings of one client connection (before the call's format refines them)."""
    return ConnectionLimits(
        max_message_bytes=settings.max_message_bytes, max_frames_per_s=settings.max_frames_per_s,
        max_bytes_per_s=settings.max_bytes_per_s or ConnectionLimits().max_bytes_per_s,
        idle_timeout_s=settings.idle_timeout_s)


async def receive_frames(ws: WebSocket, limiter: FrameRateLimiter, client: str, dispatch: Dispatch,
                         on_error: OnError) -> None:
    """Until the client disconnects (WebSocketDisconnect may also escape) or `dispatch` says the
    call is over. A rate-ceiling hit is counted here, per client kind."""
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        data = msg.get("bytes")
        frame: bytes | str | None = data if data is not None else msg.get("text")
        if frame is None:
            continue
        try:
            # bytes on the wire; an ASCII text frame (every Twilio/Telnyx media message) is its length
            limiter.check(len(frame) if isinstance(frame, bytes) or frame.isascii() else len(frame.encode()))
            if await dispatch(frame):
                return
        except ClientError as e:
            if isinstance(e, RateLimited):
                metrics.rate_limited(client).inc()
            await on_error(e)
