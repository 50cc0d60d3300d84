"""The link and session state tables (gateway/states.py): each allowed move, each refused one, and
that every move is logged with the session id and counted."""

from __future__ import annotations

import logging
from itertools import product

import pytest

from gateway import metrics
from gateway.states import LINK_MOVES, SESSION_MOVES, IllegalTransition, LinkState, SessionState, StateTable

L, S = LinkState, SessionState

# The design, written out once more by hand: a change to a table must change this too.
LINK_EXPECTED = {
    L.IDLE: {L.CONNECTING, L.CLOSED},
    L.CONNECTING: {L.REPLAYING, L.FAILED, L.CLOSED},
    L.REPLAYING: {L.UP, L.RECONNECTING, L.FAILED, L.CLOSED},
    L.UP: {L.REPLAYING, L.RECONNECTING, L.FAILED, L.CLOSED},
    L.RECONNECTING: {L.REPLAYING, L.FAILED, L.CLOSED},
    L.FAILED: {L.CLOSED},
    L.CLOSED: set(),
}
SESSION_EXPECTED = {
    S.STARTING: {S.ACTIVE, S.WAITING, S.SWITCHING, S.ENDED},
    S.ACTIVE: {S.SWITCHING, S.WAITING, S.ENDED},
    S.SWITCHING: {S.ACTIVE, S.WAITING, S.ENDED},
    S.WAITING: {S.SWITCHING, S.ENDED},
    S.ENDED: set(),
}
CASES = [(LINK_MOVES, LINK_EXPECTED), (SESSION_MOVES, SESSION_EXPECTED)]


def count(machine: str, src: str, dst: str) -> float:
    return metrics.sample("voice_gateway_state_transitions_total",
                          {"machine": machine, "from_state": src, "to_state": dst}) or 0.0


@pytest.mark.parametrize(("table", "expected"), CASES, ids=["link", "session"])
def test_every_state_has_a_row_and_the_rows_are_the_design(table: StateTable, expected: dict) -> None:
    assert set(table.moves) == set(type(next(iter(expected))))
    assert {src: set(dsts) for src, dsts in table.moves.items()} == expected


@pytest.mark.parametrize(("table", "expected"), CASES, ids=["link", "session"])
def test_each_pair_is_allowed_exactly_when_the_table_says(table: StateTable, expected: dict,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.states")
    states = list(expected)
    for src, dst in product(states, states):
        before = count(table.machine, src.value, dst.value)
        caplog.clear()
        if src is dst:  # staying put is no move: nothing logged or counted
            assert table.move(src, dst, session_id="sid-1") is dst
            assert not caplog.records and count(table.machine, src.value, dst.value) == before
        elif dst in expected[src]:
            assert table.move(src, dst, session_id="sid-1", provider="gemini") is dst
            assert count(table.machine, src.value, dst.value) == before + 1
            [rec] = caplog.records
            assert rec.levelno == logging.DEBUG and rec.vg_event == "state.changed"
            assert rec.vg_fields == {"machine": table.machine, "from_state": src.value, "to_state": dst.value,
                                     "session_id": "sid-1", "provider": "gemini"}
            assert rec.getMessage() == f"{table.machine} {src.name}→{dst.name}"
        else:
            with pytest.raises(IllegalTransition) as exc:
                table.move(src, dst, session_id="sid-2")
            assert (exc.value.src, exc.value.dst, exc.value.session_id) == (src, dst, "sid-2")
            assert f"{src.name}→{dst.name}" in str(exc.value) and "sid-2" in str(exc.value)
            assert count(table.machine, src.value, dst.value) == before  # refused moves are not counted
            [rec] = caplog.records
            assert rec.levelno == logging.ERROR and rec.vg_event == "state.illegal"
            assert rec.vg_fields["session_id"] == "sid-2"


def test_terminal_states_have_no_way_out() -> None:
    for dst in LinkState:
        assert LINK_MOVES.allowed(L.CLOSED, dst) is (dst is L.CLOSED)
    for dst in SessionState:
        assert SESSION_MOVES.allowed(S.ENDED, dst) is (dst is S.ENDED)
