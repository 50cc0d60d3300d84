"""The call session's handling of provider events: reply audio to the client's sink, transcripts
and turns into the conversation record, tool calls, usage, and barge-in (the caller heard only part
of a reply: playback stops and the record, and OpenAI's item, keep only what was heard).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.events import (
    AssistantTurn,
    ClientEvent,
    ConversationItem,
    ErrorEvent,
    ProviderEvent,
    ProviderFailed,
    ReplyAudio,
    ToolCall,
    ToolCallCancelled,
    ToolCallEvent,
    ToolInvocation,
    Transcript,
    TranscriptEvent,
    TurnCompleted,
    TurnEvent,
    TurnInterrupted,
    TurnStarted,
    UsageReported,
    UserSpeechStarted,
    UserTurn,
)
from gateway.failover import Failover
from gateway.link import ProviderLink
from gateway.playback import ReplyPlayback
from gateway.replay import ReplayBuffer
from gateway.runtime import Runtime
from gateway.sink import ClientSink

log = logging.getLogger("gateway.session")


class ProviderEventHandling:
    """Provider events for `CallSession` (which inherits this; the state lives there)."""

    rt: Runtime
    sink: ClientSink
    failover: Failover[ProviderLink]
    conversation: list[ConversationItem]
    pending_tools: dict[str, ToolInvocation]
    counters: collections.Counter[str]
    playback: ReplyPlayback
    replay: ReplayBuffer
    _assistant_text: str
    _assistant_index: int | None
    _billed: dict[tuple[str, str], float]
    _turn_item: str | None
    _turn_end_at: float | None

    if TYPE_CHECKING:  # provided by CallSession
        @property
        def link(self) -> ProviderLink | None: ...
        async def _emit(self, event: ClientEvent) -> None: ...
        async def truncate_heard(self, item_id: str, heard_ms: int) -> None: ...

    def on_reply_audio_now(self, link: ProviderLink, ev: ReplyAudio) -> Awaitable[None] | None:
        """Reply audio, without a coroutine (the link's frame path runs in aiohttp's parser callback:
        gateway/ws_direct.py): returns None, or the send to await."""
        if link is not self.replay.owner and link is not self.link:  # see on_provider_event
            return None
        if self._turn_end_at is not None:
            self._first_audio(link.provider)
        return self.playback.play(link.provider, ev.data, ev.fmt, ev.item_id or self._turn_item)

    async def on_provider_event(self, link: ProviderLink, ev: ProviderEvent) -> None:
        if type(ev) is ReplyAudio:  # 50 a second: straight to playback (it checks the link), past the match
            send = self.on_reply_audio_now(link, ev)
            if send is not None:
                await send
            return
        # the current link, or the one a switch is leaving while the new one is still opening: the
        # buffer's stream is still on it, so what it finalizes now is acknowledged and heard there
        # (dropping it would lose those words: they are acknowledged and never replayed)
        if link is not self.replay.owner and link is not self.link:
            return
        provider = link.provider
        match ev:
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
                    await self.sink.turn_completed()
                    self.failover.turn_completed()
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
            case UsageReported(billed_s=billed, provider_session_id=sid):
                self._billed[(provider, sid)] = billed  # cumulative per provider session
            case ProviderFailed(error=err):
                await self._emit(ErrorEvent(code=err.code, provider=provider,
                                            message=f"{provider} reported an error ({err.error_type})"))

    async def _barge_in(self, provider: str, *, announce: bool) -> None:
        """Stop playback now; keep in the record — and in OpenAI's item — only what the caller heard."""
        self.playback.drop()
        heard = await self.sink.flush_audio()
        if heard is not None and heard.cut_short:
            if heard.item_id:
                await self.truncate_heard(heard.item_id, heard.heard_ms)
            self._truncate_assistant(heard.heard_ms / heard.sent_ms)
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

    def _first_audio(self, provider: str) -> None:
        """The first reply audio since the user's turn ended: time to first audio."""
        assert self._turn_end_at is not None
        metrics.voice_gateway_time_to_first_audio_seconds.labels(provider).observe(
            self.rt.clock.now() - self._turn_end_at)
        metrics.ai_provider_latency_seconds.labels(provider, "first_audio").observe(
            self.rt.clock.now() - self._turn_end_at)
        self._turn_end_at = None
