"""WebSocket messages on picows for the load side of the benchmark (loadgen.py, echo_provider.py).

Why picows and not aiohttp here: the load generators and the echo fake share one core while the
server under test has the other, so they must cost much less per frame than the server; picows
parses and masks frames in C and calls back per frame, with no task wake-up per message.

`MessageListener` turns frames into whole messages for its subclass: a fragmented message is
reassembled (aiohttp peers do not fragment, but a peer may), PING is answered by picows, PONG is
ignored, and a CLOSE is answered (or, when we sent ours first, ends the connection), as aiohttp's
`async for msg in ws` loop did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

TEXT, BINARY, CLOSE, CONTINUATION, PONG = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE,
                                          WSMsgType.CONTINUATION, WSMsgType.PONG)


class MessageListener(WSListener):
    transport: WSTransport | None = None
    closed = False  # a CLOSE was sent or received, or the connection is gone: send nothing more

    def on_message(self, msg_type: WSMsgType, data: bytes | memoryview, now_ns: int) -> None:
        """A whole TEXT or BINARY message (`data` is valid during the call only), received at now_ns."""

    def on_closed(self) -> None:
        """The connection is gone (after a close handshake, an abort or a drop)."""

    # -- picows callbacks ------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._parts: list[bytes] = []
        self._parts_type = BINARY

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.monotonic_ns()
        mt = frame.msg_type
        if frame.fin and (mt is TEXT or mt is BINARY):
            self.on_message(mt, frame.get_payload_as_memoryview(), now)
        elif mt is CLOSE:
            if not self.closed:
                self.closed = True
                with contextlib.suppress(Exception):
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif mt is TEXT or mt is BINARY:  # the first fragment
            self._parts, self._parts_type = [frame.get_payload_as_bytes()], mt
        elif mt is CONTINUATION and self._parts:
            self._parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                data, self._parts = b"".join(self._parts), []
                self.on_message(self._parts_type, data, now)
        # PONG (and a stray continuation): nothing to do; PING is answered by picows

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.on_closed()

    # -- sending -----------------------------------------------------------------------------------
    def send(self, msg_type: WSMsgType, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.send(msg_type, data)

    def close(self, code: WSCloseCode = WSCloseCode.OK, message: bytes = b"") -> None:
        """Start the close handshake; the peer's CLOSE (or close_within's deadline) ends the connection."""
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.send_close(code, message)

    async def close_within(self, timeout_s: float, code: WSCloseCode = WSCloseCode.OK) -> None:
        """Close and wait for the peer's answer, at most timeout_s; then drop the TCP connection."""
        if self.transport is None:
            return
        self.close(code)
        try:
            await asyncio.wait_for(self.transport.wait_disconnected(), timeout_s)
        except Exception:  # the deadline passed (TimeoutError) or the connection failed
            self.transport.disconnect(graceful=False)
