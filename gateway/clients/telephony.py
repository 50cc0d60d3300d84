"""Telephony media streams (`/v1/twilio`, `/v1/telnyx`, `/v1/vonage`): one bridge for all vendors.

The vendor is the WebSocket client. Its serializer (gateway/telephony/) parses inbound frames and
builds outbound ones; this module only moves audio and marks between the serializer and the call
session. Invariants:
- caller audio goes to the session in the vendor's own format (μ-law 8k for Twilio), so a provider
  that takes it natively (OpenAI `audio/pcmu`) gets it without transcoding;
- reply audio leaves as exact 20 ms frames, paced no faster than real time (with a small lead so
  the vendor's jitter buffer never runs dry), and a mark after each batch tells us what was heard;
- on barge-in the vendor gets `clear` at once and the session learns how much the caller heard;
- bad vendor input is logged and counted, never fatal (the vendors have no error channel).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from gateway import metrics
from gateway.app_state import state
from gateway.audit import ANONYMOUS, audit, remote_addr
from gateway.auth import twilio_stream_url, verify_twilio_signature, verify_vonage_jwt
from gateway.clients.direct_writes import DirectWrites
from gateway.clients.receive import connection_limits, receive_frames
from gateway.clients.upgrade import admit, forget_socket, is_upgrade, open_socket, refuse
from gateway.clock import Clock
from gateway.errors import BadMessage, ClientError
from gateway.limits import FrameRateLimiter, limits_for_format
from gateway.logs import log_event
from gateway.session import CallSession
from gateway.session_config import SessionConfig, parse_provider_list
from gateway.sink import Heard
from gateway.telephony import (
    CallStarted,
    CallStopped,
    DtmfReceived,
    MarkPlayed,
    MediaReceived,
    MediaStreamSerializer,
    PlayoutTracker,
    TelephonyEvent,
    serializer_for,
)
from gateway.ws_direct import Pending, Sender
from providers.registry import PROVIDER_NAMES as PROVIDERS

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.clients.telephony")
FRAME_S = 0.020
LEAD_S = 0.100  # how far ahead of real time we may run: the vendor's buffer absorbs jitter
MARK_EVERY_FRAMES = 5  # a mark each 100 ms of reply audio: heard_ms exact to ~100 ms


class TelephonySink(DirectWrites):
    """Session → vendor: paced 20 ms frames, marks, clear. Time is the injected clock's."""

    exact_frames: ClassVar[bool] = True  # vendors take exact 20 ms frames

    def __init__(self, ws: web.WebSocketResponse, serializer: MediaStreamSerializer, client: str, clock: Clock) -> None:
        self.ws = ws
        self._clock = clock
        self._now = clock.now  # read per reply frame (`self._clock.now()` is not specialised on 3.11)
        self.ser = serializer
        self.client = client
        self.tracker: PlayoutTracker | None = None
        self._queue: collections.deque[tuple[str | bytes, bool]] = collections.deque()  # (frame, is_media)
        self._wake = asyncio.Event()
        self._pacer: asyncio.Task[None] | None = None
        self._item: str = ""
        self._since_mark = 0
        self._clears = 0  # barge-ins so far: a frame the pacer held across one is dropped
        self._next_at = clock.now()
        self._frame_bytes = 0  # bytes in one outbound frame, once the call started
        self._write: Sender | None = None
        self.open = True

    def started(self) -> None:
        assert self.ser.output_format is not None
        self.tracker = PlayoutTracker(self.ser.output_format)
        self._frame_bytes = self.ser.output_format.frame_bytes(self.ser.frame_ms)
        self._pacer = asyncio.create_task(self._pace())

    async def send_json(self, payload: dict[str, Any]) -> None:
        """Vendors have no event channel: events are not sent."""

    async def turn_completed(self) -> None:
        """The reply's last partial frame (padded with silence) goes out, then a mark."""
        self._enqueue(self.ser.flush_media())
        self._mark()

    async def send_audio(self, data: bytes, item_id: str | None = None) -> None:
        pending = self.send_audio_now(data, item_id)
        if pending is not None:
            await pending

    def send_audio_now(self, data: bytes, item_id: str | None = None) -> Awaitable[None] | None:
        """As send_audio, without a coroutine when nothing has to wait (the reply path runs in
        aiohttp's parser callback: gateway/ws_direct.py); else returns what to await."""
        if self.tracker is None:
            return None
        self._item = item_id or "reply"
        frames = self.ser.media_frames(data)
        if not frames:
            return None
        clock = self._now
        now = clock()
        if not self._queue and self.open and self._next_at - now + FRAME_S * len(frames) <= LEAD_S:
            # Fast path: nothing queued and within the lead: send now, no pacer wake-up per frame.
            self._count_sent(frames)
            if self._next_at < now:
                self._next_at = now
            for i, f in enumerate(frames):
                self._next_at += FRAME_S
                drain = self._write_now(f)
                if drain is not None:  # the send buffer is full: the rest after it drained
                    return self._send_rest(drain, frames[i + 1:], len(frames))
        else:
            self._enqueue(frames)
        return self._counted(len(frames))

    def _counted(self, n: int) -> Awaitable[None] | None:
        """n more reply frames handed over: a mark each MARK_EVERY_FRAMES."""
        self._since_mark += n
        if self._since_mark >= MARK_EVERY_FRAMES:
            if not self._queue and self.tracker is not None:
                # everything counted as sent is on the wire: the mark follows it now, without
                # waking the pacer (a task switch per mark, one each 100 ms of reply audio)
                self._since_mark = 0
                return self._write_now(self.ser.mark(self.tracker.new_mark()))
            self._mark()
        return None

    async def _send_rest(self, drain: Awaitable[None], rest: list[str | bytes], n: int) -> None:
        await drain
        for f in rest:
            self._next_at += FRAME_S
            await self._send(f)
        pending = self._counted(n)
        if pending is not None:
            await pending

    def _mark(self) -> None:
        if self.tracker is None:
            return
        self._since_mark = 0
        name = self.tracker.new_mark()
        self._queue.append((self.ser.mark(name), False))
        self._wake.set()

    def _count_sent(self, frames: list[str | bytes]) -> None:
        """Reply audio handed to the vendor (now or via the pacer), for heard-vs-sent at barge-in."""
        if self.tracker is not None:
            self.tracker.sent(self._item or "reply", len(frames) * self._frame_bytes)

    def _enqueue(self, frames: list[str | bytes]) -> None:
        if not frames:
            return
        self._count_sent(frames)
        self._queue.extend((f, True) for f in frames)
        self._wake.set()

    async def flush_audio(self) -> Heard | None:
        """Barge-in: `clear` now, drop what we had queued, report what the caller heard."""
        queued = bool(self._queue)
        self._queue.clear()
        self._clears += 1
        if self.tracker is None or not self.open:
            return None
        item = self._item or "reply"
        if not queued and self.tracker.pending_marks == 0 and self.tracker.heard_ms(item) >= \
                self.tracker.sent_ms(item):
            return None  # nothing is playing: no clear needed
        await self._send(self.ser.clear())
        heard = Heard(item, self.tracker.heard_ms(item), self.tracker.sent_ms(item))
        self.tracker.cleared()
        self._since_mark = 0
        return heard

    async def _pace(self) -> None:
        """One media frame per 20 ms, at most LEAD_S ahead of real time; marks go in order."""
        while self.open:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                self._next_at = max(self._next_at, self._clock.now())
                continue
            frame, media = self._queue.popleft()
            if media:
                ahead = self._next_at - self._clock.now()
                if ahead > LEAD_S:
                    clears = self._clears
                    await self._clock.sleep(ahead - LEAD_S)
                    if clears != self._clears:  # a barge-in while we waited: this frame is dropped too
                        continue
                self._next_at += FRAME_S
            await self._send(frame)

    async def _send(self, frame: str | bytes) -> None:
        pending = self._write_now(frame)
        if pending is not None:
            await pending

    async def close(self) -> None:
        self.open = False
        self._wake.set()
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pacer

    async def hang_up(self) -> None:
        """Operator hang-up: closing the media stream socket ends the vendor's stream."""
        await self.close()
        with contextlib.suppress(Exception):
            await self.ws.close(code=1000)


