"""Echo provider for the load benchmark: a minimal fake of OpenAI Realtime GA, OpenAI GPT-Live and Gemini Live that
answers every 20 ms of input audio at once with 20 ms of reply audio carrying the same marker.

    python -m benchmarks.echo_provider [--port 0] [--drop-min-s 3 --drop-max-s 9 --seed 1] [--digits]

Prints `listening on ws://HOST:PORT` once it accepts connections. It speaks just enough of each
protocol for the gateway's adapters (and the load generator's direct calls):
- OpenAI (docs/providers/openai.md §2): `session.created` → `session.update` → `session.updated`;
  each `input_audio_buffer.append` → `response.output_audio.delta` in the session's output format
  (`audio/pcmu` passes μ-law through; `audio/pcm` is 24 kHz).
- GPT-Live (openai.types.live): `session.start` → `session.started`; each
  `session.input_audio.append` → `session.output_audio.delta` in the session's one format
  (`audio/pcmu` passes μ-law through; `audio/pcm` at its rate).
- Gemini (docs/providers/gemini.md §2): `setup` → `setupComplete` (binary frame, as the server does);
  each `realtimeInput.audio` (16 kHz) → `serverContent.modelTurn` inlineData at 24 kHz.
The call is named by its instructions (`systemInstruction` / `session.instructions`): the load
generator sets them to a per-call tag, the gateway passes them through. For each call the fake keeps
when frame `seq` arrived and when its reply left (CLOCK_MONOTONIC, shared by all local processes);
`GET /bench/stats?prefix=P` returns and forgets the records of calls whose tag starts with P (npz).

Faults (`--drop-*`): each connection is cut at a random (seeded) time, by a 1011 close or a TCP
abort. `--digits`: the DTMF dialect of the real fakes, reduced to what the benchmark counts: DTMF
digits in the input are detected (audio.dtmf) and recorded, and each one ends the user turn on the
wire (Gemini `inputTranscription.finished`, OpenAI `input_audio_buffer.committed` + transcript), so
the gateway trims its replay buffer as it would with a real provider.

It runs on picows (benchmarks/ws_messages.py says why): it shares the load core with the load
generators, and the server under test, not the load side, must be what runs out of CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import io
import random
import re
import sys
import time
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from urllib.parse import parse_qs

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from aiohttp import web  # noqa: E402
from picows import (  # noqa: E402
    WSCloseCode,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from audio.dtmf import DtmfDetector  # noqa: E402
from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K, AudioFormat  # noqa: E402
from audio.g711 import ulaw_decode  # noqa: E402
from benchmarks.marker import MARKER, SEQ_MODULUS, SILENCE, MarkerStream, marker_frame, silence_frame  # noqa: E402
from benchmarks.ws_messages import BINARY, TEXT, MessageListener  # noqa: E402

GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
OPENAI_PATH = "/v1/realtime"
LIVE_PATH = "/v1/live/sessions"
_SILENCE_SEQ = -1
_RATE = re.compile(r"rate=(\d+)")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# Replies are the same bytes for the same seq: built once (the fake must stay cheap, it shares a
# core with the load generator).
@lru_cache(maxsize=8192)
def gemini_reply(seq: int) -> bytes:
    audio = silence_frame(PCM16_24K) if seq == _SILENCE_SEQ else marker_frame(seq, PCM16_24K)
    return orjson.dumps({"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": _b64(audio)}}]}}})


@lru_cache(maxsize=16384)
def openai_reply(seq: int, fmt: AudioFormat) -> str:
    audio = silence_frame(fmt) if seq == _SILENCE_SEQ else marker_frame(seq, fmt)
    return orjson.dumps({"type": "response.output_audio.delta", "event_id": "event_bench",
                         "response_id": "resp_bench", "item_id": "item_bench", "output_index": 0,
                         "content_index": 0, "delta": _b64(audio)}).decode()


@lru_cache(maxsize=16384)
def live_reply(seq: int, fmt: AudioFormat) -> str:
    audio = silence_frame(fmt) if seq == _SILENCE_SEQ else marker_frame(seq, fmt)
    return '{"type":"session.output_audio.delta","delta":"' + _b64(audio) + '"}'


class Replies:
    """The reply to each seq as sent (`frames[-1]`: the reply to silence), made when first needed:
    a list lookup per frame, no hashing of the format."""

    def __init__(self, make: Callable[[int], bytes]) -> None:
        self.make = make
        self.frames: list[bytes | None] = [None] * (SEQ_MODULUS + 1)


@lru_cache(maxsize=32)
def reply_table(protocol: str, fmt: AudioFormat) -> Replies:
    if protocol == "gemini":
        return Replies(gemini_reply)
    return Replies(partial(_encoded, openai_reply if protocol == "openai" else live_reply, fmt=fmt))


def _encoded(reply: Callable[[int, AudioFormat], str], seq: int, fmt: AudioFormat) -> bytes:
    return reply(seq, fmt).encode()


class CallRecord:
    """What the fake saw of one call, over all its connections."""

    __slots__ = ("rx_ns", "tx_ns", "duplicates", "connections", "garbled", "digits")

    def __init__(self) -> None:
        self.rx_ns = [-1] * SEQ_MODULUS  # lists: per-frame numpy indexing costs more (stats() converts)
        self.tx_ns = [-1] * SEQ_MODULUS
        self.duplicates = 0  # a seq received again (replay after a reconnect)
        self.connections = 0
        self.garbled = 0  # frame positions that were neither a marker nor silence (tones, cuts)
        self.digits: list[str] = []


class DropSchedule:
    def __init__(self, min_s: float, max_s: float, seed: int) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._rng = random.Random(seed)

    def next(self) -> tuple[float, bool]:
        """Lifetime of the next connection (s) and whether to abort TCP (else a 1011 close)."""
        return self._rng.uniform(self.min_s, self.max_s), self._rng.random() < 0.5


class EchoConnection:
    """One provider connection's audio: decodes input markers, replies, records, maybe drops itself."""

    def __init__(self, fake: EchoProvider, link: ProviderLink, tag: str, in_fmt: AudioFormat,
                 replies: Replies, reply_type: WSMsgType,
                 on_digit: Callable[[str], list[str | bytes]]) -> None:
        self.link = link
        self.record = fake.calls.setdefault(tag, CallRecord())
        self.record.connections += 1
        self._stream = MarkerStream(in_fmt)
        self._reply, self._make_reply = replies.frames, replies.make
        self._reply_type = reply_type
        self._on_digit = on_digit
        self._mulaw = in_fmt.encoding == "mulaw"
        self._detector = DtmfDetector(in_fmt.sample_rate_hz) if fake.digits else None
        self.drop_at: float | None = None
        self.abort = False
        if fake.drops is not None:
            lifetime, self.abort = fake.drops.next()
            self.drop_at = time.monotonic() + lifetime

    def audio(self, data: bytes, rx_ns: int) -> bool:
        """Echo what this chunk completes. False when the connection was dropped on purpose."""
        if self.drop_at is not None and time.monotonic() >= self.drop_at:
            self.link.drop(self.abort)
            return False
        rec, link = self.record, self.link
        for d in self._stream.feed(data):
            if d.kind == MARKER:
                seq = d.seq
                if rec.rx_ns[seq] >= 0:
                    rec.duplicates += 1
                else:
                    rec.rx_ns[seq] = rx_ns
            else:
                seq = _SILENCE_SEQ
                if d.kind != SILENCE:
                    rec.garbled += 1
            frame = self._reply[seq]
            if frame is None:
                frame = self._reply[seq] = self._make_reply(seq)
            tx = time.monotonic_ns()
            link.send(self._reply_type, frame)
            if seq >= 0 and rec.tx_ns[seq] < 0:
                rec.tx_ns[seq] = tx
        if self._detector is not None:
            pcm = ulaw_decode(data) if self._mulaw else data
            for digit in self._detector.feed(pcm):
                rec.digits.append(digit.digit)
                for message in self._on_digit(digit.digit):
                    link.send_any(message)
        return True


