"""States as tables: the allowed moves of a provider link and of a call session, checked in one place.

Each state machine is an enum plus a table `state → states it may move to`. The owner keeps its
state in a plain attribute (read on the audio path without a call) and changes it only through
`StateTable.move()`, which raises `IllegalTransition` for a move the table does not allow, logs
every move `A→B` with the session id and counts it. A move to the current state is no move.
The breaker (gateway/breaker.py) follows the same pattern with its own table.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from gateway import metrics
from gateway.logs import log_event

log = logging.getLogger("gateway.states")
S = TypeVar("S", bound=enum.Enum)


class IllegalTransition(RuntimeError):
    """A state change outside its table: a bug in the caller, never a provider or client condition."""

    def __init__(self, machine: str, src: enum.Enum, dst: enum.Enum, *, session_id: str) -> None:
        super().__init__(f"illegal {machine} transition {src.name}→{dst.name} (session {session_id})")
        self.machine = machine
        self.src = src
        self.dst = dst
        self.session_id = session_id


class StateTable(Generic[S]):
    """The allowed moves of one kind of state machine ("link", "session")."""

    def __init__(self, machine: str, moves: Mapping[S, Iterable[S]]) -> None:
        self.machine = machine
        self.moves: dict[S, frozenset[S]] = {src: frozenset(dsts) for src, dsts in moves.items()}

    def allowed(self, src: S, dst: S) -> bool:
        return src is dst or dst in self.moves.get(src, frozenset())

    def move(self, src: S, dst: S, *, session_id: str, **fields: Any) -> S:
        """Check `src → dst`, then log and count it; returns `dst` for the caller to store."""
        if src is dst:
            return dst
        if dst not in self.moves.get(src, frozenset()):
            err = IllegalTransition(self.machine, src, dst, session_id=session_id)
            log_event(log, logging.ERROR, "state.illegal", str(err), machine=self.machine,
                      from_state=src.value, to_state=dst.value, session_id=session_id, **fields)
            raise err
        metrics.voice_gateway_state_transitions.labels(self.machine, src.value, dst.value).inc()
        log_event(log, logging.DEBUG, "state.changed", f"{self.machine} {src.name}→{dst.name}",
                  machine=self.machine, from_state=src.value, to_state=dst.value, session_id=session_id,
                  **fields)
        return dst


class LinkState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    REPLAYING = "replaying"
    UP = "up"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


_L = LinkState
LINK_MOVES: StateTable[LinkState] = StateTable("link", {
    _L.IDLE: {_L.CONNECTING, _L.CLOSED},
    _L.CONNECTING: {_L.REPLAYING, _L.FAILED, _L.CLOSED},  # first establishment
    _L.REPLAYING: {_L.UP, _L.RECONNECTING, _L.FAILED, _L.CLOSED},  # buffered audio goes out before live audio
    _L.UP: {_L.REPLAYING, _L.RECONNECTING, _L.FAILED, _L.CLOSED},  # REPLAYING: a planned handover
    _L.RECONNECTING: {_L.REPLAYING, _L.FAILED, _L.CLOSED},
    _L.FAILED: {_L.CLOSED},
    _L.CLOSED: set(),
})


class SessionState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    SWITCHING = "switching"
    WAITING = "waiting_for_provider"
    ENDED = "ended"


_S = SessionState
SESSION_MOVES: StateTable[SessionState] = StateTable("session", {
    _S.STARTING: {_S.ACTIVE, _S.WAITING, _S.SWITCHING, _S.ENDED},
    _S.ACTIVE: {_S.SWITCHING, _S.WAITING, _S.ENDED},
    _S.SWITCHING: {_S.ACTIVE, _S.WAITING, _S.ENDED},
    _S.WAITING: {_S.SWITCHING, _S.ENDED},
    _S.ENDED: set(),
})
