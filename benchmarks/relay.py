"""Bare relay: the floor a Python WebSocket gateway can reach (docs/architecture.md, "a bare aiohttp relay").

    python -m benchmarks.relay --upstream ws://127.0.0.1:PORT [--port 0]

Every WebSocket accepted on any path is forwarded to the same path and query upstream, with the
auth headers the providers use; frames are relayed both ways unchanged (text stays text, binary
stays binary): no parsing, no transcoding, no per-frame bookkeeping. aiohttp on both sides, which
docs/architecture.md measured as the cheapest stack (0.16 s CPU per call-minute at 100 calls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
from aiohttp import WSMsgType, web  # noqa: E402

from benchmarks.echo_provider import serve_app  # noqa: E402

FORWARDED_HEADERS = ("Authorization", "x-goog-api-key")


async def _pump(src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for msg in src:
        if msg.type is WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        else:
            break


class Relay:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.*}", self.handle)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        try:
            up = await self._session.ws_connect(self.upstream + request.rel_url.path_qs, headers=headers,
                                                compress=0, max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as e:
            return web.Response(status=e.status)
        down = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, compress=False)
        await down.prepare(request)
        tasks = [asyncio.create_task(p) for p in self.pumps(request, down, up)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                await up.close()
            with contextlib.suppress(Exception):
                await down.close()
        return down

    def pumps(self, request: web.Request, down: web.WebSocketResponse,
              up: aiohttp.ClientWebSocketResponse) -> tuple[Coroutine[Any, Any, None], ...]:
        """What moves frames each way (the floor relay overrides it)."""
        return _pump(down, up), _pump(up, down)


def relay_args(prog: str, description: str, argv: list[str] | None) -> argparse.Namespace:
    """The command line every benchmark relay takes."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--upstream", required=True, help="ws://host:port of the provider")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = relay_args("relay", "bare aiohttp WebSocket relay", argv)
    return serve_app(Relay(args.upstream).app(), args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