def config_from_start(ev: CallStarted, *, default_provider: str, default_fallback: tuple[str, ...]) -> SessionConfig:
    params = ev.params
    provider = params.get("provider") or default_provider
    if provider not in (*PROVIDERS, "auto"):
        raise BadMessage("customParameters.provider is not a known provider")
    fallback = parse_provider_list(params["fallback"], field_name="fallback", known=PROVIDERS) \
        if params.get("fallback") \
        else default_fallback
    return SessionConfig(provider=provider, fallback=fallback, input_format=ev.input_format,
                         output_format=ev.output_format, instructions=params.get("instructions", ""),
                         voice=params.get("voice") or None, language=params.get("language") or None)


class TelephonyConnection:
    def __init__(self, ws: web.WebSocketResponse, vendor: str, runtime: Runtime) -> None:
        self.ws = ws
        self.vendor = vendor
        self.rt = runtime
        self.ser = serializer_for(vendor)
        self.sink = TelephonySink(ws, self.ser, vendor, self.rt.clock)
        self.session: CallSession | None = None
        self.limiter = FrameRateLimiter(connection_limits(self.rt.settings), now=self.rt.clock.now)

    async def run(self) -> None:
        try:
            await receive_frames(self.ws, self.limiter, self.vendor, self.on_frame, self.on_client_error)
        finally:
            await self.sink.close()
            if self.session is not None:
                await self.session.end("caller_hung_up")

    def on_frame(self, frame: bytes | str) -> Pending:
        """One vendor frame. Returns None (done), or what to await: true when the call is over.
        Ordinary caller audio (50 a second) goes to the session without event objects or a
        coroutine (in aiohttp's parser callback: gateway/ws_direct.py), and so do the playback marks
        the vendor echoes (one each 100 ms of reply) and key presses; anything else is awaited."""
        session = self.session
        if session is not None and (audio := self.ser.media_audio(frame)) is not None:
            return session.push_audio_now(audio)  # b"" is nothing to the session
        events = self.ser.parse(frame)
        for i, ev in enumerate(events):
            if type(ev) is MarkPlayed:
                if self.sink.tracker is not None:
                    self.sink.tracker.played(ev.name)
            elif type(ev) is DtmfReceived and session is not None:
                session.note_dtmf(ev.digit)
            else:
                return self._on_events(events[i:])
        return None

    async def _on_events(self, events: list[TelephonyEvent]) -> bool:
        for ev in events:
            if type(ev) is MediaReceived and self.session is not None:  # 50 a second: past on_event's match
                await self.session.push_audio(ev.data)
            elif await self.on_event(ev):
                return True
        return False

    async def on_client_error(self, err: ClientError) -> None:
        """Vendors have no error channel: bad input is logged and counted, never fatal."""
        metrics.client_errors(self.vendor, err.code).inc()
        log_event(log, logging.WARNING, "telephony.bad_input", err.message, client=self.vendor,
                  code=err.code, session_id=self.session.id if self.session else None)

    async def on_event(self, ev: object) -> bool:
        match ev:
            case MediaReceived(data=data) if self.session is not None:  # first: 50 a second
                await self.session.push_audio(data)
            case CallStarted():
                s = self.rt.settings
                cfg = config_from_start(ev, default_provider=s.default_provider, default_fallback=s.fallback_chain)
                self.sink.started()
                if not s.max_bytes_per_s:  # JSON + base64 wraps the audio: ~1.6× on the wire
                    self.limiter.limits = limits_for_format(ev.input_format, self.limiter.limits, headroom=8.0,
                                                            wire_overhead=1.6)
                self.session = CallSession(runtime=self.rt, config=cfg, client=self.vendor, sink=self.sink)
                log_event(log, logging.INFO, "telephony.call_started", f"{self.vendor} call started",
                          client=self.vendor, session_id=self.session.id, provider=cfg.provider)
                await self.session.start()
            case DtmfReceived(digit=digit) if self.session is not None:
                self.session.note_dtmf(digit)
            case MarkPlayed(name=name):
                if self.sink.tracker is not None:
                    self.sink.tracker.played(name)
            case CallStopped():
                return True
        return False


