"""The embedded default as a user runs it (`make run`): settings parsed from an environment with no
keys, so every provider is the in-process fake started by the app's own lifespan; served by a real
aiohttp server on 127.0.0.1, port 0. Also a TCP proxy whose connections a test can cut (a network blip).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from gateway.app import create_app
from gateway.config import load_settings
from gateway.serve import start_server


@contextlib.asynccontextmanager
async def embedded_gateway(env: Mapping[str, str] | None = None) -> AsyncIterator[str]:
    """Yields the gateway's base URL (`ws://127.0.0.1:<port>`)."""
    settings = load_settings(dict(env or {}))
    assert all(p.simulated for p in settings.providers.values())
    runner, port = await start_server(create_app(settings), "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class CuttableProxy:
    """A TCP forwarder on 127.0.0.1 in front of `target_port`; `cut()` aborts every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
