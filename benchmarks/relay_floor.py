"""The floor relay: the bare aiohttp relay (benchmarks/relay.py) with the per-message machinery of
aiohttp's pull API taken out, to measure how low a Python gateway on aiohttp can go.

    python -m benchmarks.relay_floor --upstream ws://127.0.0.1:PORT [--port 0]

The bare relay, like the gateway, reads with `await ws.receive()`: each message goes through
aiohttp's reader queue, a future, a loop callback, a task step and `receive()`'s checks, and each
send through `send_str`/`send_frame` coroutines. Here a tap sits between the connection's protocol
and aiohttp's frame parser: once the parser has queued a message, the tap takes it off the queue
(through aiohttp's own `read()`, which completes at once when a message is queued, so the queue's
accounting and flow control are aiohttp's) and writes it to the other side synchronously, inside the
parser's callback: no task wakes up, no coroutine per send. When the other side's send buffer is
full, or the message is a control frame, the tap leaves it queued and the pump task takes over with
the ordinary `receive()` loop until the queue is empty again: order and backpressure are kept.

This uses aiohttp internals (the protocol's `_payload_parser` slot, the queue's `_buffer`, the
writer's `_write_websocket_frame`), which is why it is a benchmark and not the gateway: it measures
what the gateway's own design could gain by handling frames in callbacks instead of coroutines
(benchmarks/PROFILE.md, "The floor").
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
from aiohttp import WSMsgType, web  # noqa: E402

from benchmarks.echo_provider import serve_app  # noqa: E402
from benchmarks.relay import Relay, relay_args  # noqa: E402

_TEXT, _BINARY = WSMsgType.TEXT, WSMsgType.BINARY
_OPCODE = {_TEXT: 1, _BINARY: 2}
AnyWS = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class Tap:
    """Stands in the protocol's parser slot; forwards to aiohttp's parser, then relays what it queued."""

    def __init__(self, src: AnyWS, protocol: Any, dst: AnyWS) -> None:
        self._src, self._dst = src, dst
        self._queue, self._parser = src._reader, protocol._payload_parser
        self._writer = dst._writer
        self._armed = False  # the pump task waits on `_wake`: the tap relays
        self._wake: asyncio.Future[None] | None = None
        protocol._payload_parser = self

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        result: tuple[bool, bytes] = self._parser.feed_data(data)
        if self._armed:
            self._relay_queued()
        return result

    def feed_eof(self) -> None:
        self._parser.feed_eof()
        self._hand_over()

    def _relay_queued(self) -> None:
        queue, buffered, writer = self._queue, self._queue._buffer, self._writer
        while buffered:
            kind = buffered[0][0].type
            if (kind is not _TEXT and kind is not _BINARY) or self._src.closed or writer.protocol._paused:
                self._hand_over()
                return
            read = queue.read()  # a message is queued: completes at once
            try:
                read.send(None)
            except StopIteration as done:
                msg = done.value
            else:  # pragma: no cover - aiohttp changed: let the pump task read
                read.close()
                self._hand_over()
                return
            data = msg.data.encode() if kind is _TEXT else msg.data
            writer._write_websocket_frame(data, _OPCODE[kind], 0)
        if queue.is_eof():
            self._hand_over()

    def _hand_over(self) -> None:
        self._armed = False
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def pump(self) -> None:
        src, dst, queue = self._src, self._dst, self._queue
        while True:
            if queue._buffer or queue.is_eof() or src.closed:
                msg = await src.receive()
                if msg.type is _TEXT:
                    await dst.send_str(msg.data)
                elif msg.type is _BINARY:
                    await dst.send_bytes(msg.data)
                else:
                    return
                continue
            self._wake = asyncio.get_running_loop().create_future()
            self._armed = True
            try:
                await self._wake
            finally:
                self._armed = False


class FloorRelay(Relay):
    """The bare relay (connect, prepare, close) with a tap pumping each way."""

    def pumps(self, request: web.Request, down: web.WebSocketResponse,
              up: aiohttp.ClientWebSocketResponse) -> tuple[Coroutine[Any, Any, None], ...]:
        assert up._conn is not None
        return Tap(down, request.protocol, up).pump(), Tap(up, up._conn.protocol, down).pump()


def main(argv: list[str] | None = None) -> int:
    args = relay_args("relay_floor", "aiohttp relay with frames relayed in the parser's callback", argv)
    return serve_app(FloorRelay(args.upstream).app(), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
