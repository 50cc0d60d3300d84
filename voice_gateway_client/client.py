"""`VoiceGatewayClient`: one call on the gateway's `/v1/voice`, with reconnects to the gateway.

    async with connect("ws://127.0.0.1:8080/v1/voice", provider="openai") as call:
        await call.send_audio(pcm16_16k_bytes)
        async for event in call:
            ...

Invariants: `send_audio` never blocks on the network being down: while the WebSocket is being
re-established, audio goes into a bounded buffer (oldest dropped, counted) and is sent first when
the new connection is up. A reconnect is a new call on the gateway (same session.start); the
provider-side conversation is not carried, and `GatewayReconnected` says so. The gateway's own
provider reconnects and switches need nothing from the client: they arrive as events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from voice_gateway_client.events import (
    AudioChunk,
    Event,
    GatewayDisconnected,
    GatewayReconnected,
    SessionEnded,
    parse_event,
)

SUBPROTOCOL = "voice-gateway.v1"
_END = object()


class GatewayRefused(Exception):
    """The gateway refused the upgrade (HTTP status, e.g. 403 for a bad token, 503 while draining)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the gateway refused the connection with HTTP {status}")
        self.status = status


def session_start(*, provider: str = "auto", fallback: list[str] | None = None,
                  input_format: Mapping[str, Any] | None = None, output_format: Mapping[str, Any] | None = None,
                  instructions: str | None = None, voice: str | None = None, language: str | None = None,
                  tools: list[dict[str, Any]] | None = None,
                  provider_options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The `session.start` message (docs/protocol.md); None fields are left to the gateway's defaults."""
    msg: dict[str, Any] = {"type": "session.start", "provider": provider,
                           "audio": {"input": dict(input_format or {"encoding": "pcm16", "sample_rate": 16000}),
                                     "output": dict(output_format or {"encoding": "pcm16", "sample_rate": 24000})}}
    for key, value in (("fallback", fallback), ("instructions", instructions), ("voice", voice),
                       ("language", language), ("tools", tools), ("provider_options", provider_options)):
        if value is not None:
            msg[key] = value
    return msg


class VoiceGatewayClient:
    def __init__(self, url: str, *, token: str | None = None, reconnect: bool = True,
                 max_reconnect_attempts: int = 5, initial_backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 buffer_chunks: int = 100, open_timeout_s: float = 10.0, ssl: Any = None, **start: Any) -> None:
        self.url = url
        self.start_message = session_start(**start)
        self._token = token
        self._reconnect = reconnect
        self._max_attempts = max_reconnect_attempts
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._open_timeout_s = open_timeout_s
        self._ssl = ssl  # an ssl.SSLContext for wss:// with a private CA; None: the system's trust store
        self._ws: ClientConnection | None = None
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: collections.deque[bytes] = collections.deque(maxlen=buffer_chunks)
        self._dropped = 0
        self._reader: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._closing = False
        self.session_id: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> VoiceGatewayClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and send session.start. Raises GatewayRefused on an HTTP refusal."""
        await self._connect()
        self._up.set()
        self._reader = asyncio.create_task(self._read_forever())

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            await self._ws.close()

    async def _connect(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            self._ws = await websockets.connect(self.url, subprotocols=[SUBPROTOCOL], additional_headers=headers,
                                                open_timeout=self._open_timeout_s, max_size=2**22,
                                                compression=None, proxy=None,
                                                **({"ssl": self._ssl} if self._ssl is not None else {}))
        except websockets.InvalidStatus as e:
            raise GatewayRefused(e.response.status_code) from None
        # session.start goes first, before any audio (buffered audio follows it)
        await self._ws.send(orjson.dumps(self.start_message).decode())

    # -- sending ----------------------------------------------------------------------------------
    async def send_audio(self, data: bytes) -> None:
        """Audio in the session's input format (one 20 ms frame per call is ideal)."""
        if self._up.is_set() and self._ws is not None:
            try:
                await self._ws.send(data)
                return
            except websockets.ConnectionClosed:
                pass  # the reader notices and reconnects; keep the audio meanwhile
        if len(self._pending) == self._pending.maxlen:
            self._dropped += 1
        self._pending.append(data)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Any JSON message of the protocol (commit, text, tool.result, response.cancel, ...)."""
        await self._up.wait()
        assert self._ws is not None
        await self._ws.send(orjson.dumps(dict(message)).decode())

    async def commit(self) -> None:
        await self.send({"type": "audio.commit"})

    async def send_text(self, text: str) -> None:
        await self.send({"type": "text", "text": text})

    async def tool_result(self, call_id: str, output: Any) -> None:
        await self.send({"type": "tool.result", "call_id": call_id, "output": output})

    async def cancel_response(self) -> None:
        await self.send({"type": "response.cancel"})

    async def switch_provider(self, provider: str) -> None:
        await self.send({"type": "provider.switch", "provider": provider})

    async def end(self) -> None:
        """End the call; the gateway answers with session.ended and closes."""
        self._closing = True
        await self.send({"type": "session.end"})

    # -- receiving --------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order, until the call ends (after `SessionEnded`, or when reconnecting
        gave up: then the last event is `GatewayDisconnected`)."""
        while True:
            item = await self._events.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def _read_forever(self) -> None:
        attempt = 0
        while True:
            ended = await self._read_one_connection()
            if ended or self._closing or not self._reconnect:
                self._events.put_nowait(_END)
                return
            self._up.clear()
            attempt = await self._reconnect_with_backoff()
            if attempt < 0:
                self._events.put_nowait(_END)
                return

    async def _read_one_connection(self) -> bool:
        """Read until the socket closes; True when the call is over (session.ended seen)."""
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if isinstance(frame, bytes):
                    self._events.put_nowait(AudioChunk(frame))
                    continue
                event = parse_event(orjson.loads(frame))
                if event.session_id:
                    self.session_id = event.session_id
                self._events.put_nowait(event)
                if isinstance(event, SessionEnded):
                    return True
        except websockets.ConnectionClosed:
            pass
        return False

    async def _reconnect_with_backoff(self) -> int:
        """Returns the attempts it took, or -1 after giving up."""
        delay = self._initial_backoff_s
        for attempt in range(1, self._max_attempts + 1):
            self._events.put_nowait(GatewayDisconnected(attempt, delay))
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except (OSError, TimeoutError, websockets.WebSocketException, GatewayRefused):
                delay = min(delay * 2, self._max_backoff_s)
                continue
            resent, dropped = await self._flush_pending()
            self._up.set()  # only now: audio sent meanwhile joined the queue behind the buffered audio
            self._events.put_nowait(GatewayReconnected(attempt, resent, dropped))
            return attempt
        return -1

    async def _flush_pending(self) -> tuple[int, int]:
        assert self._ws is not None
        resent = 0
        while self._pending:
            await self._ws.send(self._pending.popleft())
            resent += 1
        dropped, self._dropped = self._dropped, 0
        return resent, dropped


def connect(url: str, **kwargs: Any) -> VoiceGatewayClient:
    """`async with connect(url, provider=..., token=...) as call:` (see VoiceGatewayClient)."""
    return VoiceGatewayClient(url, **kwargs)
