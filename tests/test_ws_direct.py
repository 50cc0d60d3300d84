"""gateway/ws_direct.py: frames handled in aiohttp's parser callback, over real sockets on loopback.

What a call relies on: every message reaches the handler once, in order, whether it was handled in
the callback or had to wait; the handler runs as the owning task (current task, context variables);
errors and stops reach the owner; control frames go to the owner; a full send buffer is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from gateway.ws_direct import OP_BINARY, FrameTap, Pending, TappedWebSocketResponse, frame_sender

CALL = contextvars.ContextVar("call", default="")
Serve = Callable[[web.WebSocketResponse], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(serve: Serve, make_ws: Callable[[], web.WebSocketResponse] = lambda: web.WebSocketResponse(
        compress=False, autoping=False)) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = make_ws()
        await ws.prepare(request)
        await serve(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"ws://{host}:{port}/"
    finally:
        await runner.cleanup()


def in_callback() -> bool:
    """The handler was called by the tap inside aiohttp's parser callback (not by the owner's loop)."""
    return sys._getframe(2).f_code.co_name == "_take_queued"


async def test_every_message_reaches_the_handler_once_in_order_as_the_owner_task() -> None:
    seen: list[int] = []
    direct: list[int] = []
    done = asyncio.Event()
    owner: list[asyncio.Task[Any] | None] = []
    wrong_task = wrong_context = 0

    async def slow(n: int) -> None:
        await asyncio.sleep(0.001)  # a send that had to wait: later messages queue behind it
        seen.append(n)

    async def serve(ws: web.WebSocketResponse) -> None:
        nonlocal wrong_task, wrong_context
        CALL.set("call-7")
        owner.append(asyncio.current_task())
        tap = FrameTap(ws)
        assert tap.direct  # the installed aiohttp has the internals the tap needs
        ack = frame_sender(ws)

        def on_frame(data: Any) -> Pending:
            nonlocal wrong_task, wrong_context
            n = int(data)
            if in_callback():
                direct.append(n)
            wrong_task += asyncio.current_task() is not owner[0]
            wrong_context += CALL.get() != "call-7"
            if n == 0:  # the owner waits for the next message as soon as this returns
                assert ack(b"ack", OP_BINARY) is None
            if n == 499:
                done.set()
            if n % 7 == 0 and n:
                return slow(n)
            seen.append(n)
            return None

        msg = await tap.run(on_frame)
        assert msg is not None and msg.type is WSMsgType.CLOSE

    async with server(serve) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str("0")
        assert (await ws.receive()).data == b"ack"
        for n in range(1, 500):
            await ws.send_str(str(n))
        await asyncio.wait_for(done.wait(), 10)
        await ws.close()
    assert seen == list(range(500))
    assert 1 in direct  # sent while the owner waited: handled in the parser's callback
    assert wrong_task == 0 and wrong_context == 0


async def test_a_handler_error_is_raised_in_the_owner_and_a_stop_ends_the_read() -> None:
    results: list[str] = []
    finished = asyncio.Event()

    class Boom(Exception):
        pass

    async def serve(ws: web.WebSocketResponse) -> None:
        tap = FrameTap(ws)

        def failing(data: Any) -> Pending:
            raise Boom(data)

        try:
            await tap.run(failing)
        except Boom as e:
            results.append(f"raised {e}")

        async def true() -> bool:
            return True

        def stop_on_b(data: Any) -> Pending:
            results.append(f"handled {data}")
            return true() if data == "b" else None

        assert await tap.run(stop_on_b) is None  # the stop ends run(); what came after stays queued
        later = await ws.receive()
        results.append(f"left {later.data}")
        finished.set()

    async with server(serve) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str("x")
        await ws.send_str("a")
        await ws.send_str("b")
        await ws.send_str("c")
        await asyncio.wait_for(finished.wait(), 5)
    assert results == ["raised x", "handled a", "handled b", "left c"]


async def test_control_frames_go_to_the_owner() -> None:
    got: list[Any] = []
    finished = asyncio.Event()

    async def serve(ws: web.WebSocketResponse) -> None:
        tap = FrameTap(ws)
        msg = await tap.run(lambda data: got.append(data))
        assert msg is not None
        got.append(msg.type)
        finished.set()

    async with server(serve) as url, aiohttp.ClientSession() as http, \
            http.ws_connect(url, autoping=False) as ws:
        await ws.send_bytes(b"audio")
        await ws.ping(b"hi")
        await asyncio.wait_for(finished.wait(), 5)
    assert got == [b"audio", WSMsgType.PING]


async def test_messages_after_the_owner_was_cancelled_stay_queued() -> None:
    handled: list[Any] = []
    owner_gone = asyncio.Event()
    finished = asyncio.Event()
    left: list[Any] = []

    async def serve(ws: web.WebSocketResponse) -> None:
        tap = FrameTap(ws)
        reading = asyncio.create_task(tap.run(lambda data: handled.append(data)))
        await asyncio.sleep(0)  # its first step: nothing queued, it waits in the tap
        assert tap.waiting
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        owner_gone.set()
        left.append((await ws.receive()).data)
        finished.set()

    async with server(serve) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await asyncio.wait_for(owner_gone.wait(), 5)
        await ws.send_str("after")
        await asyncio.wait_for(finished.wait(), 5)
    assert handled == [] and left == ["after"]


async def test_the_sender_returns_the_drain_wait_when_the_peer_stops_reading() -> None:
    """Frames are written at once; when the transport's buffer is full the sender hands back the
    drain wait, and every frame arrives, in order, once the peer reads again."""
    received: list[int] = []
    all_in = asyncio.Event()
    frame = bytes(64 * 1024)
    count = 0
    reading = asyncio.Event()

    async def serve(ws: web.WebSocketResponse) -> None:
        nonlocal count
        send = frame_sender(ws)
        assert send != ws.send_frame  # the installed aiohttp has the writer internals the sender needs
        for n in range(2000):
            drain = send(n.to_bytes(4, "big") + frame, OP_BINARY)
            count = n + 1
            if drain is not None:
                reading.set()  # the peer reads again; the drain completes
                await drain
                break
        await ws.close()

    async with server(serve) as url, aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        await asyncio.wait_for(reading.wait(), 20)  # nothing read until the sender had to wait
        async for msg in ws:
            received.append(int.from_bytes(msg.data[:4], "big"))
        all_in.set()
    assert count < 2000  # the sender did hand back a drain wait
    assert received == list(range(count))


async def test_a_closing_socket_refuses_the_frame() -> None:
    errors: list[type[BaseException]] = []
    finished = asyncio.Event()

    async def serve(ws: web.WebSocketResponse) -> None:
        send = frame_sender(ws)
        await ws.close()
        try:
            send(b"late", OP_BINARY)
        except ConnectionError as e:
            errors.append(type(e))
        finished.set()

    async with server(serve) as url, aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.receive()
        await asyncio.wait_for(finished.wait(), 5)
    assert errors and issubclass(errors[0], ConnectionError)


async def test_a_compressing_socket_gets_aiohttps_own_send() -> None:
    got: list[bytes] = []

    async def serve(ws: web.WebSocketResponse) -> None:
        send = frame_sender(ws)
        pending = send(b"deflated", OP_BINARY)
        assert pending is not None  # aiohttp's coroutine: compression is aiohttp's
        await pending
        await ws.close()

    async with server(serve, lambda: web.WebSocketResponse(compress=True)) as url, aiohttp.ClientSession() as http, \
            http.ws_connect(url, compress=15) as ws:
        async for msg in ws:
            got.append(msg.data)
    assert got == [b"deflated"]


async def test_closing_the_socket_ends_a_read_waiting_in_the_tap_as_it_ends_receive() -> None:
    """A stopping server closes its sockets while their owners wait for frames: the owner's read ends
    with CLOSING (as aiohttp's pending receive() does) and the client gets the close code at once."""
    ended: list[Any] = []

    async def serve(ws: web.WebSocketResponse) -> None:
        tap = FrameTap(ws)
        reading = asyncio.create_task(tap.run(lambda data: None))
        await asyncio.sleep(0)  # its first step: it waits in the tap
        assert tap.waiting
        await ws.close(code=1012, message=b"server shutting down")
        ended.append((await reading).type)

    async with server(serve, lambda: TappedWebSocketResponse(compress=False)) as url, \
            aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is WSMsgType.CLOSE and msg.data == 1012
    assert ended == [WSMsgType.CLOSING]