class ProviderLink(MessageListener):
    """One accepted provider WebSocket; subclasses speak the protocol."""

    def __init__(self, fake: EchoProvider) -> None:
        self.fake = fake
        self.conn: EchoConnection | None = None

    def send_any(self, message: str | bytes) -> None:
        """A str goes as TEXT, bytes as BINARY (what aiohttp's send_str / send_bytes did)."""
        if isinstance(message, str):
            self.send(TEXT, message.encode())
        else:
            self.send(BINARY, message)

    def end(self, code: WSCloseCode = WSCloseCode.OK, message: bytes = b"") -> None:
        """Close as aiohttp did when a handler returned or closed: CLOSE, then the peer's answer or 2 s."""
        self.close(code, message)
        transport = self.transport
        if transport is not None:
            asyncio.get_running_loop().call_later(2.0, transport.disconnect)

    def drop(self, abort: bool) -> None:
        if abort and self.transport is not None:
            self.closed = True
            self.transport.disconnect(graceful=False)  # no close frame: the gateway reads 1006
        else:
            self.end(WSCloseCode.INTERNAL_ERROR, b"Internal error occurred.")


class GeminiLink(ProviderLink):
    tag: str | None = None

    def on_message(self, msg_type: WSMsgType, data: bytes | memoryview, now_ns: int) -> None:
        m = orjson.loads(data)
        ri = m.get("realtimeInput") or m.get("realtime_input")
        if ri is not None and self.tag is not None:
            audio = ri.get("audio")
            if audio is None:
                return
            if self.conn is None:  # the first chunk's MIME type sets the input rate (16 kHz native, §1)
                rate = _RATE.search(audio.get("mimeType", ""))
                fmt = AudioFormat(encoding="pcm16", sample_rate_hz=int(rate.group(1))) if rate else PCM16_16K
                self.conn = EchoConnection(self.fake, self, self.tag, fmt, reply_table("gemini", fmt), BINARY,
                                           _gemini_digit)
            self.conn.audio(binascii.a2b_base64(audio["data"]), now_ns)
        elif "setup" in m:
            parts = ((m["setup"].get("systemInstruction") or {}).get("parts") or [{}])
            self.tag = str(parts[0].get("text", "untagged"))
            self.send(BINARY, b'{"setupComplete":{}}')


