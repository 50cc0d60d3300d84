"""The call session's side of switching providers (gateway/failover.py decides which): building a
link for a provider, and as the failover's listener settling the client side of a switch (open tool
calls, reply audio, `provider.switched`) or telling the client that no provider is usable.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from gateway import metrics
from gateway.events import (
    AssistantTurn,
    ClientEvent,
    ConversationItem,
    ErrorEvent,
    ProviderSwitched,
    SwitchReason,
    ToolInvocation,
    UserTurn,
)
from gateway.failover import Failover
from gateway.link import ProviderLink
from gateway.logs import log_event
from gateway.playback import ReplyPlayback
from gateway.replay import ReplayBuffer
from gateway.runtime import Runtime
from gateway.session_config import SessionConfig

log = logging.getLogger("gateway.session")


class SwitchHandling:
    """Switching for `CallSession` (which inherits this; the state lives there)."""

    rt: Runtime
    config: SessionConfig
    id: str
    replay: ReplayBuffer
    failover: Failover[ProviderLink]
    conversation: list[ConversationItem]
    pending_tools: dict[str, ToolInvocation]
    counters: collections.Counter[str]
    playback: ReplyPlayback
    _turn_item: str | None

    if TYPE_CHECKING:  # provided by CallSession
        @property
        def provider(self) -> str | None: ...
        async def _emit(self, event: ClientEvent) -> None: ...
        def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...
        def _bill_live_segment(self, next_provider: str | None) -> None: ...

    async def switch(self, target: str | None, reason: SwitchReason) -> bool:
        """Move the call to `target` (or the next usable provider). Emits provider.switched."""
        return await self.failover.switch(target, reason)

    def _waiting_retry_delay_s(self, failed_tries: int) -> float:
        """While no provider is usable, the wait after the n-th failed try: the reconnect schedule."""
        policy = self.rt.settings.reconnect
        return policy.base_delay_s(min(failed_tries, policy.max_attempts))

    # -- FailoverListener ---------------------------------------------------------------------------
    async def switching_to(self, provider: str) -> None:
        """A new link takes the call: settle the old provider's tool calls and reply audio."""
        self._close_pending_tools(provider)
        await self.playback.flush(self.provider or "", self._turn_item)

    async def switched(self, old_provider: str, link: ProviderLink, reason: SwitchReason, elapsed: float) -> None:
        """The call is on `link` now: count, log and tell the client (provider.switched)."""
        self.counters["switches"] += 1
        self._bill_live_segment(link.provider)
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

    async def no_provider(self, retry_after_s: float, reason: SwitchReason) -> None:
        """Nothing in the chain admits a call: the call waits, buffering; tell the client."""
        log_event(log, logging.ERROR, "session.no_provider", "no usable provider in the fallback chain",
                  session_id=self.id, reason=reason, retry_after_s=retry_after_s, expected=True)
        await self._emit(ErrorEvent(code="provider_unavailable", provider=None, retry_after=round(retry_after_s, 3),
                                    message="no provider is available right now; audio is buffered "
                                            "(up to the replay bound) and the call resumes when one is"))

    def _carried_turns(self) -> int:
        return sum(1 for i in self.conversation if isinstance(i, UserTurn | AssistantTurn))
