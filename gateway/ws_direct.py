"""Frames handled inside aiohttp's frame parser, and written without a coroutine: the per-frame path
of both sockets of a call (the client's and the provider's).

aiohttp's API is pull-based: each message goes onto a reader queue, and the task reading the socket
wakes up to take it (a future, a loop callback, a task step, `receive()`'s checks), and each send is
two coroutines (`send_frame` and the writer's). At 50 frames a second each way per call, that
machinery costs about a sixth of a bare relay's CPU (benchmarks/relay_floor.py measures 0.83× the
relay without it; benchmarks/PROFILE.md, "The floor").

`FrameTap` stands in the connection's parser slot, in front of aiohttp's own parser. While the task
that owns the socket waits in `run()`, each data message the parser queues is taken off the queue
(through aiohttp's `read()`, so its accounting and flow control are aiohttp's) and handed to the
owner's handler at once, inside the parser's callback, as that task: `asyncio.current_task()` and the
task's context variables are the task's. A handler does what it can synchronously and returns None,
or returns an awaitable for what must wait (a full send buffer, a connect, a control message's
handling): the tap then stops taking messages, the task awaits it, and later messages wait on the
queue, in order, as they would for a busy reader.

`frame_sender(ws)` writes a frame as aiohttp's `send_frame` does for an uncompressed frame, and
returns None, or the drain wait when the transport's buffer is over its limit (the frame is already
written then, as with aiohttp).

Both use aiohttp internals (the protocol's `_payload_parser` slot, the reader queue's `_buffer`, the
socket's `_closed` (what its `closed` property returns), the writer's `_write_websocket_frame`,
`_output_size`, `_limit`, `_closing`, the protocol's `_paused` and `_drain_helper`), as of aiohttp 3.14
(3.11 has the tap's but not `_write_websocket_frame`: the sender then awaits `send_frame`). When they
are not as expected, the tap reads with `receive()` and the sender awaits `send_frame`: slower, the
same behaviour.
`tests/test_ws_direct.py` fails when the direct path is not taken on the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task  # what Python 3.12's eager tasks do, on 3.11
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientConnectionResetError, WSCloseCode, WSMessage, WSMsgType, web
from aiohttp.client_ws import ClientWebSocketResponse

AnyWS = web.WebSocketResponse | ClientWebSocketResponse
Pending = Awaitable[bool | None] | None  # None: handled; else await it (True: the owner is done)
Handler = Callable[[Any], Pending]  # the message's data: bytes (binary) or str (text)
Sender = Callable[[bytes, int], Awaitable[None] | None]

OP_TEXT, OP_BINARY = 1, 2
# enum members as module constants: `Enum.MEMBER` is a ~0.13 µs lookup on Python 3.11
_TEXT, _BINARY = WSMsgType.TEXT, WSMsgType.BINARY


def _protocol_of(ws: AnyWS) -> Any:
    if isinstance(ws, ClientWebSocketResponse):
        conn = getattr(ws, "_conn", None)
        return getattr(conn, "protocol", None)
    req = getattr(ws, "_req", None)
    return getattr(req, "protocol", None) if req is not None else None


class FrameTap:
    """Owns the reading of one prepared/connected aiohttp WebSocket: `await run(handler)`.

    aiohttp's protocols ask their payload parser for `feed_data` and `feed_eof` only (client_proto,
    web_protocol). The tap has no `__getattr__` passing other names on to the parser: on Python 3.11 a
    class with `__getattr__` gets none of the interpreter's attribute-access specialisations, and the
    tap's own attributes are read several times per message."""

    __slots__ = ("_ws", "_queue", "_buffered", "_parser", "direct", "_armed", "_wake", "_handler", "_pending",
                 "_error", "_task", "_ctx", "_loop", "_receiving", "_interrupted")

    def __init__(self, ws: AnyWS) -> None:
        self._ws = ws
        self._queue: Any = getattr(ws, "_reader", None)
        protocol = _protocol_of(ws)
        self._parser: Any = getattr(protocol, "_payload_parser", None)
        # the queue's deque (aiohttp binds its popleft/append once: it is never replaced), read here
        # once: the queue's `_buffer` is a Cython property, not specialised by the interpreter
        self._buffered: Any = getattr(self._queue, "_buffer", None)
        self.direct = (self._parser is not None and self._buffered is not None and hasattr(self._queue, "read")
                       and hasattr(self._parser, "feed_eof") and hasattr(ws, "_closed"))
        self._armed = False  # the owner waits in run(): the tap hands messages over itself
        self._receiving = False  # the owner waits in receive() (the tap stands aside)
        self._interrupted = False  # the socket is being closed: run() returns CLOSING
        self._wake: asyncio.Future[None] | None = None
        self._handler: Handler | None = None
        self._pending: Pending = None  # what a handler left to await
        self._error: BaseException | None = None  # what a handler raised
        self._task: asyncio.Task[Any] | None = None
        self._ctx: contextvars.Context | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.direct:
            protocol._payload_parser = self
        if isinstance(ws, TappedWebSocketResponse):
            ws.tap = self

    # -- the parser slot (called by the connection's protocol) ----------------------------------------
    def feed_data(self, data: bytes) -> Any:
        result = self._parser.feed_data(data)
        if self._armed:
            wake = self._wake
            if wake is not None and not wake.done():  # not when the owner was cancelled meanwhile
                self._take_queued()
        return result

    def feed_eof(self) -> None:
        self._parser.feed_eof()
        self._hand_over()

    def _take_queued(self) -> None:
        queue, buffered, ws = self._queue, self._buffered, self._ws
        handler, ctx, loop, task = self._handler, self._ctx, self._loop, self._task
        assert handler is not None and ctx is not None and loop is not None and task is not None
        # per message: WSMessage fields by index and `ws._closed` rather than the `closed` property
        # (named-tuple fields and properties are not specialised by Python 3.11's interpreter)
        while buffered:
            kind = buffered[0][0][0]  # (message, size) → message.type
            if (kind is not _TEXT and kind is not _BINARY) or ws._closed:
                break  # a control frame, or we are closing: the owner reads it with receive()
            read = queue.read()
            try:
                read.send(None)  # a message is queued: aiohttp's read() returns it at once
            except StopIteration as done:
                msg: WSMessage = done.value
            else:  # pragma: no cover - aiohttp's read() changed: let the owner read
                read.close()
                break
            try:
                _enter_task(loop, task)
            except RuntimeError:  # pragma: no cover - a task is running (not a loop callback): let it read
                self._pending = _ready(msg[1], handler)
                break
            try:
                pending = ctx.run(handler, msg[1])  # message.data
            except Exception as e:  # the owner raises it, as if its own await had
                self._error = e
                break
            finally:
                _leave_task(loop, task)
            if pending is not None:
                self._pending = pending
                break
        else:
            if not queue.is_eof() and queue.exception() is None:
                return  # all taken: stay armed
        self._hand_over()

    def interrupt(self) -> None:
        """The socket is being closed by us: a read waiting in the tap returns a CLOSING message and
        the socket is marked closing, as aiohttp's close() does to a pending receive() (so close()
        does not then wait for the peer's answer, which a stopping server no longer reads)."""
        if not self._armed:
            return  # waiting in receive() (aiohttp's own close() interrupts it), or not reading
        ws = self._ws
        if isinstance(ws, ClientWebSocketResponse):
            ws._set_closing()
        else:
            ws._set_closing(WSCloseCode.OK)
        self._interrupted = True
        self._hand_over()

    def _hand_over(self) -> None:
        self._armed = False
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    # -- the owner's side -------------------------------------------------------------------------
    async def run(self, handler: Handler) -> WSMessage | None:
        """Hand each text/binary message's data to `handler`, in order, until a pending result says
        True (returns None) or a message that is not data arrives (returned: a close, a ping...)."""
        ws, queue = self._ws, self._queue
        try:
            while True:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                pending, self._pending = self._pending, None
                if pending is not None:
                    if await pending:
                        return None
                    continue
                if not self.direct or self._buffered or queue.is_eof() or queue.exception() is not None or ws.closed:
                    self._receiving = True
                    try:
                        msg = await ws.receive()
                    finally:
                        self._receiving = False
                    if msg.type is _TEXT or msg.type is _BINARY:
                        pending = handler(msg.data)
                        if pending is not None and await pending:
                            return None
                        continue
                    return msg
                loop = self._loop = asyncio.get_running_loop()
                self._task, self._ctx, self._handler = asyncio.current_task(), contextvars.copy_context(), handler
                self._wake = loop.create_future()
                self._armed = True
                try:
                    await self._wake
                finally:
                    self._armed, self._wake, self._handler = False, None, None
                if self._interrupted:
                    self._interrupted = False
                    return _CLOSING
        finally:
            self._task = self._ctx = None
            pending, self._pending = self._pending, None
            if pending is not None and asyncio.iscoroutine(pending):
                pending.close()  # the owner is gone (cancelled): what was left is dropped with it

    @property
    def waiting(self) -> bool:
        """The owner waits for the next message (in the tap or in receive())."""
        return self._armed or self._receiving


