"""Fault injection of the fake provider servers: the per-connection fault state, and the part of
`FakeServer` (providers/fakes/server.py) that counts client messages and input audio, fires due
faults (drop, close, stall itself; malformed, goaway, expire through the subclass's `inject_fault`),
delays or blocks server messages, and lets tests wait for a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from providers.fakes.faults import Fault, FaultKind
from providers.fakes.records import ConnectionRecord

log = logging.getLogger("providers.fakes")


class FaultFired(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised out of fault helpers after a drop/close/stall ended the connection; the base catches it."""


@dataclass(slots=True)
class _ConnectionFaults:
    """Per-connection fault state: which faults are still armed and the counters that trigger them."""

    armed: list[Fault]
    rngs: dict[int, random.Random]
    messages: int = 0
    audio_bytes: int = 0
    delay_s: float = 0.0
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    timers: list[asyncio.Task[None]] = field(default_factory=list)


class FaultInjection:
    """The fault half of `FakeServer` (which inherits it): its state lives on the server
    (`_fault_state`, `_records`, `_fault_fired`, `clock`, `rng`)."""

    async def fault_fired(self, number: int, kind: FaultKind, timeout_s: float = 5.0) -> ConnectionRecord:
        """Wait until a fault of `kind` has fired on connection `number` (for a stall: reading is already
        paused when this returns)."""
        async with asyncio.timeout(timeout_s), self._fault_fired:
            await self._fault_fired.wait_for(
                lambda: (r := self._record(number)) is not None and kind in r.faults_fired)
        record = self._record(number)
        assert record is not None
        return record

    def on_fault(self, record: ConnectionRecord, fault: Fault) -> None:
        """Called as a fault fires, before it acts (subclasses may count or signal it)."""

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        """Perform a provider-specific fault (malformed, goaway, expire). Default: a malformed text frame
        for `malformed`, a 1001 close for the others; subclasses send their provider's shapes."""
        if fault.kind == "malformed":
            await self.send(ws, '{"type": ')
        else:
            await ws.close(1001, "going away")

    async def send(self, ws: ServerConnection, frame: str | bytes) -> None:
        """Send one server message, after any `delay` fault; blocks forever while the link is stalled."""
        record = self._records.get(ws)
        state = self._fault_state.get(record.number) if record is not None else None
        if state is not None:
            if state.stalled.is_set():
                await ws.wait_closed()  # a stalled server never writes again
                raise FaultFired("stall")
            if state.delay_s:
                await self.clock.sleep(state.delay_s)
        await ws.send(frame)

    async def session_ready(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        """The provider's setup is done: fire the faults that have no trigger."""
        state = self._fault_state[record.number]
        for fault in [f for f in state.armed if f.untriggered]:
            await self._fire(ws, record, fault)

    async def fault_tick(self, ws: ServerConnection, record: ConnectionRecord, *, messages: int = 1,
                         audio_bytes: int = 0) -> None:
        """Count one client message (and its decoded input audio bytes) and fire faults now due."""
        state = self._fault_state[record.number]
        state.messages += messages
        state.audio_bytes += audio_bytes
        if self.record_limit_bytes is not None:
            self._trim(record, self.record_limit_bytes)
        for fault in list(state.armed):
            due = ((fault.messages is not None and state.messages >= fault.messages)
                   or (fault.audio_bytes is not None and state.audio_bytes >= fault.audio_bytes))
            if fault.p is not None and messages:
                due = due or state.rngs[id(fault)].random() < fault.p
            if due:
                await self._fire(ws, record, fault)

    async def _fire(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        state = self._fault_state[record.number]
        if fault.p is None and fault in state.armed:
            state.armed.remove(fault)  # one-shot; random drops stay armed
        record.faults_fired.append(fault.kind)
        self.on_fault(record, fault)
        log.info("fake %s conn %d: fault %s", self.provider, record.number, fault.kind)
        if fault.kind == "stall":  # before anyone waiting for the fault can act on it
            state.stalled.set()
            ws.transport.pause_reading()  # a black hole: no reads, so no pongs and no close handshake
        async with self._fault_fired:
            self._fault_fired.notify_all()
        if fault.kind == "drop":
            record.closed_by = "fault"
            ws.transport.abort()
            raise FaultFired(fault.kind)
        if fault.kind == "close":
            record.closed_by = "fault"
            await ws.close(fault.code or 1011, fault.reason)
            raise FaultFired(fault.kind)
        if fault.kind == "stall":
            record.closed_by = "fault"
            # Paused reading also hides the client's FIN: the socket is cut after `stall_max_s` (or at stop()).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), self.stall_max_s)
            ws.transport.abort()
            await ws.wait_closed()
            raise FaultFired(fault.kind)
        await self.inject_fault(ws, record, fault)

    async def _fire_later(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        await self.clock.sleep(fault.seconds or 0.0)
        state = self._fault_state[record.number]
        if fault not in state.armed:
            return
        with contextlib.suppress(FaultFired, ConnectionClosed):
            await self._fire(ws, record, fault)
