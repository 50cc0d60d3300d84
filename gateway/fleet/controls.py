"""Operator controls that work the same in one process and across a fleet: disable or enable a
provider, reset every breaker. This module applies them to *this* process; in fleet mode the control
channel (gateway/fleet/bus.py) carries them to every other replica, which applies them here too.

Invariants: a disabled provider is skipped by every new call and every switch at once (the session's
chain asks `Runtime.provider_enabled`); a call already on it either stays or is switched away at its
next turn boundary (never mid-reply, unless the reply outlasts BOUNDARY_WAIT_S); every action is
audited (a `gateway.audit` log line and `voice_gateway_operator_actions_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from gateway import metrics
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.runtime import LiveCall, Runtime

log = logging.getLogger("gateway.fleet.controls")
audit_log = logging.getLogger("gateway.audit")

LiveCalls = Literal["switch", "stay"]
LIVE_CALLS: tuple[str, ...] = ("switch", "stay")
BOUNDARY_WAIT_S = 10.0  # a reply longer than this is cut: the operator wants the provider gone


def audit(action: str, message: str, **fields: Any) -> None:
    """One audited operator action: who (the caller's address or the replica that relayed it), what."""
    metrics.voice_gateway_operator_actions.labels(action).inc()
    log_event(audit_log, logging.WARNING, "operator.action", message, action=action, **fields)


class OperatorControls:
    def __init__(self, runtime: Runtime, *, boundary_wait_s: float = BOUNDARY_WAIT_S) -> None:
        self.rt = runtime
        self.boundary_wait_s = boundary_wait_s
        self._in_reply: dict[str, bool] = {}  # session id → the assistant is mid-reply
        self._boundary: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        runtime.session_observers.append(self._observe)

    # -- turn boundaries -------------------------------------------------------------------------
    def _observe(self, session: LiveCall, wire: dict[str, Any]) -> None:
        kind = wire["type"]
        if kind == "turn.started" and wire.get("role") == "assistant":
            self._in_reply[session.id] = True
        elif kind in ("turn.completed", "turn.interrupted", "provider.switched", "session.started",
                      "session.ended"):
            if kind == "turn.completed" and wire.get("role") != "assistant":
                return
            if kind == "session.ended":
                self._in_reply.pop(session.id, None)
            else:
                self._in_reply[session.id] = False
            if (event := self._boundary.get(session.id)) is not None:
                event.set()

    async def _switch_at_boundary(self, session: LiveCall, provider: str) -> None:
        event = self._boundary[session.id] = asyncio.Event()
        try:
            if self._in_reply.get(session.id):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.boundary_wait_s)
        finally:
            self._boundary.pop(session.id, None)
        if session.provider != provider or self.rt.provider_enabled(provider) or session.id not in self.rt.sessions:
            return  # moved, re-enabled or ended meanwhile
        moved = await session.switch(None, "operator")
        log_event(log, logging.INFO if moved else logging.WARNING, "operator.switch_away",
                  f"{'switched' if moved else 'could not switch'} a call away from disabled {provider}",
                  session_id=session.id, provider=provider, moved=moved)

    # -- actions (local effect) ------------------------------------------------------------------
    def set_provider_status(self, name: str, status: str, *, live_calls: LiveCalls = "switch",
                            source: str = "local") -> int:
        """Disable or enable `name` here; returns how many live calls will be switched away."""
        if status == "enabled":
            was_disabled = self.rt.disabled_providers.pop(name, None) is not None
            metrics.voice_gateway_provider_disabled.labels(name).set(0)
            if was_disabled:  # calls left with no usable provider (all disabled) resume on it now
                for session in list(self.rt.sessions.values()):
                    if session.state.value == "waiting_for_provider":
                        self._spawn(self._resume(session, name))
            return 0
        self.rt.disabled_providers[name] = {"live_calls": live_calls, "source": source,
                                            "since": round(time.time(), 3)}
        metrics.voice_gateway_provider_disabled.labels(name).set(1)
        moving = [s for s in list(self.rt.sessions.values()) if s.provider == name] if live_calls == "switch" else []
        for session in moving:
            self._spawn(self._switch_at_boundary(session, name))
        return len(moving)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, session: LiveCall, provider: str) -> None:
        if session.state.value != "waiting_for_provider":
            return
        moved = await session.switch(None, "operator")
        log_event(log, logging.INFO if moved else logging.WARNING, "operator.resume",
                  f"{'resumed' if moved else 'could not resume'} a waiting call after {provider} was enabled",
                  session_id=session.id, provider=provider, moved=moved)

    def reset_all_breakers(self) -> list[dict[str, Any]]:
        """Every breaker of this process → CLOSED (shared advisories cleared with them)."""
        for breaker in self.rt.breakers.all():
            breaker.reset()
        return [b.snapshot() for b in self.rt.breakers.all()]

    def provider_status(self) -> dict[str, dict[str, Any]]:
        return {name: ({"status": "disabled", **self.rt.disabled_providers[name]}
                       if name in self.rt.disabled_providers else {"status": "enabled"})
                for name in self.rt.settings.providers}

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
