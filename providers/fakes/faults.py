"""Fault scripts of the fake provider servers: which fault fires on which connection, and when.

Fault SPEC grammar (also for the CLI `--faults`): rules separated by `;`, each
    <conn>:<kind>[,key=value ...]
  conn: a connection number (1-based), a range `2-4`, or `*` (every connection)
  kind: drop (TCP abort, no close frame) | close (close frame; key code=, reason=) |
        refuse (handshake HTTP status; key status=401|403|429|500|503, retry_after=) |
        delay (key ms= added before every server message) | stall (stop reading and writing) |
        malformed (send one malformed message) | goaway (Gemini goAway; key time_left=) |
        expire (OpenAI session_expired / provider's planned close)
  triggers (for drop/close/stall/malformed/goaway/expire; default immediately after setup):
        messages=N (after N client messages) | seconds=T (wall time after upgrade) |
        audio_bytes=N (after N bytes of input audio)
  random drops for load tests: `*:drop,p=0.01,seed=7` drops after each message with probability p.
Example: "1:drop,audio_bytes=16000;2:refuse,status=503;*:delay,ms=20"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.errors import ConfigError

FaultKind = Literal["drop", "close", "refuse", "delay", "stall", "malformed", "goaway", "expire"]
FAULT_KINDS: tuple[str, ...] = ("drop", "close", "refuse", "delay", "stall", "malformed", "goaway", "expire")


@dataclass(slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    messages: int | None = None
    seconds: float | None = None
    audio_bytes: int | None = None
    code: int | None = None  # close code
    reason: str = ""
    status: int | None = None  # HTTP status for refuse
    retry_after: int | None = None
    ms: float = 0.0  # delay
    time_left: float = 10.0  # goaway
    p: float | None = None  # random drop probability per message
    seed: int = 0

    @property
    def untriggered(self) -> bool:
        return self.messages is None and self.seconds is None and self.audio_bytes is None and self.p is None


_FAULT_FIELD_TYPES: dict[str, type] = {
    "messages": int, "seconds": float, "audio_bytes": int, "code": int, "reason": str, "status": int,
    "retry_after": int, "ms": float, "time_left": float, "p": float, "seed": int,
}


def _parse_conn(conn: int | str) -> tuple[int, int] | None:
    if isinstance(conn, int):
        return (conn, conn)
    text = conn.strip()
    if text == "*":
        return None
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
        else:
            lo = hi = int(text)
    except ValueError:
        raise ConfigError(f"fault rule: bad connection selector {text!r}") from None
    if lo < 1 or hi < lo:
        raise ConfigError(f"fault rule: bad connection range {text!r}")
    return (lo, hi)


def _parse_rule(rule: str) -> tuple[tuple[int, int] | None, Fault]:
    conn, sep, rest = rule.partition(":")
    if not sep:
        raise ConfigError(f"fault rule {rule!r}: expected <conn>:<kind>[,key=value...]")
    kind, *pairs = [p.strip() for p in rest.split(",")]
    if kind not in FAULT_KINDS:
        raise ConfigError(f"fault rule {rule!r}: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})")
    values: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or key not in _FAULT_FIELD_TYPES:
            raise ConfigError(f"fault rule {rule!r}: bad option {pair!r}")
        try:
            values[key] = _FAULT_FIELD_TYPES[key](value.strip())
        except ValueError:
            raise ConfigError(f"fault rule {rule!r}: bad value for {key}") from None
    fault = Fault(kind=kind, **values)  # type: ignore[arg-type]
    if fault.kind == "refuse" and fault.status not in (401, 403, 429, 500, 503):
        raise ConfigError(f"fault rule {rule!r}: refuse needs status=401|403|429|500|503")
    return _parse_conn(conn), fault


@dataclass(slots=True)
class FaultScript:
    rules: list[tuple[tuple[int, int] | None, Fault]] = field(default_factory=list)  # (range or None=*, fault)

    @classmethod
    def parse(cls, spec: str | None) -> FaultScript:
        """Parse the SPEC grammar above; a bad SPEC raises ConfigError naming the rule."""
        script = cls()
        for rule in (spec or "").split(";"):
            if rule.strip():
                script.rules.append(_parse_rule(rule.strip()))
        return script

    def add(self, conn: int | str, fault: Fault) -> FaultScript:
        """Tests: script.add(1, Fault(kind="drop", audio_bytes=16000)). conn: int, "2-4" or "*"."""
        self.rules.append((_parse_conn(conn), fault))
        return self

    def for_connection(self, number: int) -> list[Fault]:
        return [f for rng, f in self.rules if rng is None or rng[0] <= number <= rng[1]]

