"""Hypothesis building blocks shared by the fuzz suites (native protocol and telephony)."""

from __future__ import annotations

from hypothesis import strategies as st


def json_values(scalars: st.SearchStrategy) -> st.SearchStrategy:
    """Any JSON value built from `scalars`: lists and objects nested a few levels."""
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)


def field_slots(msg: dict) -> list[tuple[dict, str]]:
    """Every (parent object, key) inside `msg`, nested objects included: where a mutation can land."""
    out = []
    for key, value in msg.items():
        out.append((msg, key))
        if isinstance(value, dict):
            out += field_slots(value)
    return out
