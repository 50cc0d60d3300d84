"""Our stack's floor: a relay on the gateway's own server stack, doing nothing else.

    python -m benchmarks.relay_asgi --upstream ws://127.0.0.1:PORT [--port 0]

uvicorn with the gateway's settings (gateway/serve.py: uvloop, httptools, `websockets-sansio`, no
compression) and a starlette WebSocket route; upstream an aiohttp client like gateway/provider_socket.py.
Frames are relayed unchanged both ways. The difference to the bare aiohttp relay (benchmarks/relay.py)
is the cost of the server stack; the difference to the gateway is the cost of the gateway's own
work (parsing, session, link, transcoding, metrics). docs/architecture.md puts this floor at 0.21-0.23 s
CPU per call-minute (100 calls, PCM16 24 kHz).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: E402

from benchmarks.relay import FORWARDED_HEADERS, relay_args  # noqa: E402


def make_app(upstream: str) -> Starlette:
    upstream = upstream.rstrip("/")
    state: dict[str, aiohttp.ClientSession] = {}

    async def relay(ws: WebSocket) -> None:
        http = state.get("http")
        if http is None:
            http = state["http"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        headers = {h: ws.headers[h] for h in FORWARDED_HEADERS if h in ws.headers}
        path = ws.scope["path"] + (("?" + ws.scope["query_string"].decode()) if ws.scope["query_string"] else "")
        try:
            up = await http.ws_connect(upstream + path, headers=headers, compress=0, max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as e:
            await ws.close(code=1011, reason=f"upstream {e.status}")
            return
        await ws.accept()

        async def down_to_up() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("text") is not None:
                    await up.send_str(msg["text"])
                elif msg.get("bytes") is not None:
                    await up.send_bytes(msg["bytes"])

        async def up_to_down() -> None:
            async for msg in up:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await ws.send({"type": "websocket.send", "text": msg.data})
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await ws.send({"type": "websocket.send", "bytes": msg.data})
                else:
                    return

        tasks = [asyncio.create_task(down_to_up()), asyncio.create_task(up_to_down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except WebSocketDisconnect:
            pass
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                await up.close()
            with contextlib.suppress(Exception):
                await ws.close()

    return Starlette(routes=[WebSocketRoute("/{path:path}", relay)])


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = relay_args("relay_asgi", "relay on uvicorn + starlette (the ASGI reference)", argv)
    config = uvicorn.Config(make_app(args.upstream), host=args.host, port=args.port, loop="uvloop", http="httptools",
                            ws="websockets-sansio", ws_per_message_deflate=False, log_config=None, access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
            if task.done():
                return
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"listening on ws://{args.host}:{port}", flush=True)
        await task

    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
