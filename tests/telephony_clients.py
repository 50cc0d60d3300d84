"""Fake telephony callers: the vendor's side of a media socket (docs/telephony.md §4 checklist), over a
real WebSocket to a gateway endpoint.

    async with FakeTwilioCaller(url, {"provider": "gemini"}) as caller:
        await caller.send_audio(mulaw)                       # 20 ms frames, stream time advances
        await caller.wait_until(lambda c: len(c.received_audio) >= 1600)
        await caller.hangup()                                # stop, then close

Playout is simulated in stream time, not wall time: reply audio starts playing when it arrives
(or when the audio queued before it ends) and a caller frame sent = 20 ms of playout. A mark is
echoed once the caller has sent as much of its own audio as the reply queued before the mark
lasts; with `instant_playout=True` marks are echoed on arrival. A `clear` drops the unplayed rest
and echoes every pending mark at once, as Twilio does. Everything the gateway sent is recorded;
`protocol_errors` lists what a vendor would ignore or our contract forbids (wrong stream id,
outbound frames that are not exactly 20 ms, unknown events).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from audio.formats import MULAW_8K, AudioFormat

FRAME_MS = 20
SILENCE = {"mulaw": 0xFF, "alaw": 0xD5, "pcm16": 0x00}


def sign_twilio(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """`X-Twilio-Signature` for `url` (+ sorted POST params), as Twilio computes it."""
    params = params or {}
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _swap16(data: bytes) -> bytes:
    out = bytearray(len(data))
    out[0::2], out[1::2] = data[1::2], data[0::2]
    return bytes(out)


class FakeCaller:
    """Shared machinery; the vendor classes below supply the message shapes."""

    input_format: AudioFormat = MULAW_8K  # what the caller sends
    output_format: AudioFormat = MULAW_8K  # what it expects back

    def __init__(self, url: str, *, instant_playout: bool = False, headers: Mapping[str, str] | None = None,
                 subprotocols: list[str] | None = None, open_timeout_s: float = 5.0) -> None:
        self.url = url
        self.instant_playout = instant_playout
        self._headers = dict(headers or {})
        self._subprotocols = subprotocols
        self._open_timeout_s = open_timeout_s
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._seq = 0
        # stream time and playout
        self.sent_ms = 0
        self._play_end_ms = 0
        self._segments: list[list[Any]] = []  # [start_ms, bytearray] of reply audio in playout order
        self._pending_marks: list[tuple[int, Any]] = []  # (due stream ms, mark payload)
        # what the gateway sent
        self.messages: list[dict[str, Any]] = []
        self.media_frame_sizes: list[int] = []
        self.received_audio = bytearray()
        self.marks_received: list[str] = []
        self.marks_echoed: list[str] = []
        self.clears = 0
        self.protocol_errors: list[str] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeCaller:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self.ws = await connect(self.url, additional_headers=self._headers or None, subprotocols=self._subprotocols,
                                compression=None, open_timeout=self._open_timeout_s, proxy=None,
                                max_size=2**20)
        self._reader = asyncio.create_task(self._read_loop())
        for message in self._opening_messages():
            await self._send(message)

    async def hangup(self) -> None:
        """The caller hangs up: the vendor's stop message (if it has one), then the socket closes."""
        if self.ws is not None and not self.closed.is_set():
            with contextlib.suppress(ConnectionClosed):
                for message in self._stop_messages():
                    await self._send(message)
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def wait_until(self, predicate: Callable[[FakeCaller], bool], timeout: float = 2.0) -> None:
        """Wait until `predicate(self)` holds, re-checking after every message from the gateway."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if predicate(self):
                    return
                await self._changed.wait()

    async def wait_closed(self, timeout: float = 2.0) -> int | None:
        async with asyncio.timeout(timeout):
            await self.closed.wait()
        return self.close_code

    # -- caller → gateway ---------------------------------------------------------------------------
    async def send_audio(self, audio: bytes, *, realtime: bool = False) -> None:
        """Send `audio` (in `input_format`) as 20 ms frames, the last padded with silence. Each frame
        advances stream time by 20 ms. `realtime` paces frames 20 ms apart in wall time."""
        size = self.input_format.frame_bytes(FRAME_MS)
        pad = bytes([SILENCE[self.input_format.encoding]])
        for i in range(0, len(audio), size):
            frame = audio[i:i + size]
            await self._send(self._media_message(frame + pad * (size - len(frame))))
            self.sent_ms += FRAME_MS
            await self._echo_due_marks()
            if realtime:
                await asyncio.sleep(FRAME_MS / 1000)

    async def send_silence(self, ms: int) -> None:
        n_frames = max(1, ms // FRAME_MS)
        fill = bytes([SILENCE[self.input_format.encoding]])
        await self.send_audio(fill * (self.input_format.frame_bytes(FRAME_MS) * n_frames))

    async def send_dtmf(self, digit: str) -> None:
        await self._send(self._dtmf_message(digit))

    async def send_raw(self, frame: str | bytes) -> None:
        """Anything at all, for tests of bad input."""
        assert self.ws is not None
        await self.ws.send(frame)

    # -- playout view ---------------------------------------------------------------------------
    @property
    def played_audio(self) -> bytes:
        """Reply audio the caller has heard by now (stream time), clears taken into account."""
        bpm = self.output_format.bytes_per_second // 1000
        out = bytearray()
        for start_ms, data in self._segments:
            heard = max(0, min(len(data), (self.sent_ms - start_ms) * bpm))
            out += data[:heard - heard % self.output_format.bytes_per_sample]
        return bytes(out)

    @property
    def queued_ms(self) -> int:
        return max(0, self._play_end_ms - self.sent_ms)

    # -- gateway → caller -----------------------------------------------------------------------
    async def _read_loop(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                await self._on_frame(frame)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code  # the gateway's close code (1006 if none came)
            self.closed.set()
            self._changed.set()

    async def _on_frame(self, frame: str | bytes) -> None:
        raise NotImplementedError

    def _on_media(self, audio: bytes) -> None:
        self.media_frame_sizes.append(len(audio))
        self.received_audio += audio
        start = max(self._play_end_ms, self.sent_ms)
        if self._segments and self._segments[-1][0] + self._duration_ms(len(self._segments[-1][1])) == start:
            self._segments[-1][1] += audio
        else:
            self._segments.append([start, bytearray(audio)])
        self._play_end_ms = start + self._duration_ms(len(audio))

    async def _on_mark(self, name: str, payload: Any) -> None:
        self.marks_received.append(name)
        due = self.sent_ms if self.instant_playout else max(self._play_end_ms, self.sent_ms)
        self._pending_marks.append((due, payload))
        await self._echo_due_marks()

    async def _on_clear(self) -> None:
        self.clears += 1
        for seg in self._segments:  # the unplayed rest is dropped
            bpm = self.output_format.bytes_per_second // 1000
            keep = max(0, (self.sent_ms - seg[0]) * bpm)
            del seg[1][keep:]
        self._play_end_ms = self.sent_ms
        pending, self._pending_marks = self._pending_marks, []
        for _, payload in pending:
            await self._echo_mark(payload)

    async def _echo_due_marks(self) -> None:
        while self._pending_marks and self._pending_marks[0][0] <= self.sent_ms:
            _, payload = self._pending_marks.pop(0)
            with contextlib.suppress(ConnectionClosed):
                await self._echo_mark(payload)

    def _duration_ms(self, n_bytes: int) -> int:
        return n_bytes * 1000 // self.output_format.bytes_per_second

    async def _send(self, message: dict[str, Any] | bytes) -> None:
        assert self.ws is not None
        await self.ws.send(message if isinstance(message, bytes) else json.dumps(message))

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def _check_frame_size(self, audio: bytes) -> None:
        if len(audio) != self.output_format.frame_bytes(FRAME_MS):
            self.protocol_errors.append(f"media frame of {len(audio)} bytes")

    # -- vendor hooks ---------------------------------------------------------------------------
    def _opening_messages(self) -> list[dict[str, Any] | bytes]:
        raise NotImplementedError

    def _media_message(self, frame: bytes) -> dict[str, Any] | bytes:
        raise NotImplementedError

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        raise NotImplementedError

    def _stop_messages(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _echo_mark(self, payload: Any) -> None:
        raise NotImplementedError


class _JsonCaller(FakeCaller):
    """Twilio and Telnyx share the event set; `keys` names the vendor's spelling."""

    keys: dict[str, str] = {}
    outbound_has_stream_id = True

    def __init__(self, url: str, custom_parameters: Mapping[str, str] | None = None, *,
                 stream_id: str, call_id: str, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.custom_parameters = dict(custom_parameters or {})
        self.stream_id = stream_id
        self.call_id = call_id
        self._chunk = 0

    def _media_message(self, frame: bytes) -> dict[str, Any]:
        self._chunk += 1
        if self.input_format.encoding == "pcm16":
            frame = _swap16(frame)  # L16 on the wire is big-endian (RTP)
        return {"event": "media", self.keys["seq"]: self._next_seq(), self.keys["sid"]: self.stream_id,
                "media": {"track": "inbound", "chunk": str(self._chunk), "timestamp": str(self.sent_ms),
                          "payload": base64.b64encode(frame).decode()}}

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return {"event": "dtmf", self.keys["seq"]: self._next_seq(), self.keys["sid"]: self.stream_id,
                "dtmf": {"track": "inbound_track", "digit": digit}}

    async def _echo_mark(self, name: Any) -> None:
        self.marks_echoed.append(name)
        await self._send({"event": "mark", self.keys["seq"]: self._next_seq(), self.keys["sid"]: self.stream_id,
                          "mark": {"name": name}})

    async def _on_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self.protocol_errors.append("binary frame")
            return
        msg = json.loads(frame)
        self.messages.append(msg)
        sid = msg.get(self.keys["sid"])
        if self.outbound_has_stream_id and sid != self.stream_id:
            self.protocol_errors.append(f"{msg.get('event')} with {self.keys['sid']}={sid!r}")
            return  # the vendor ignores messages for another stream
        match msg.get("event"):
            case "media":
                audio = base64.b64decode(msg["media"]["payload"], validate=True)
                self._check_frame_size(audio)
                self._on_media(_swap16(audio) if self.output_format.encoding == "pcm16" else audio)
            case "mark":
                await self._on_mark(msg["mark"]["name"], msg["mark"]["name"])
            case "clear":
                await self._on_clear()
            case other:
                self.protocol_errors.append(f"unknown event {other!r}")


class FakeTwilioCaller(_JsonCaller):
    keys = {"sid": "streamSid", "seq": "sequenceNumber"}

    def __init__(self, url: str, custom_parameters: Mapping[str, str] | None = None, *,
                 stream_sid: str = "MZ0123456789abcdef0123456789abcdef",
                 call_sid: str = "CA11111111111111111111111111111111", **kw: Any) -> None:
        super().__init__(url, custom_parameters, stream_id=stream_sid, call_id=call_sid, **kw)

    def _opening_messages(self) -> list[dict[str, Any] | bytes]:
        return [{"event": "connected", "protocol": "Call", "version": "1.0.0"},
                {"event": "start", "sequenceNumber": self._next_seq(), "streamSid": self.stream_id,
                 "start": {"streamSid": self.stream_id, "accountSid": "AC00000000000000000000000000000000",
                           "callSid": self.call_id, "tracks": ["inbound"],
                           "customParameters": self.custom_parameters,
                           "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}]

    def _stop_messages(self) -> list[dict[str, Any]]:
        return [{"event": "stop", "sequenceNumber": self._next_seq(), "streamSid": self.stream_id,
                 "stop": {"accountSid": "AC00000000000000000000000000000000", "callSid": self.call_id}}]


class FakeTelnyxCaller(_JsonCaller):
    keys = {"sid": "stream_id", "seq": "sequence_number"}
    outbound_has_stream_id = False
    _FORMATS = {"PCMU": ("mulaw", 8000), "PCMA": ("alaw", 8000)}

    def __init__(self, url: str, custom_parameters: Mapping[str, str] | None = None, *,
                 encoding: str = "PCMU", sample_rate: int = 8000,
                 stream_id: str = "32de0dea-53cb-4b21-89a4-9e0819c043bc", call_control_id: str = "v3:abc123",
                 **kw: Any) -> None:
        super().__init__(url, custom_parameters, stream_id=stream_id, call_id=call_control_id, **kw)
        self.encoding = encoding
        enc, rate = self._FORMATS.get(encoding, ("pcm16", sample_rate))
        self.input_format = self.output_format = AudioFormat(encoding=enc, sample_rate_hz=rate)

    def _opening_messages(self) -> list[dict[str, Any] | bytes]:
        return [{"event": "connected", "version": "1.0.0"},
                {"event": "start", "sequence_number": self._next_seq(), "stream_id": self.stream_id,
                 "start": {"call_control_id": self.call_id, "call_session_id": "cs-1",
                           "from": "+15551230001", "to": "+15551230002",
                           "custom_parameters": self.custom_parameters,
                           "media_format": {"encoding": self.encoding,
                                            "sample_rate": self.input_format.sample_rate_hz, "channels": 1}}}]

    def _stop_messages(self) -> list[dict[str, Any]]:
        return [{"event": "stop", "sequence_number": self._next_seq(), "stream_id": self.stream_id,
                 "stop": {"call_control_id": self.call_id}}]


class FakeVonageCaller(FakeCaller):
    """Vonage: `websocket:connected` with the NCCO headers flattened in, then raw L16 binary frames."""

    def __init__(self, url: str, headers_in_connected: Mapping[str, str] | None = None, *,
                 sample_rate: int = 16000, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.ncco_headers = dict(headers_in_connected or {})
        self.input_format = self.output_format = AudioFormat(encoding="pcm16", sample_rate_hz=sample_rate)

    def _opening_messages(self) -> list[dict[str, Any] | bytes]:
        return [{"event": "websocket:connected",
                 "content-type": f"audio/l16;rate={self.input_format.sample_rate_hz}", **self.ncco_headers}]

    def _media_message(self, frame: bytes) -> bytes:
        return frame

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return {"event": "websocket:dtmf", "digit": digit, "duration": 250}

    def _stop_messages(self) -> list[dict[str, Any]]:
        return []  # Vonage just closes the socket

    async def _echo_mark(self, payload: Any) -> None:
        self.marks_echoed.append(payload.get("name") if isinstance(payload, dict) else payload)
        await self._send({"event": "websocket:notify", "payload": payload})

    async def _on_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self._check_frame_size(frame)
            self._on_media(frame)
            return
        msg = json.loads(frame)
        self.messages.append(msg)
        match msg.get("action"):
            case "notify":
                payload = msg.get("payload")
                name = payload.get("name") if isinstance(payload, dict) else None
                await self._on_mark(name, payload)
            case "clear":
                await self._on_clear()
                await self._send({"event": "websocket:cleared"})
            case other:
                self.protocol_errors.append(f"unknown action {other!r}")
