"""The native client protocol on `WS /v1/voice` (docs/protocol.md).

Text frames are JSON objects with a `type`; binary frames are audio in the session's input format.
Every bad input gets an `error` event with a stable code and the call goes on; nothing a client
sends can crash the connection handler.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import pybase64
from aiohttp import WSMsgType, web

from audio.compressed import OpusDecoder, WebmOpusDecoder, compressed_decoder
from audio.errors import AudioError
from gateway import metrics
from gateway.app_state import state
from gateway.auth import TokenClaims
from gateway.clients.direct_writes import DirectWrites
from gateway.clients.receive import connection_limits, receive_frames
from gateway.clients.upgrade import admit, forget_socket, open_socket
from gateway.errors import BadAudio, BadMessage, ClientError, GatewayError, RateLimited
from gateway.events import ErrorEvent
from gateway.limits import FrameRateLimiter, limits_for_format
from gateway.logs import log_event
from gateway.session import CallSession
from gateway.session_config import (
    SessionConfig,
    parse_audio_format,
    parse_input_audio,
    parse_provider_list,
    parse_tools,
)
from gateway.sink import Heard
from gateway.ws_direct import Pending, Sender
from providers import options as provider_options
from providers.registry import PROVIDER_NAMES as PROVIDERS

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.clients.native")
CLIENT = "native"
# enum members as module constants: on Python 3.11 `Enum.MEMBER` is a ~0.13 µs lookup, and these
# are read per frame
_TEXT = WSMsgType.TEXT


class NativeSink(DirectWrites):
    """Session → client. Sends are dropped once the client is gone (the session ends right after)."""

    exact_frames: ClassVar[bool] = False  # binary frames of any length

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._write: Sender | None = None
        self.open = True

    async def send_json(self, payload: dict[str, Any]) -> None:
        if self.open:
            try:  # orjson's bytes go out as the text frame as they are (no str round trip)
                await self.ws.send_frame(orjson.dumps(payload), _TEXT)
            except Exception:
                self.open = False

    async def send_audio(self, data: bytes, item_id: str | None = None) -> None:
        pending = self.send_audio_now(data, item_id)
        if pending is not None:
            await pending

    def send_audio_now(self, data: bytes, item_id: str | None = None) -> Awaitable[None] | None:
        return self._write_now(data)  # a reply chunk is one binary frame

    async def turn_completed(self) -> None:
        """Nothing held back: the client hears `turn.completed` as an event."""

    async def flush_audio(self) -> Heard | None:
        """Native clients flush their own playback on `turn.interrupted`."""
        return None

    async def hang_up(self) -> None:
        if self.open:
            self.open = False
            with contextlib.suppress(Exception):  # the client may be gone already
                await self.ws.close(code=1000)


def parse_session_start(msg: dict[str, Any], *, default_provider: str,
                        default_fallback: tuple[str, ...]) -> SessionConfig:
    provider = msg.get("provider", default_provider)
    if provider not in (*PROVIDERS, "auto"):
        raise BadMessage(f"provider must be one of {', '.join(PROVIDERS)} or auto")
    fallback = parse_provider_list(msg.get("fallback", list(default_fallback)), field_name="fallback",
                                   known=PROVIDERS)
    if not fallback:  # an empty list means "no preference": auto uses the default chain, others only themselves
        fallback = default_fallback if provider == "auto" else (provider,)
    audio = msg.get("audio") or {}
    if not isinstance(audio, dict):
        raise BadMessage("audio must be an object with input and output formats")
    defaults = SessionConfig()
    out_raw = audio.get("output")
    json_audio = isinstance(out_raw, dict) and out_raw.get("transport") == "json"
    for key in ("instructions", "voice", "language"):
        if msg.get(key) is not None and not isinstance(msg[key], str):
            raise BadMessage(f"{key} must be a string")
    options = msg.get("provider_options") or {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise BadMessage("provider_options must map provider names to objects")
    if any(not isinstance(v.get("model", ""), str) for v in options.values()):
        raise BadMessage("provider_options.<provider>.model must be a string")
    input_format, input_codec = parse_input_audio(audio.get("input"), defaults.input_format)
    options, unknown = provider_options.split(options)
    return SessionConfig(
        provider=provider, fallback=fallback, input_format=input_format, input_codec=input_codec,
        output_format=parse_audio_format(
            {k: v for k, v in out_raw.items() if k != "transport"} if isinstance(out_raw, dict) else out_raw,
            defaults.output_format),
        instructions=msg.get("instructions") or "", voice=msg.get("voice"), language=msg.get("language"),
        tools=parse_tools(msg.get("tools")), provider_options=options, json_audio=json_audio,
        ignored_options=tuple(unknown),
    )


class NativeConnection:
    def __init__(self, ws: web.WebSocketResponse, claims: TokenClaims, runtime: Runtime) -> None:
        self.ws = ws
        self.claims = claims
        self.rt = runtime
        self.sink = NativeSink(ws)
        self.session: CallSession | None = None
        self.decoder: OpusDecoder | WebmOpusDecoder | None = None  # compressed input (opus, webm)
        self.base_limits = connection_limits(self.rt.settings)
        self.limiter = FrameRateLimiter(self.base_limits, now=self.rt.clock.now)

    async def close(self, code: int = 1000) -> None:
        """Close our side; a client that already closed (hung up right after session.end) is normal,
        not an error."""
        self.sink.open = False
        with contextlib.suppress(RuntimeError, OSError):
            await self.ws.close(code=code)

    async def error(self, err: GatewayError) -> None:
        metrics.client_errors(CLIENT, err.code).inc()
        sid = self.session.id if self.session else ""
        await self.sink.send_json(ErrorEvent.from_error(err).to_wire(sid, self.rt.wall_time()))

    async def run(self) -> None:
        watchdog = asyncio.create_task(self.idle_watchdog())
        try:
            await receive_frames(self.ws, self.limiter, CLIENT, self.on_frame, self.on_client_error)
        finally:
            watchdog.cancel()
            self.sink.open = False
            if self.session is not None:
                await self.session.end("client_disconnected")

    async def idle_watchdog(self) -> None:
        """A timer beside the read loop (not a timeout per frame: that would cost on the hot path)."""
        while (wait := self.limiter.seconds_until_idle()) > 0:
            await self.rt.clock.sleep(wait)
        await self.idle_out()

    async def idle_out(self) -> None:
        """No message for the idle timeout: end the call cleanly (session.ended), then close."""
        log_event(log, logging.INFO, "client.idle_timeout", "client idle: closing", client=CLIENT,
                  session_id=self.session.id if self.session else None)
        if self.session is not None:
            await self.session.end("idle_timeout")
            self.session = None
        await self.close()

    def on_frame(self, frame: bytes | str) -> Pending:
        """Binary: audio; text: one JSON message. Returns None (done), or what to await: true when
        the call is over. PCM/G.711 audio goes to the session without a coroutine (in aiohttp's
        parser callback: gateway/ws_direct.py)."""
        if isinstance(frame, bytes):
            session = self.session
            if session is not None and self.decoder is None:  # PCM/G.711: straight to the session
                return session.push_audio_now(frame)
            return self.on_audio(frame)
        return self.on_text(frame)

    async def on_client_error(self, err: ClientError) -> None:
        if isinstance(err, RateLimited):
            log_event(log, logging.WARNING, "client.rate_limited", err.message, client=CLIENT)
        await self.error(err)

    async def on_audio(self, data: bytes) -> None:
        if self.session is None:
            raise BadMessage("send session.start before audio", code="session_not_started")
        await self.push_audio(self.session, data)

    async def push_audio(self, session: CallSession, data: bytes) -> None:
        if self.decoder is not None:
            try:
                data = self.decoder.decode(data) if isinstance(self.decoder, OpusDecoder) else self.decoder.feed(data)
            except AudioError as e:  # the audio layer's own error is the client's BadAudio here
                raise BadAudio(str(e)) from None
            if not data:
                return
        await session.push_audio(data)

    async def on_text(self, text: str) -> bool:
        """Handle one JSON message; True when the call is over."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise BadMessage("text frames must be JSON objects") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise BadMessage("text frames must be JSON objects with a string type")
        kind = msg["type"]
        if kind == "session.start":
            if self.session is not None:
                raise BadMessage("session already started")
            s = self.rt.settings
            cfg = parse_session_start(msg, default_provider=s.default_provider, default_fallback=s.fallback_chain)
            if cfg.input_codec is not None:
                self.decoder = compressed_decoder(cfg.input_codec, cfg.input_format.sample_rate_hz)
            self.session = CallSession(runtime=self.rt, config=cfg, client=CLIENT, sink=self.sink)
            # ceilings follow the call's audio bitrate (8× real time: room to catch up after a stall)
            # unless the operator set an explicit VG_MAX_BYTES_PER_S
            if not s.max_bytes_per_s:
                self.limiter.limits = limits_for_format(cfg.input_format, self.base_limits, headroom=8.0,
                                                        wire_overhead=1.4 if cfg.json_audio else 1.0)
            await self.session.start()
            return False
        session = self.session
        if session is None:
            raise BadMessage("send session.start first", code="session_not_started")
        match kind:
            case "audio.append":
                audio = msg.get("audio")
                if not isinstance(audio, str):
                    raise BadAudio("audio.append needs base64 audio")
                try:
                    raw = pybase64.b64decode(audio, validate=True)
                except (binascii.Error, ValueError):
                    raise BadAudio("audio is not valid base64") from None
                await self.push_audio(session, raw)
            case "audio.commit":
                await session.commit()
            case "text":
                if not isinstance(msg.get("text"), str) or not msg["text"]:
                    raise BadMessage("text needs a non-empty string")
                await session.send_text(msg["text"])
            case "tool.result":
                call_id, output = msg.get("call_id"), msg.get("output")
                if not isinstance(call_id, str):
                    raise BadMessage("tool.result needs call_id")
                if not isinstance(output, str):
                    output = orjson.dumps(output).decode()
                await session.tool_result(call_id, output)
            case "response.cancel":
                await session.cancel_response()
            case "provider.switch":
                target = msg.get("provider")
                if target not in PROVIDERS:
                    raise BadMessage(f"provider must be one of {', '.join(PROVIDERS)}")
                if not self.claims.allow_switch:
                    raise BadMessage("this token may not switch providers", code="forbidden")
                if not await session.switch(target, "client"):
                    await self.error(GatewayError(f"could not switch to {target} right now",
                                                  code="provider_unavailable"))
            case "session.end":
                await session.end("client_ended")
                self.session = None
                await self.close()
                return True
            case _:
                raise BadMessage(f"unknown message type {kind[:40]!r}", code="unknown_type")
        return False


async def native_endpoint(request: web.Request) -> web.StreamResponse:
    admitted = admit(request, client=CLIENT, browser=True)
    if isinstance(admitted, web.Response):
        return admitted
    claims, subprotocol = admitted
    ws = await open_socket(request, subprotocol)
    try:
        await NativeConnection(ws, claims, state(request).runtime).run()
    finally:
        forget_socket(request, ws)
    return ws