def _gemini_digit(digit: str) -> list[str | bytes]:
    # docs/providers/gemini.md §2.2: a finished input transcription ends the user turn.
    return [orjson.dumps({"serverContent": {"inputTranscription": {"text": digit, "finished": True}}})]


class OpenAILink(ProviderLink):
    def on_ws_connected(self, transport: WSTransport) -> None:
        super().on_ws_connected(transport)
        self.send(TEXT, orjson.dumps({"type": "session.created", "event_id": "event_0", "session": {
            "id": "sess_bench", "object": "realtime.session", "type": "realtime"}}))

    def on_message(self, msg_type: WSMsgType, data: bytes | memoryview, now_ns: int) -> None:
        if msg_type is not TEXT:
            self.end()
            return
        m = orjson.loads(data)
        kind = m.get("type")
        if kind == "input_audio_buffer.append" and self.conn is not None:
            self.conn.audio(binascii.a2b_base64(m["audio"]), now_ns)
        elif kind == "session.update":
            session = m.get("session") or {}
            audio = session.get("audio") or {}
            in_fmt = _openai_format((audio.get("input") or {}).get("format"))
            out_fmt = _openai_format((audio.get("output") or {}).get("format"))
            self.conn = EchoConnection(self.fake, self, str(session.get("instructions") or "untagged"), in_fmt,
                                       reply_table("openai", out_fmt), TEXT, self.fake.openai_digit)
            self.send(TEXT, orjson.dumps({"type": "session.updated", "event_id": "event_1",
                                          "session": {"id": "sess_bench", **session}}))


