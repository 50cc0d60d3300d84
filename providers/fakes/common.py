"""Shared machinery of the fake provider servers (STUB: signatures are the contract; the fakes lead
fills in the bodies — keep names and signatures, add what you need).

- `FaultScript` / `Fault`: scriptable per connection number (1-based) from tests and `--faults SPEC`.
- `ConnectionRecord`: what one connection received, for tests to assert on.
- `DialectRecognizer`: the "DTMF dialect": DTMF digits in the input audio are words; plain speech
  (energy without DTMF) is kept to be echoed back (parrot). Works in *stream time* (seconds of audio
  received), never wall-clock time, so results are deterministic however fast audio arrives.
- `FakeServer`: base class: websockets asyncio server on 127.0.0.1 port 0 (or a given port), optional
  TLS, connection numbering, handshake refusal faults, recording, start()/stop()/url.

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

import random
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["drop", "close", "refuse", "delay", "stall", "malformed", "goaway", "expire"]


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


@dataclass(slots=True)
class FaultScript:
    rules: list[tuple[tuple[int, int] | None, Fault]] = field(default_factory=list)  # (range or None=*, fault)

    @classmethod
    def parse(cls, spec: str | None) -> FaultScript:
        raise NotImplementedError

    def add(self, conn: int | str, fault: Fault) -> FaultScript:
        """Tests: script.add(1, Fault(kind="drop", audio_bytes=16000)). conn: int, "2-4" or "*"."""
        raise NotImplementedError

    def for_connection(self, number: int) -> list[Fault]:
        raise NotImplementedError


@dataclass(slots=True)
class ConnectionRecord:
    number: int
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # secrets removed
    messages: list[Any] = field(default_factory=list)  # every client text message, parsed JSON (or raw str)
    setup: dict[str, Any] | None = None  # Gemini setup / OpenAI last session.update / Deepgram query
    items: list[dict[str, Any]] = field(default_factory=list)  # conversation items / clientContent turns received
    audio: bytearray = field(default_factory=bytearray)  # input audio as PCM16 at `audio_rate_hz`
    audio_rate_hz: int = 16000
    audio_chunks: int = 0  # audio messages received
    digits: str = ""  # DTMF digits heard, in order (the recognizer's words)
    transcripts: list[str] = field(default_factory=list)  # finalized user utterances (text)
    close_code: int | None = None
    closed_by: Literal["client", "server", "fault", None] = None


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str  # DTMF digits as a word, e.g. "1234#"; "" for plain speech
    start_s: float
    end_s: float
    audio: bytes  # PCM16 at the recognizer rate (for the parrot echo of plain speech)
    is_dtmf: bool


@dataclass(frozen=True, slots=True)
class SpeechStart:
    at_s: float


@dataclass(frozen=True, slots=True)
class PartialWords:
    text: str  # digits so far in the current utterance
    start_s: float
    end_s: float


class DialectRecognizer:
    """Feed PCM16 at `sample_rate_hz`; get SpeechStart / PartialWords / Utterance events.

    An utterance ends after `end_silence_ms` of silence (stream time). Digits come from
    audio.dtmf.DtmfDetector; energy above `speech_threshold_dbfs` without DTMF is plain speech."""

    def __init__(self, sample_rate_hz: int, *, end_silence_ms: int = 300, speech_threshold_dbfs: float = -45.0) -> None:
        raise NotImplementedError

    @property
    def stream_time_s(self) -> float:
        raise NotImplementedError

    def feed(self, pcm16: bytes) -> list[SpeechStart | PartialWords | Utterance]:
        raise NotImplementedError

    def flush(self) -> list[SpeechStart | PartialWords | Utterance]:
        """End of stream (Finalize/CloseStream): close any open utterance."""
        raise NotImplementedError


class FakeServer:
    """Base class. Subclasses implement `handler(ws, record)` and auth/paths.

    Usage in tests:
        fake = FakeGemini(api_key="test-key", faults=FaultScript.parse("1:drop,messages=5"))
        await fake.start()          # 127.0.0.1, port 0 unless given
        fake.url                    # "ws://127.0.0.1:PORT" (origin; wss:// with TLS)
        fake.connections            # list[ConnectionRecord], 1-based numbers
        await fake.stop()
    Also usable as `async with FakeGemini(...) as fake:`.
    """

    provider: str = ""

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: Any = None, faults: FaultScript | None = None, seed: int = 0) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.faults = faults or FaultScript()
        self.rng = random.Random(seed)
        self.connections: list[ConnectionRecord] = []

    @property
    def url(self) -> str:
        raise NotImplementedError

    async def start(self) -> FakeServer:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
