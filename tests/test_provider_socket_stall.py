"""The provider socket's stall watchdog (gateway/provider_socket.py), against a real aiohttp peer on
127.0.0.1: silence → ping; no answer within half the period → the connection is cut and receive()
says 1006; a peer that answers pings is never cut, however quiet; a peer's own pings are answered
(autoping is off on our side). Periods are short (0.3 s); the asserts wait on events, with bounds
only as time-outs."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import trustme
import uvloop
from aiohttp import WSMsgType, web

from gateway.provider_socket import Closed, ProviderConnector, ProviderSocket
from gateway.serve import start_server
from providers.base import ConnectRequest

STALL_S = 0.3
Handler = Callable[[web.WebSocketResponse], Awaitable[None]]


@contextlib.asynccontextmanager
async def _peer(handler: Handler) -> AsyncIterator[str]:
    async def ws_route(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await handler(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_route)
    runner, port = await start_server(app, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


async def _connect(url: str) -> tuple[ProviderConnector, ProviderSocket]:
    connector = ProviderConnector()
    sock = await connector.connect(ConnectRequest(url=url), timeout_s=5.0, heartbeat_s=STALL_S)
    return connector, sock


async def test_a_peer_that_goes_silent_and_answers_no_ping_is_cut_as_1006() -> None:
    pinged = asyncio.Event()

    async def stall(ws: web.WebSocketResponse) -> None:
        await ws.send_str("hello")
        async for msg in ws:  # our ping is never answered (autoping is off here too)
            if msg.type is WSMsgType.PING:
                pinged.set()

    async with _peer(stall) as url:
        connector, sock = await _connect(url)
        try:
            assert await sock.receive() == "hello"
            started = time.monotonic()
            closed = await asyncio.wait_for(sock.receive(), 10)
            assert pinged.is_set()
            assert closed == Closed(1006, "") and sock.stalled
            assert time.monotonic() - started >= STALL_S  # not before the silence was long enough
        finally:
            await sock.close()
            await connector.close()


async def test_a_quiet_peer_that_answers_pings_is_kept() -> None:
    pings = 0
    done = asyncio.Event()

    async def quiet(ws: web.WebSocketResponse) -> None:
        nonlocal pings
        async for msg in ws:
            if msg.type is WSMsgType.PING:
                pings += 1
                await ws.pong(msg.data)
                if pings == 4:  # four silent periods survived: say something and stop
                    await ws.send_str("still here")
                    done.set()

    async with _peer(quiet) as url:
        connector, sock = await _connect(url)
        try:
            assert await asyncio.wait_for(sock.receive(), 10) == "still here"
            assert done.is_set() and not sock.stalled
        finally:
            await sock.close()
            await connector.close()


async def test_the_peers_pings_are_answered() -> None:
    ponged = asyncio.Event()

    async def pinging(ws: web.WebSocketResponse) -> None:
        await ws.ping(b"are-you-there")
        msg = await ws.receive()
        if msg.type is WSMsgType.PONG and msg.data == b"are-you-there":
            ponged.set()
            await ws.send_str("thanks")
        async for _ in ws:  # until we close
            pass

    async with _peer(pinging) as url:
        connector, sock = await _connect(url)
        try:
            assert await asyncio.wait_for(sock.receive(), 10) == "thanks"  # pings are not frames
            assert ponged.is_set()
        finally:
            await sock.close()
            await connector.close()


async def test_silence_while_nobody_reads_is_not_a_stall() -> None:
    """A socket opened but not read yet (a handover's next connection) is not cut for the silence
    nobody listened to: once read, the watchdog starts from there."""
    async def answer_later(ws: web.WebSocketResponse) -> None:
        await ws.send_str("queued")
        async for msg in ws:
            if msg.type is WSMsgType.PING:
                await ws.pong(msg.data)

    async with _peer(answer_later) as url:
        connector, sock = await _connect(url)
        try:
            await asyncio.sleep(STALL_S * 4)  # several periods with no receive() pending
            assert await sock.receive() == "queued"
            assert not sock.stalled
        finally:
            await sock.close()
            await connector.close()


async def _tls_stall_is_cut() -> tuple[object, bool]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def stall(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await ws.send_str("hello")
        async for _ in ws:  # pings never answered
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", stall)
    runner, port = await start_server(app, "127.0.0.1", 0, ssl_context=server_ctx)
    connector = ProviderConnector(ssl_context=client_ctx)
    try:
        sock = await connector.connect(ConnectRequest(url=f"wss://127.0.0.1:{port}/ws"), timeout_s=5.0,
                                       heartbeat_s=STALL_S)
        assert await sock.receive() == "hello"
        closed = await asyncio.wait_for(sock.receive(), 10)
        await sock.close()
        return closed, sock.stalled
    finally:
        await connector.close()
        await runner.cleanup()


async def test_a_stalled_tls_provider_is_cut_too() -> None:
    """Real providers are wss: the cut goes through the TLS transport's socket."""
    assert await _tls_stall_is_cut() == (Closed(1006, ""), True)


def test_a_stalled_tls_provider_is_cut_on_uvloop() -> None:
    """`serve` runs on uvloop, whose transports hand out a different socket object."""
    assert uvloop.run(_tls_stall_is_cut()) == (Closed(1006, ""), True)
