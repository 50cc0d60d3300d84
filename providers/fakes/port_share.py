"""One port for a provider's WebSocket fake and its REST fake, as the real origin serves both
(`OPENAI_BASE_URL` / `DEEPGRAM_BASE_URL` name one host for live calls and one-shot requests), and
optionally for several WebSocket fakes by path (OpenAI Realtime and GPT-Live share `OPENAI_BASE_URL`).

A byte-level front: it reads each connection's request head, sends WebSocket upgrades to the WebSocket
fake and everything else to the REST fake (both on loopback ports of their own), then pipes bytes both
ways until either side closes. Optional TLS terminates at the front.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

MAX_HEAD_BYTES = 64 * 1024


class SharedPortFront:
    def __init__(self, *, ws_port: int, rest_port: int, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, ws_routes: dict[str, int] | None = None) -> None:
        self.ws_port, self.rest_port = ws_port, rest_port
        # WebSocket upgrades whose path starts with a key go to that port (OpenAI Realtime and GPT-Live
        # on one origin: `/v1/live/` → the GPT-Live fake); the rest to ws_port
        self.ws_routes = ws_routes or {}
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> SharedPortFront:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.ssl_context,
                                                  limit=MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            upgrade = b"\r\nupgrade: websocket" in head.lower()
            target = self._ws_target(head) if upgrade else self.rest_port
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    def _ws_target(self, head: bytes) -> int:
        parts = head.split(b" ", 2)
        path = parts[1].decode("latin-1") if len(parts) == 3 else ""
        for prefix, port in self.ws_routes.items():
            if path.startswith(prefix):
                return port
        return self.ws_port


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()
            else:
                dst.close()
