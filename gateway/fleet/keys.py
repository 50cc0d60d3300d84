"""The Redis key layout of fleet mode, in one place (docs/fleet.md "What is in Redis").

    vg:call:{session id}      hash  replica, replica_url, client, provider, state, started_at   TTL
    vg:replica:{replica id}   hash  url, draining, started_at, heartbeat_at, calls, circuits   TTL
    vg:replicas               set   replica ids (an id whose hash has expired is a dead replica)
    vg:providers:disabled     hash  provider → JSON {live_calls, source, since}                 no TTL
    vg:advisory:{provider}    string replica whose breaker is OPEN                               TTL
    vg:control                pub/sub channel of operator actions and breaker advisories
"""

from __future__ import annotations

PREFIX = "vg:"
REPLICAS = PREFIX + "replicas"
DISABLED = PREFIX + "providers:disabled"
CONTROL_CHANNEL = PREFIX + "control"
CALL_PATTERN = PREFIX + "call:*"


def call(session_id: str) -> str:
    return f"{PREFIX}call:{session_id}"


def replica(replica_id: str) -> str:
    return f"{PREFIX}replica:{replica_id}"


def advisory(provider: str) -> str:
    return f"{PREFIX}advisory:{provider}"