def _vendor_signature(request: web.Request, vendor: str) -> bool | None:
    """What the vendor's own credential says: True (signed by the vendor: admitted without a client
    token), False (a signature is required and this one is wrong or missing: refused), None (no
    vendor credential configured for this endpoint: the client-token rules apply)."""
    settings = state(request).runtime.settings
    if vendor == "twilio" and settings.twilio_auth_token:
        # the path as sent (percent-escapes intact): Twilio signs the URL as written in the TwiML
        path, _, query = request.raw_path.partition("?")
        url = twilio_stream_url(settings.public_url, request.headers.get("host"), path, query)
        return verify_twilio_signature(settings.twilio_auth_token, url, {},
                                       request.headers.get("x-twilio-signature", ""))
    if vendor == "vonage" and settings.vonage_signature_secret:
        return verify_vonage_jwt(settings.vonage_signature_secret, request.headers.get("authorization"))
    return None


_SIGNATURE_NAMES = {"twilio": "X-Twilio-Signature", "vonage": "Vonage signed JWT (Authorization: Bearer)"}


def telephony_endpoint(vendor: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        if not is_upgrade(request):  # a plain GET on a WebSocket path
            return web.Response(status=404, text="Not Found")
        signed = _vendor_signature(request, vendor)
        if signed is False:
            metrics.voice_gateway_client_errors.labels(vendor, "unauthorized").inc()
            log_event(log, logging.WARNING, "client.refused",
                      f"{vendor} upgrade refused: bad or missing {_SIGNATURE_NAMES[vendor]}",
                      client=vendor, reason="signature")
            audit(f"{vendor}.upgrade", "refused", remote=remote_addr(request), actor=ANONYMOUS,
                  level=logging.WARNING, status=403, reason="signature")
            return refuse(403)
        if signed:  # the vendor's signature is the credential: no client token (Twilio cannot send one)
            if state(request).runtime.draining:
                return refuse(503)
        elif isinstance(refused := admit(request, client=vendor, browser=False), web.Response):
            return refused
        ws = await open_socket(request)
        try:
            await TelephonyConnection(ws, vendor, state(request).runtime).run()
        finally:
            forget_socket(request, ws)
        return ws

    return endpoint
