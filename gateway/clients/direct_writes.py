"""How a client sink writes to its socket without a coroutine (gateway/ws_direct.py): the one write
path of both sinks (gateway/clients/native.py, gateway/clients/telephony.py)."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from gateway.ws_direct import OP_BINARY, OP_TEXT, Sender, frame_sender


class DirectWrites:
    """A sink's writes: `_write_now(frame)` returns None, or the drain to await when the send buffer
    is full (the frame is written either way). The first failed write marks the sink closed (`open`
    goes False: the client is gone) and later writes are dropped."""

    ws: web.WebSocketResponse
    open: bool
    _write: Sender | None  # built at the first write: the socket is prepared by then

    def _write_now(self, frame: str | bytes) -> Awaitable[None] | None:
        if not self.open:
            return None
        write = self._write
        if write is None:
            write = self._write = frame_sender(self.ws)
        try:
            drain = write(frame.encode(), OP_TEXT) if type(frame) is str else write(frame, OP_BINARY)  # type: ignore[arg-type]
        except Exception:
            self.open = False
            return None
        return self._drained(drain) if drain is not None else None

    async def _drained(self, drain: Awaitable[None]) -> None:
        try:
            await drain
        except Exception:
            self.open = False
