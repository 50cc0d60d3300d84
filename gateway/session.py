"""A call session: the client side of a call, its conversation record and its replay buffer.
Which provider the call is on, and moving it, is gateway/failover.py's job (the session listens).

Invariants:
- the config is kept for the whole call and handed to every new link (reconnect or switch);
- the session is the one writer of the replay buffer, which belongs to the call, not to a link, so
  a switch replays it to the new provider (resampled to its input format by the new link's converter);
- only the current link's events reach the client; a replaced link is closed and ignored;
- the client is reached only through its ClientSink (gateway/sink.py), never by asking its kind.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any

from audio.errors import AudioError
from audio.formats import AudioChunk
from gateway import metrics
from gateway.errors import BadAudio, GatewayError
from gateway.events import (
    AssistantTurn,
    ClientEvent,
    ConversationItem,
    ErrorEvent,
    LinkLostReason,
    SessionEnded,
    SessionStarted,
    ToolInvocation,
    ToolOutput,
    UserTurn,
    WarningEvent,
)
from gateway.failover import Failover
from gateway.link import ProviderLink
from gateway.logs import log_event
from gateway.playback import ReplyPlayback
from gateway.replay import ReplayBuffer
from gateway.runtime import Runtime
from gateway.session_config import SessionConfig
from gateway.session_provider_events import ProviderEventHandling
from gateway.session_switching import SwitchHandling
from gateway.sink import ClientSink
from gateway.states import LinkState, SessionState
from providers.base import Frame, ProviderAdapter

log = logging.getLogger("gateway.session")
# enum members as module constants: on Python 3.11 `Enum.MEMBER` is a ~0.13 µs lookup, and these
# are read per frame
_WAITING, _LINK_UP = SessionState.WAITING, LinkState.UP


class CallSession(SwitchHandling, ProviderEventHandling):
    def __init__(self, *, runtime: Runtime, config: SessionConfig, client: str, sink: ClientSink,
                 session_id: str | None = None) -> None:
        self.rt = runtime
        self.config = config
        self.client = client
        self.sink = sink
        self.id = session_id or uuid.uuid4().hex[:16]
        self.started_at = runtime.clock.now()
        self.replay = ReplayBuffer(maxlen=runtime.settings.replay_buffer_chunks)
        self.failover: Failover[ProviderLink] = Failover(
            session_id=self.id, config=config, available=runtime.usable_providers, breaker=runtime.breakers.get,
            new_link=self._new_link, clock=runtime.clock, listener=self,
            return_to_primary_after_s=runtime.settings.return_to_primary_after_s,
            retry_delay_s=self._waiting_retry_delay_s)
        self.conversation: list[ConversationItem] = []
        self.pending_tools: dict[str, ToolInvocation] = {}
        self.recent_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.counters = collections.Counter[str]()
        self._seq = 0
        self._offset_s = 0.0
        self.playback = ReplyPlayback(sink=sink, output_format=config.output_format, json_audio=config.json_audio,
                                      emit=self._emit)
        self._assistant_text = ""  # the current assistant turn's transcript so far
        self._assistant_index: int | None = None  # its AssistantTurn in the record, once final
        self._billed: dict[tuple[str, str], float] = {}  # (provider, its session) → billed seconds so far
        self._turn_item: str | None = None
        self._turn_end_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def link(self) -> ProviderLink | None:
        """The current provider link (failover decides which)."""
        return self.failover.link

    @property
    def state(self) -> SessionState:
        return self.failover.state

    @property
    def provider(self) -> str | None:
        link = self.failover.link
        return link.provider if link is not None else None

    @property
    def switch_refusal(self) -> str | None:
        """Why the last switch was refused: call_ended, circuit_open, or the class of the target's failure."""
        return self.failover.last_refusal

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self.rt.sessions[self.id] = self
        metrics.voice_gateway_sessions_active.labels(self.client).inc()
        log_event(log, logging.INFO, "session.started", "call started", session_id=self.id,
                  client=self.client, provider=self.config.provider)
        link = await self.failover.start()
        if self.failover.ended:
            return
        self._live_segment = (link.provider, self.rt.clock.now()) if link else None
        adapter = self.rt.adapter_class(link.provider) if link else None
        await self._emit(SessionStarted(
            provider=link.provider if link else "none", fallback=list(self.config.fallback),
            audio_input=self.config.input_wire(), audio_output=self.config.output_format.to_wire(),
            capabilities=adapter.capabilities.to_wire() if adapter else {}))
        if self.config.ignored_options:
            names = ", ".join(self.config.ignored_options)
            log_event(log, logging.WARNING, "session.unknown_options", f"ignored unknown provider_options: {names}",
                      session_id=self.id, options=list(self.config.ignored_options))
            await self._emit(WarningEvent(code="unknown_option", message=f"unknown provider_options ignored: {names}"))
        if link is None:  # every breaker of the chain refused: resuming later is a circuit_open switch
            await self.failover.wait_for_provider("circuit_open")

    async def end(self, reason: str = "client_ended") -> None:
        if self.failover.ended:
            return
        for t in self._tasks:
            if not t.done() and t is not asyncio.current_task():
                t.cancel()
        await self.failover.end()
        self._bill_live_segment(None)
        self.rt.sessions.pop(self.id, None)
        metrics.voice_gateway_sessions_active.labels(self.client).dec()
        totals: dict[str, Any] = {"audio_chunks_in": self._seq, "duration_s": round(self.rt.clock.now() - self.started_at, 3),
                  "switches": self.counters["switches"], "reconnects": self.counters["reconnects"],
                  "dropped_audio_chunks": self.replay.dropped_total}
        if self._billed:
            totals["provider_billed_s"] = round(sum(self._billed.values()), 3)
        log_event(log, logging.INFO, "session.ended", f"call ended ({reason})", session_id=self.id, **totals)
        try:
            await self._emit(SessionEnded(reason=reason, totals=totals))
        except Exception:  # the client may already be gone
            pass
        self.rt.remember_ended({**self.snapshot(detail=True), "state": "ended", "ended_reason": reason,
                                "ended_at": self.rt.wall_time()})

    def _bill_live_segment(self, next_provider: str | None) -> None:
        """The call's time on its provider so far goes to the cost ledger (priced per provider minute)."""
        segment, now = getattr(self, "_live_segment", None), self.rt.clock.now()
        costs = getattr(self.rt, "costs", None)
        if segment is not None and costs is not None:
            costs.record_live(segment[0], now - segment[1], session_id=self.id)
        self._live_segment = (next_provider, now) if next_provider else None

    # -- client → provider ----------------------------------------------------------------------
    async def push_audio(self, data: bytes) -> None:
        pending = self.push_audio_now(data)
        if pending is not None:
            await pending

    def push_audio_now(self, data: bytes) -> Awaitable[None] | None:
        """As push_audio, without a coroutine when nothing has to wait (the frame path runs in
        aiohttp's parser callback: gateway/ws_direct.py); else returns what to await."""
        if not data:
            return None
        fmt = self.config.input_format
        if len(data) & 1 and fmt.encoding == "pcm16":
            raise BadAudio("PCM16 audio must have an even number of bytes")
        t0 = perf_counter()
        chunk = AudioChunk(data, fmt, self._seq, self._offset_s)  # positional: see AudioChunk.__init__
        self._seq += 1
        self._offset_s = chunk.end_s
        failover = self.failover
        link = failover.link if failover.state is not _WAITING else None
        up = link is not None and link.state is _LINK_UP
        # the one writer of the replay buffer: a chunk is kept before it is sent, so a link that goes
        # down (or a switch) replays it; an overflow while no link is up is a drop, counted here
        if self.replay.append(chunk, link_up=up):
            metrics.voice_gateway_replay_dropped_chunks.labels(
                link.provider if link is not None else self.config.provider).inc()
        if link is not None:
            try:
                pending = link.send_audio_now(chunk)
            except AudioError as e:  # the audio layer's own error is the client's BadAudio here
                raise BadAudio(str(e)) from None
            if pending is not None:
                return _sent_after(pending, t0)
            metrics.UPLINK_LATENCY.observe(perf_counter() - t0)
        return None

    def note_dtmf(self, digit: str) -> None:
        """A key press from the phone network (Twilio `dtmf`): surfaced to operators and logs."""
        self.counters["dtmf"] += 1
        self.recent_events.append({"type": "dtmf", "session_id": self.id, "digit": digit,
                                   "ts": round(self.rt.wall_time(), 6)})
        log_event(log, logging.INFO, "telephony.dtmf", f"caller pressed {digit}", session_id=self.id, digit=digit)

    async def commit(self) -> None:
        await self._send_control(lambda a: a.commit_frames())
        self._turn_end_at = self.rt.clock.now()

    async def send_text(self, text: str) -> None:
        self.conversation.append(UserTurn(text))
        await self._send_control(lambda a: a.text_frames(text), what="text input")
        self._turn_end_at = self.rt.clock.now()

    async def tool_result(self, call_id: str, output: str) -> None:
        inv = self.pending_tools.pop(call_id, None)
        name = inv.name if inv else ""
        self.conversation.append(ToolOutput(call_id, name, output))
        if not await self._send_control(lambda a: a.tool_result_frames(call_id, name, output), what="tool.result"):
            await self._emit(ErrorEvent(code="tool_result_not_delivered", provider=self.provider,
                                        message="the provider link is down; the result is kept in the "
                                                "conversation and carried to the next connection"))

    async def cancel_response(self) -> None:
        await self.sink.flush_audio()
        await self._send_control(lambda a: a.cancel_frames())

    async def truncate_heard(self, item_id: str, heard_ms: int) -> None:
        """Barge-in on telephony: keep only what the caller heard."""
        await self._send_control(lambda a: a.truncate_frames(item_id, heard_ms))

    async def _send_control(self, build: Callable[[ProviderAdapter], list[Frame]], *,
                            what: str | None = None) -> bool:
        """Send control frames on the current link. With `what`, a provider that has no frames for
        it (Deepgram: speech-to-text only) gets the client an explicit `not_supported` error."""
        link = self.link
        if link is None or link.adapter is None:
            return False
        frames = build(link.adapter)
        if not frames and what is not None:
            log_event(log, logging.INFO, "session.not_supported", f"{what} is not supported by {link.provider}",
                      session_id=self.id, provider=link.provider)
            await self._emit(ErrorEvent(
                code="not_supported", provider=link.provider,
                message=f"{link.provider} is speech-to-text only here: {what} is not supported "
                        "(it is kept in the conversation and carried if the call switches provider)"))
            return True
        return await link.send_frames(frames)

    # -- LinkSink ------------------------------------------------------------------------------------
    async def on_client_event(self, link: ProviderLink, event: ClientEvent) -> None:
        # as for provider events: the current link, or the one a switch is leaving (a reconnect that
        # completes while the switch is opening must be told: the switch may fail and the call stay)
        if link is self.link or link is self.replay.owner:
            if event.TYPE == "connection.reconnecting" and getattr(event, "attempt", 0) == 1:
                self.counters["reconnects"] += 1
            await self._emit(event)

    async def on_link_lost(self, link: ProviderLink, reason: LinkLostReason, error: GatewayError | None) -> None:
        await self.failover.link_lost(link, reason)

    # -- a new link for the failover (the session is its LinkSink) -----------------------------------
    def _new_link(self, provider: str) -> ProviderLink:
        rt = self.rt
        cfg = self.config.with_provider(provider)
        adapter_cls = rt.adapter_class(provider)
        return ProviderLink(  # the endpoint is looked up per connection: a rotated key applies to the next one
            provider=provider, adapter_factory=lambda: adapter_cls(cfg, rt.endpoints[provider]),
            breaker=rt.breakers.get(provider), connector=rt.connector, clock=rt.clock,
            policy=rt.settings.reconnect, replay=self.replay, sink=self, history=self._carried,
            session_id=self.id, rotate_after_s=rt.rotate_after_s(provider),
        )

    def _carried(self) -> list[ConversationItem]:
        return list(self.conversation)

    # -- plumbing ------------------------------------------------------------------------------------
    async def _emit(self, event: ClientEvent) -> None:
        wire = event.to_wire(self.id, self.rt.wall_time())
        if wire["type"] != "audio.delta":
            self.recent_events.append(wire)
            self.rt.notify_session_event(self, wire)  # fleet registry, operator controls
        await self.sink.send_json(wire)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def snapshot(self, *, detail: bool = False) -> dict[str, Any]:
        last = self.recent_events[-1]["type"] if self.recent_events else None
        out: dict[str, Any] = {
            "id": self.id, "provider": self.provider, "state": self.state.value, "client": self.client,
            "link_state": self.link.state.value if self.link else None,
            "duration_s": round(self.rt.clock.now() - self.started_at, 1), "replay_depth": len(self.replay),
            "replay_limit": self.replay.maxlen,
            "last_event": last, "counters": {"audio_chunks_in": self._seq, "dropped_audio_chunks":
                                             self.replay.dropped_total, **dict(self.counters),
                                             **(self.link.counters if self.link else {})},
        }
        if detail:
            out["recent_events"] = list(self.recent_events)
            out["conversation_items"] = len(self.conversation)
            out["transcript"] = [{"role": "user" if isinstance(i, UserTurn) else "assistant", "text": i.text}
                                 for i in self.conversation if isinstance(i, UserTurn | AssistantTurn)]

            out["fallback"] = list(self.config.fallback)
        return out


async def _sent_after(pending: Awaitable[None], t0: float) -> None:
    try:
        await pending
    except AudioError as e:
        raise BadAudio(str(e)) from None
    metrics.UPLINK_LATENCY.observe(perf_counter() - t0)