class LiveLink(ProviderLink):
    received = 0  # input bytes so far: the session timeline for transcript times
    fmt = PCM16_24K

    def on_message(self, msg_type: WSMsgType, data: bytes | memoryview, now_ns: int) -> None:
        if msg_type is not TEXT:
            self.end()
            return
        m = orjson.loads(data)
        kind = m.get("type")
        if kind == "session.input_audio.append" and self.conn is not None:
            audio = binascii.a2b_base64(m["audio"])
            self.received += len(audio)
            self.conn.audio(audio, now_ns)
        elif kind == "session.start":
            session = m.get("session") or {}
            self.fmt = fmt = _live_format((session.get("audio") or {}).get("format"))
            self.conn = EchoConnection(self.fake, self, str(session.get("instructions") or "untagged"), fmt,
                                       reply_table("live", fmt), TEXT, self._digit)
            self.send(TEXT, orjson.dumps({"type": "session.started", "event_id": "event_0", "session": {
                "id": "sess_bench", "expires_at": 0, "status": "active", **session}}))


    def _digit(self, digit: str) -> list[str | bytes]:
        return _live_digit(digit, self.received * 1000 // self.fmt.bytes_per_second)


def _live_digit(digit: str, now_ms: int) -> list[str | bytes]:
    # A timed input transcript delta; the echo's next reply delta finalizes the user turn.
    return [orjson.dumps({"type": "session.input_transcript.delta", "event_id": "event_t", "delta": digit,
                          "start_ms": max(0, now_ms - 100), "end_ms": now_ms}).decode()]


class EchoProvider:
    def __init__(self, *, drops: DropSchedule | None = None, digits: bool = False) -> None:
        self.drops = drops
        self.digits = digits
        self.calls: dict[str, CallRecord] = {}
        self._item = 0

    def route(self, request: WSUpgradeRequest) -> ProviderLink | WSUpgradeResponseWithListener | None:
        """picows' listener factory: the provider a path speaks, the stats side channel, or 404 (None)."""
        path, _, query = request.path.decode().partition("?")
        headers = request.headers
        bearer = headers.get("Authorization", "").startswith("Bearer ")
        if path == GEMINI_PATH:
            key = headers.get("x-goog-api-key") or parse_qs(query).get("key")
            return GeminiLink(self) if key else _status(401)
        if path == OPENAI_PATH:
            return OpenAILink(self) if bearer else _status(401)
        if path == LIVE_PATH:
            return LiveLink(self) if bearer else _status(401)
        if path == "/bench/stats":
            return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(
                self.stats(parse_qs(query).get("prefix", [""])[0]),
                {"Content-Type": "application/octet-stream"}), None)
        return None

    def openai_digit(self, digit: str) -> list[str | bytes]:
        # docs/providers/openai.md §2.2: committed (the gateway acknowledges the buffer), then the transcript.
        self._item += 1
        item = f"item_u{self._item}"
        return [orjson.dumps({"type": "input_audio_buffer.committed", "event_id": "event_c",
                              "item_id": item, "previous_item_id": None}).decode(),
                orjson.dumps({"type": "conversation.item.input_audio_transcription.completed",
                              "event_id": "event_t", "item_id": item, "content_index": 0,
                              "transcript": digit}).decode()]

    # -- side channel -------------------------------------------------------------------------------
    def stats(self, prefix: str) -> bytes:
        """The records of calls whose tag starts with `prefix` (npz), forgotten once returned."""
        tags = sorted(t for t in self.calls if t.startswith(prefix))
        records = [self.calls.pop(t) for t in tags]
        buf = io.BytesIO()
        n = len(records)
        np.savez(buf, tags=np.array(tags, dtype=str),
                 rx_ns=np.array([r.rx_ns for r in records], dtype=np.int64).reshape(n, SEQ_MODULUS),
                 tx_ns=np.array([r.tx_ns for r in records], dtype=np.int64).reshape(n, SEQ_MODULUS),
                 duplicates=np.array([r.duplicates for r in records], dtype=np.int64),
                 connections=np.array([r.connections for r in records], dtype=np.int64),
                 garbled=np.array([r.garbled for r in records], dtype=np.int64),
                 digits=np.array(["".join(r.digits) for r in records], dtype=str))
        return buf.getvalue()


def _status(code: int) -> WSUpgradeResponseWithListener:
    return WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(code), None)


def _openai_format(obj: object) -> AudioFormat:
    if isinstance(obj, dict) and obj.get("type") == "audio/pcmu":
        return MULAW_8K
    return PCM16_24K


def _live_format(obj: object) -> AudioFormat:
    if isinstance(obj, dict) and obj.get("type") == "audio/pcmu":
        return MULAW_8K
    if isinstance(obj, dict) and obj.get("rate") == 16000:
        return PCM16_16K
    return PCM16_24K


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="echo_provider", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--drop-min-s", type=float)
    p.add_argument("--drop-max-s", type=float)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--digits", action="store_true", help="detect DTMF digits and end user turns on them")
    args = p.parse_args(argv)
    drops = None
    if args.drop_min_s is not None:
        drops = DropSchedule(args.drop_min_s, args.drop_max_s or args.drop_min_s, args.seed)
    return serve(EchoProvider(drops=drops, digits=args.digits), args.host, args.port)


def serve(fake: EchoProvider, host: str, port: int) -> int:
    """Run the fake on picows + uvloop; print the listening line once bound (the parent waits for it)."""
    import uvloop

    async def run() -> None:
        server = await ws_create_server(fake.route, host, port, backlog=1024, max_frame_size=16 * 1024 * 1024)
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://{host}:{bound}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            server.close()

    try:
        uvloop.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0


def serve_app(app: web.Application, host: str, port: int) -> int:
    """Run an aiohttp `app` on uvloop (the bare relay's server); print the listening line once bound."""
    import uvloop

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1]
        print(f"listening on ws://{host}:{bound}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        uvloop.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
