"""A call session: the client side, the current provider link, the conversation record, switching.

Invariants:
- the config is kept for the whole call and handed to every new link (reconnect or switch);
- the replay buffer belongs to the call, not to a link, so a switch replays it to the new provider
  (resampled to its input format by the new link's converter);
- only the current link's events reach the client; a replaced link is closed and ignored;
- a call with no usable provider stays open, buffering within the replay bound, and resumes as soon
  as a breaker in its fallback chain admits a call.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import enum
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from audio.convert import FormatConverter
from audio.formats import AudioChunk, AudioFormat
from audio.resample import group_delay_s
from gateway import metrics
from gateway.errors import BadAudio, CircuitOpen, GatewayError, ProviderError
from gateway.events import (
    AssistantTurn,
    AudioDelta,
    ClientEvent,
    ConversationItem,
    ErrorEvent,
    ProviderEvent,
    ProviderFailed,
    ProviderSwitched,
    ReplyAudio,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallCancelled,
    ToolCallEvent,
    ToolInvocation,
    ToolOutput,
    Transcript,
    TranscriptEvent,
    TurnCompleted,
    TurnEvent,
    TurnInterrupted,
    TurnStarted,
    UserSpeechStarted,
    UserTurn,
)
from gateway.link import LinkState, ProviderLink
from gateway.logs import log_event
from gateway.replay import ReplayBuffer
from gateway.runtime import Runtime

log = logging.getLogger("gateway.session")


class SessionState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    SWITCHING = "switching"
    WAITING = "waiting_for_provider"
    ENDED = "ended"


class ClientSink(Protocol):
    """How a session talks back to its client (native WebSocket, Twilio, ...)."""

    async def send_json(self, payload: dict[str, Any]) -> None: ...

    async def send_audio(self, data: bytes, item_id: str | None = None) -> None:
        """Reply audio in the session's output format (`item_id`: the provider's reply item)."""

    async def flush_audio(self) -> tuple[str, int, int] | None:
        """Barge-in: drop queued playback now. Telephony sinks return (item_id, heard_ms, sent_ms)
        for the reply that was playing, from the playback marks; None when they cannot tell."""


class CallSession:
    def __init__(self, *, runtime: Runtime, config, client: str, sink: ClientSink,  # noqa: ANN001
                 session_id: str | None = None) -> None:
        self.rt = runtime
        self.config = config
        self.client = client
        self.sink = sink
        self.id = session_id or uuid.uuid4().hex[:16]
        self.state = SessionState.STARTING
        self.started_at = runtime.clock.now()
        self.replay = ReplayBuffer(maxlen=runtime.settings.replay_buffer_chunks)
        self.link: ProviderLink | None = None
        self.conversation: list[ConversationItem] = []
        self.pending_tools: dict[str, ToolInvocation] = {}
        self.recent_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.counters = collections.Counter[str]()
        self._seq = 0
        self._offset_s = 0.0
        self._out_conv: FormatConverter | None = None
        self._out_fmt: AudioFormat | None = None
        self._assistant_text = ""  # the current assistant turn's transcript so far
        self._assistant_index: int | None = None  # its AssistantTurn in the record, once final
        self._turn_item: str | None = None
        self._turn_end_at: float | None = None
        self._waiter: asyncio.Task[None] | None = None
        self._switch_lock = asyncio.Lock()
        self._counted: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def provider(self) -> str | None:
        return self.link.provider if self.link is not None else None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self.rt.sessions[self.id] = self
        metrics.voice_gateway_sessions_active.labels(self.client).inc()
        log_event(log, logging.INFO, "session.started", "call started", session_id=self.id,
                  client=self.client, provider=self.config.provider)
        chain = self._chain(first=self.config.provider)
        link = await self._open_first_usable(chain)
        self.state = SessionState.ACTIVE if link else SessionState.WAITING
        adapter = self.rt.adapter_class(link.provider) if link else None
        await self._emit(SessionStarted(
            provider=link.provider if link else "none", fallback=list(self.config.fallback),
            audio_input=self.config.input_format.to_wire(), audio_output=self.config.output_format.to_wire(),
            capabilities=adapter.capabilities.to_wire() if adapter else {}))
        if link is None:  # every breaker of the chain refused: resuming later is a circuit_open switch
            await self._no_provider(None, "circuit_open")

    async def end(self, reason: str = "client_ended") -> None:
        if self.state is SessionState.ENDED:
            return
        self.state = SessionState.ENDED
        for t in [self._waiter, *self._tasks]:
            if t is not None and not t.done() and t is not asyncio.current_task():
                t.cancel()
        self._count_active(None)
        if self.link is not None:
            await self.link.close()
        self.rt.sessions.pop(self.id, None)
        metrics.voice_gateway_sessions_active.labels(self.client).dec()
        totals = {"audio_chunks_in": self._seq, "duration_s": round(self.rt.clock.now() - self.started_at, 3),
                  "switches": self.counters["switches"], "reconnects": self.counters["reconnects"],
                  "dropped_audio_chunks": self.replay.dropped_total}
        log_event(log, logging.INFO, "session.ended", f"call ended ({reason})", session_id=self.id, **totals)
        try:
            await self._emit(SessionEnded(reason=reason, totals=totals))
        except Exception:  # the client may already be gone
            pass

    # -- client → provider ----------------------------------------------------------------------
    async def push_audio(self, data: bytes) -> None:
        fmt = self.config.input_format
        if not data:
            return
        if fmt.encoding == "pcm16" and len(data) % 2:
            raise BadAudio("PCM16 audio must have an even number of bytes")
        t0 = time.perf_counter()
        chunk = AudioChunk(data=data, fmt=fmt, seq=self._seq, offset_s=self._offset_s)
        self._seq += 1
        self._offset_s = chunk.end_s
        if self.link is not None and self.state is not SessionState.WAITING:
            await self.link.send_audio(chunk)
            metrics.UPLINK_LATENCY.observe(time.perf_counter() - t0)
        elif self.replay.append(chunk, link_up=False):
            metrics.voice_gateway_replay_dropped_chunks.labels(self.config.provider).inc()

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
        await self._send_control(lambda a: a.text_frames(text))
        self._turn_end_at = self.rt.clock.now()

    async def tool_result(self, call_id: str, output: str) -> None:
        inv = self.pending_tools.pop(call_id, None)
        name = inv.name if inv else ""
        self.conversation.append(ToolOutput(call_id, name, output))
        if not await self._send_control(lambda a: a.tool_result_frames(call_id, name, output)):
            await self._emit(ErrorEvent(code="tool_result_not_delivered", provider=self.provider,
                                        message="the provider link is down; the result is kept in the "
                                                "conversation and carried to the next connection"))

    async def cancel_response(self) -> None:
        await self.sink.flush_audio()
        await self._send_control(lambda a: a.cancel_frames())

    async def truncate_heard(self, item_id: str, heard_ms: int) -> None:
        """Barge-in on telephony: keep only what the caller heard."""
        await self._send_control(lambda a: a.truncate_frames(item_id, heard_ms))

    async def _send_control(self, build) -> bool:  # noqa: ANN001
        link = self.link
        if link is None or link.adapter is None:
            return False
        return await link.send_frames(build(link.adapter))

    # -- switching ---------------------------------------------------------------------------------
    def _chain(self, *, first: str | None = None, exclude: Sequence[str] = ()) -> list[str]:
        order = ([first] if first and first != "auto" else []) + list(self.config.fallback)
        seen: list[str] = []
        for p in (self.rt.resolve_provider(name, self.config) for name in order):
            if p not in seen and p not in exclude and p in self.rt.endpoints:
                seen.append(p)
        return seen

    async def _open_first_usable(self, chain: Sequence[str]) -> ProviderLink | None:
        for provider in chain:
            # link.open() asks the breaker (admit): a refusal is counted as `rejected` and logged
            link = self._new_link(provider)
            previous, self.link = self.link, link  # live audio now buffers for the new link
            try:
                await link.open()
            except (CircuitOpen, ProviderError) as e:
                self.link = previous
                log_event(log, logging.WARNING, "switch.candidate_failed",
                          f"could not open {provider}: {e}", session_id=self.id, provider=provider)
                continue
            self._count_active(provider)
            return link
        return None

    def _new_link(self, provider: str) -> ProviderLink:
        rt = self.rt
        cfg = self.config.with_provider(provider)
        adapter_cls = rt.adapter_class(provider)
        endpoint = rt.endpoints[provider]
        return ProviderLink(
            provider=provider, adapter_factory=lambda: adapter_cls(cfg, endpoint),
            breaker=rt.breakers.get(provider), connector=rt.connector, clock=rt.clock,
            policy=rt.settings.reconnect, replay=self.replay, sink=self, history=self._carried,
            session_id=self.id, rotate_after_s=rt.settings.openai_rotate_after_s if provider == "openai" else None,
        )

    def _carried(self) -> list[ConversationItem]:
        return list(self.conversation)

    async def switch(self, target: str | None, reason: str) -> bool:
        """Move the call to `target` (or the first usable provider of the chain, skipping the current
        one). Emits provider.switched. False when nothing could be opened."""
        async with self._switch_lock:
            if self.state is SessionState.ENDED:
                return False
            trigger_at = self.rt.clock.now()
            old = self.link
            old_provider = old.provider if old is not None else "none"
            chain = [self.rt.resolve_provider(target, self.config)] if target else self._chain(exclude=[old_provider])
            self.state = SessionState.SWITCHING
            link = await self._open_first_usable(chain)
            if link is None:
                self.state = SessionState.ACTIVE if old is not None and old.state is LinkState.UP else \
                    SessionState.WAITING
                return False
            if old is not None and old is not link:
                self._spawn(old.close())
            await self._switched(old_provider, link, reason, trigger_at)
            return True

    async def _switched(self, old_provider: str, link: ProviderLink, reason: str, trigger_at: float) -> None:
        """The call is on `link` now: count, log and tell the client (provider.switched)."""
        self._close_pending_tools(link.provider)
        await self._flush_reply_tail()
        self.state = SessionState.ACTIVE
        self.counters["switches"] += 1
        elapsed = self.rt.clock.now() - trigger_at
        metrics.voice_gateway_provider_switches.labels(old_provider, link.provider, reason).inc()
        metrics.voice_gateway_switch_seconds.labels(reason).observe(elapsed)
        carried = self._carried_turns()
        log_event(log, logging.WARNING if reason in ("circuit_open", "reconnect_failed") else logging.INFO,
                  "provider.switched", f"switched {old_provider} → {link.provider} ({reason})",
                  session_id=self.id, provider=link.provider, from_provider=old_provider,
                  reason=reason, carried_turns=carried, switch_s=round(elapsed, 4))
        await self._emit(ProviderSwitched(
            from_provider=old_provider, to_provider=link.provider, provider=link.provider, reason=reason,
            carried_turns=carried, capabilities=self.rt.adapter_class(link.provider).capabilities.to_wire()))

    def _close_pending_tools(self, new_provider: str) -> None:
        """A tool call in flight is completed on the new provider when it can take the result;
        otherwise the client is told (never silently lost)."""
        if not self.pending_tools or self.rt.adapter_class(new_provider).carries_pending_tool_calls:
            return
        for call_id, inv in list(self.pending_tools.items()):
            self.pending_tools.pop(call_id)
            self._spawn(self._emit(ErrorEvent(
                code="tool_call_abandoned", provider=new_provider,
                message=f"tool call {call_id} ({inv.name}) was issued by the previous provider and "
                        f"cannot be answered on {new_provider}; the user may need to repeat the request")))

    async def _no_provider(self, err: GatewayError | None, reason: str) -> None:
        self.state = SessionState.WAITING
        retry = min((self.rt.breakers.get(p).retry_after_s() for p in self._chain()), default=1.0)
        log_event(log, logging.ERROR, "session.no_provider", "no usable provider in the fallback chain",
                  session_id=self.id, reason=reason, retry_after_s=retry)
        await self._emit(ErrorEvent(code="provider_unavailable", provider=None, retry_after=round(retry, 3),
                                    message="no provider is available right now; audio is buffered "
                                            "(up to the replay bound) and the call resumes when one is"))
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.create_task(self._wait_for_provider(reason))

    async def _wait_for_provider(self, reason: str) -> None:
        """Park until any breaker of the chain admits a call (its open timeout on the injected clock,
        an operator reset, a freed half-open slot), then take the call there."""
        metrics.voice_gateway_no_provider_sessions.inc()  # here, so a cancelled waiter always undoes it
        try:
            while self.state is SessionState.WAITING:
                chain = self._chain()
                if not chain:  # nothing configured to wait for (parse_session_start prevents this)
                    return
                waits = [asyncio.ensure_future(self.rt.breakers.get(p).wait_admissible()) for p in chain]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                if self.state is not SessionState.WAITING:
                    return
                old = self.link
                self.link = None
                self.state = SessionState.SWITCHING
                trigger_at = self.rt.clock.now()
                link = await self._open_first_usable(chain)
                if link is None:
                    self.link = old
                    self.state = SessionState.WAITING
                    await self.rt.clock.sleep(0.05)  # the admitted trial failed: don't spin
                    continue
                await self._switched(old.provider if old is not None else "none", link, reason, trigger_at)
        finally:
            metrics.voice_gateway_no_provider_sessions.dec()

    def _count_active(self, provider: str | None) -> None:
        """ai_provider_active_sessions: this call counts for exactly one provider, or none."""
        if self._counted == provider:
            return
        if self._counted is not None:
            metrics.ai_provider_active_sessions.labels(self._counted).dec()
        if provider is not None:
            metrics.ai_provider_active_sessions.labels(provider).inc()
        self._counted = provider

    def _carried_turns(self) -> int:
        return sum(1 for i in self.conversation if isinstance(i, UserTurn | AssistantTurn))

    # -- LinkSink ------------------------------------------------------------------------------------
    async def on_client_event(self, link: ProviderLink, event: ClientEvent) -> None:
        if link is self.link:
            if event.TYPE == "connection.reconnecting" and getattr(event, "attempt", 0) == 1:
                self.counters["reconnects"] += 1
            await self._emit(event)

    async def on_link_lost(self, link: ProviderLink, reason: str, error: GatewayError | None) -> None:
        if link is not self.link or self.state is SessionState.ENDED:
            return
        self._spawn(self._failover(link, reason, error))

    async def _failover(self, link: ProviderLink, reason: str, error: GatewayError | None) -> None:
        switch_reason = {"fatal_error": "fatal_error"}.get(reason, reason)
        if await self.switch(None, switch_reason):
            await link.close(graceful=False)
            return
        if self.link is link:
            self._count_active(None)
            await link.close(graceful=False)
            await self._no_provider(error, switch_reason)

    async def on_provider_event(self, link: ProviderLink, ev: ProviderEvent) -> None:
        if link is not self.link:
            return
        provider = link.provider
        match ev:
            case ReplyAudio(data=data, fmt=fmt, item_id=item_id):
                await self._reply_audio(provider, data, fmt, item_id)
            case Transcript(role=role, text=text, final=final, start_s=s, end_s=e):
                origin = link.stream_origin_s
                await self._emit(TranscriptEvent(
                    provider=provider, role=role, text=text, final=final,
                    start=round(origin + s, 3) if s is not None else None,
                    end=round(origin + e, 3) if e is not None else None))
                if role == "assistant":
                    self._assistant_text = text
                if final and text:
                    if role == "user":
                        self.conversation.append(UserTurn(text))
                        self._turn_end_at = self.rt.clock.now()
                    else:
                        self._assistant_index = len(self.conversation)
                        self.conversation.append(AssistantTurn(text))
            case TurnStarted(role=role, item_id=item_id):
                self._turn_item, self._assistant_text, self._assistant_index = item_id, "", None
                await self._emit(TurnEvent(provider=provider, kind="started", role=role))
            case UserSpeechStarted():
                await self._barge_in(provider, announce=False)
                await self._emit(TurnEvent(provider=provider, kind="started", role="user"))
            case TurnCompleted(role=role):
                await self._emit(TurnEvent(provider=provider, kind="completed", role=role))
                if role == "assistant":
                    self._maybe_return_to_primary()
            case TurnInterrupted():
                await self._barge_in(provider, announce=True)
            case ToolCall(call_id=cid, name=name, arguments=args):
                inv = ToolInvocation(cid, name, args)
                self.conversation.append(inv)
                self.pending_tools[cid] = inv
                await self._emit(ToolCallEvent(provider=provider, call_id=cid, name=name, arguments=args))
            case ToolCallCancelled(call_ids=ids):
                for cid in ids:
                    self.pending_tools.pop(cid, None)
            case ProviderFailed(error=err):
                await self._emit(ErrorEvent(code=err.code, provider=provider,
                                            message=f"{provider} reported an error ({err.error_type})"))

    async def _flush_reply_tail(self) -> None:
        """A switch (unlike a barge-in) keeps what the old provider already said: send the few ms
        the old reply resampler still holds before replacing it."""
        conv, self._out_conv = self._out_conv, None
        tail = conv.flush() if conv is not None else b""
        if not tail:
            return
        if self.config.json_audio:
            await self._emit(AudioDelta(provider=self.provider or "", audio=base64.b64encode(tail).decode()))
        else:
            await self.sink.send_audio(tail, self._turn_item)

    async def _barge_in(self, provider: str, *, announce: bool) -> None:
        """Stop playback now; keep in the record — and in OpenAI's item — only what the caller heard."""
        self._out_conv = None
        heard = await self.sink.flush_audio()
        if heard is not None:
            item_id, heard_ms, sent_ms = heard
            if sent_ms > 0 and heard_ms < sent_ms:
                if item_id:
                    await self.truncate_heard(item_id, heard_ms)
                self._truncate_assistant(heard_ms / sent_ms)
        if announce:
            await self._emit(TurnEvent(provider=provider, kind="interrupted"))

    def _truncate_assistant(self, ratio: float) -> None:
        text = self._assistant_text
        if not text:
            return
        kept = text[: int(len(text) * ratio)]
        if self._assistant_index is not None and self._assistant_index < len(self.conversation):
            self.conversation[self._assistant_index] = AssistantTurn(kept)
        elif kept:
            self._assistant_index = len(self.conversation)
            self.conversation.append(AssistantTurn(kept))
        self.counters["truncated_replies"] += 1

    async def _reply_audio(self, provider: str, data: bytes, fmt: AudioFormat, item_id: str | None) -> None:
        if self._turn_end_at is not None:
            metrics.voice_gateway_time_to_first_audio_seconds.labels(provider).observe(
                self.rt.clock.now() - self._turn_end_at)
            metrics.ai_provider_latency_seconds.labels(provider, "first_audio").observe(
                self.rt.clock.now() - self._turn_end_at)
            self._turn_end_at = None
        if self._out_conv is None or self._out_fmt != fmt:
            self._out_conv, self._out_fmt = FormatConverter(fmt, self.config.output_format), fmt
            if self.client != "native" and fmt.encoding == "pcm16":
                # Telephony sends exact 20 ms frames: feed the resampler its hold-back as leading
                # silence, so every whole 20 ms in gives whole 20 ms out from the first chunk on
                # (otherwise each frame waits for the next reply: +20 ms on every frame).
                lead = round(group_delay_s(fmt.sample_rate_hz, self.config.output_format.sample_rate_hz)
                             * fmt.sample_rate_hz)
                self._out_conv.convert(b"\x00\x00" * lead)
        out = self._out_conv.convert(data)
        if not out:
            return
        if self.config.json_audio:
            await self._emit(AudioDelta(provider=provider, audio=base64.b64encode(out).decode()))
        else:
            await self.sink.send_audio(out, item_id or self._turn_item)

    def _maybe_return_to_primary(self) -> None:
        after = self.rt.settings.return_to_primary_after_s
        primary = self.rt.resolve_provider(
            self.config.provider if self.config.provider != "auto" else self.config.fallback[0], self.config)
        if after is None or self.link is None or self.link.provider == primary:
            return
        b = self.rt.breakers.get(primary)
        if b.closed_since is not None and self.rt.clock.now() - b.closed_since >= after and b.would_admit():
            self._spawn(self.switch(primary, "return_to_primary"))

    # -- plumbing ------------------------------------------------------------------------------------
    async def _emit(self, event: ClientEvent) -> None:
        wire = event.to_wire(self.id, self.rt.wall_time())
        if wire["type"] != "audio.delta":
            self.recent_events.append(wire)
        await self.sink.send_json(wire)

    def _spawn(self, coro) -> None:  # noqa: ANN001
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def snapshot(self, *, detail: bool = False) -> dict[str, Any]:
        last = self.recent_events[-1]["type"] if self.recent_events else None
        out: dict[str, Any] = {
            "id": self.id, "provider": self.provider, "state": self.state.value, "client": self.client,
            "link_state": self.link.state.value if self.link else None,
            "duration_s": round(self.rt.clock.now() - self.started_at, 1), "replay_depth": len(self.replay),
            "last_event": last, "counters": {"audio_chunks_in": self._seq, "dropped_audio_chunks":
                                             self.replay.dropped_total, **dict(self.counters),
                                             **(self.link.counters if self.link else {})},
        }
        if detail:
            out["recent_events"] = list(self.recent_events)
            out["conversation_items"] = len(self.conversation)
            out["fallback"] = list(self.config.fallback)
        return out
