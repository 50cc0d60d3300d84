"""Shared machinery of the fake provider servers, one import for the fakes and the tests.

Invariants: the dialect works in *stream time* (seconds of audio received), never wall time, so results
do not depend on how fast a client sends; connections are numbered from 1 per server instance; nothing
secret (keys, tokens) is ever recorded or logged.

- `FaultScript` / `Fault` (providers/fakes/faults.py, with the `--faults SPEC` grammar): scriptable per
  connection number (1-based) from tests and `--faults SPEC`.
- `ConnectionRecord` (records.py): what one connection received, for tests to assert on.
- `DialectRecognizer` (dialect.py): DTMF digits in the input audio are words; plain speech (energy
  without DTMF) is kept to be echoed back (parrot).
- Plain speech with a `SpeechEngine` (providers/fakes/speech.py, `speech=` at construction): the fake
  transcribes it with `await self.hear(...)` and answers in synthesized speech with `await self.speak(...)`
  instead of the parrot echo. Off by default (tests), on in the embedded default and `--speech`.
- `FakeServer` (server.py, with the helper API a subclass uses): websockets asyncio server on 127.0.0.1
  (port 0 unless given), optional TLS, connection numbering, handshake refusal faults, recording,
  start()/stop()/url; its fault half (counting, firing, delaying, stalling) is in fault_injection.py.
"""

from __future__ import annotations

from providers.fakes.dialect import (
    MAX_REPLY_DIGITS,
    DialectEvent,
    DialectRecognizer,
    PartialWords,
    SpeechStart,
    Utterance,
    energy_dbfs,
)
from providers.fakes.fault_injection import FaultFired
from providers.fakes.faults import FAULT_KINDS, Fault, FaultKind, FaultScript
from providers.fakes.records import ConnectionRecord
from providers.fakes.server import FakeServer, header, tls_context

__all__ = [
    "FAULT_KINDS", "MAX_REPLY_DIGITS", "ConnectionRecord", "DialectEvent", "DialectRecognizer", "Fault", "FaultFired",
    "FaultKind", "FaultScript", "FakeServer", "PartialWords", "SpeechStart", "Utterance", "energy_dbfs",
    "header", "tls_context",
]