_CLOSING = WSMessage(WSMsgType.CLOSING, None, None)


class TappedWebSocketResponse(web.WebSocketResponse):
    """aiohttp's server WebSocket whose close() also ends a read waiting in its FrameTap, as
    aiohttp's own close() ends a pending receive()."""

    tap: FrameTap | None = None

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if self.tap is not None and not self.closed:
            self.tap.interrupt()
        return await super().close(code=code, message=message, drain=drain)


async def _ready(data: Any, handler: Handler) -> bool | None:
    pending = handler(data)
    return await pending if pending is not None else None


def frame_sender(ws: AnyWS) -> Sender:
    """`send(data, opcode)` for a prepared/connected, uncompressed WebSocket: writes the frame now and
    returns None, or the drain wait when the transport's buffer is full (await it before the next
    frame). Raises aiohttp's ClientConnectionResetError when the socket is closing, as send_frame does."""
    writer: Any = getattr(ws, "_writer", None)
    protocol: Any = getattr(writer, "protocol", None)
    if (writer is None or getattr(writer, "compress", True) or not hasattr(writer, "_write_websocket_frame")
            or not hasattr(writer, "_output_size") or not hasattr(protocol, "_paused")):
        return ws.send_frame  # type: ignore[return-value]
    write, limit, drain = writer._write_websocket_frame, writer._limit, protocol._drain_helper

    def send(data: bytes, opcode: int) -> Awaitable[None] | None:
        if writer._closing:
            raise ClientConnectionResetError("Cannot write to closing transport")
        write(data, opcode, 0)
        if writer._output_size > limit:
            writer._output_size = 0
            if protocol._paused:
                return drain()  # type: ignore[no-any-return,unused-ignore]
        return None

    return send
