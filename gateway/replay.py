"""The replay buffer (docs/architecture.md): input chunks not yet known to be consumed by the provider.

Invariants:
- at most `maxlen` chunks (default 100); appending to a full buffer evicts the oldest;
- an eviction while the link is down is a *drop* (audio that may never reach a provider) and is
  counted; an eviction of a chunk already sent on a live link is *at risk*: delivered if that
  connection lives on (or acknowledges it), lost if the connection dies first (a stall, an abrupt
  close: `connection_lost()`) or the call moves to another connection first (a switch or handover:
  `new_connection()`), and then counted as dropped too, so drops are never under-reported;
- chunks leave when acknowledged: by provider stream time (Deepgram `start+duration`) or wholesale
  (a finalized user turn on Gemini/OpenAI), so a replay adds no duplicate words.
Each chunk sent on the current provider connection is given its end offset in that connection's
stream time, which is how stream-time acknowledgements map back to chunks.
- the buffer's stream belongs to one link at a time (`owner`, set by `new_connection`): during a
  switch the outgoing link keeps it until the incoming one replays, so what the outgoing provider
  finalizes meanwhile is acknowledged (and heard) once, and an acknowledgement in an old
  connection's stream time never removes chunks of the new one (the link checks `owner`);
- chunks are sent in order: a live chunk that arrives while older ones are still unsent (kept
  during a switch that failed) waits for them (`behind`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from audio.formats import AudioChunk

_AT_RISK_KEPT = 512


@dataclass(slots=True)
class _Entry:
    chunk: AudioChunk
    stream_end_s: float | None = None  # end offset in the current connection's stream; None = not sent


@dataclass(slots=True)
class ReplayBuffer:
    maxlen: int = 100
    _entries: deque[_Entry] = field(default_factory=deque)
    dropped_total: int = 0  # chunks lost (overflow while down, at-risk on a dead connection), whole call
    evicted_sent_total: int = 0  # sent chunks pushed out by overflow (lost only if their connection dies)
    _stream_s: float = 0.0  # current connection's stream time
    # stream end times of evicted, sent, not yet acknowledged chunks of the current connection (the
    # newest _AT_RISK_KEPT; older ones only counted: acks arrive in stream order)
    _at_risk: deque[float] = field(default_factory=deque)
    _at_risk_older: int = 0
    owner: object | None = None  # the link whose connection the stream times refer to

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, chunk: AudioChunk, *, link_up: bool) -> bool:
        """Keep `chunk`. Returns True when an unconsumed chunk had to be dropped to make room."""
        entries = self._entries
        if len(entries) < self.maxlen:
            entries.append(_Entry(chunk))
            return False
        dropped = False
        old = entries.popleft()  # full: the oldest makes room
        if link_up and old.stream_end_s is not None:
            self.evicted_sent_total += 1
            if len(self._at_risk) >= _AT_RISK_KEPT:
                self._at_risk.popleft()
                self._at_risk_older += 1
            self._at_risk.append(old.stream_end_s)
        else:
            self.dropped_total += 1
            dropped = True
        entries.append(_Entry(chunk))
        return dropped

    def mark_sent(self, chunk: AudioChunk) -> None:
        """`chunk` (the newest appended, or one being replayed) went out on the current connection."""
        self._stream_s += chunk.duration_s
        entries = self._entries
        if entries and (last := entries[-1]).chunk is chunk:  # the live frame: always the newest
            last.stream_end_s = self._stream_s
            return
        for e in reversed(entries):
            if e.chunk is chunk:
                e.stream_end_s = self._stream_s
                return

    def new_connection(self, owner: object | None = None) -> list[AudioChunk]:
        """A new provider connection (of link `owner`) starts at stream time 0; everything kept
        must be replayed. Chunks still at risk on the previous connection are lost now (it no longer
        counts: a switch or handover left it before it acknowledged them): counted as dropped."""
        self.owner = owner
        self._stream_s = 0.0
        self.dropped_total += self.at_risk
        self._at_risk.clear()
        self._at_risk_older = 0
        for e in self._entries:
            e.stream_end_s = None
        return [e.chunk for e in self._entries]

    @property
    def at_risk(self) -> int:
        """Sent chunks already evicted that the current connection has not acknowledged."""
        return self._at_risk_older + len(self._at_risk)

    def connection_lost(self) -> int:
        """The current connection died before acknowledging its at-risk chunks: they are lost (they
        cannot be replayed any more). Counts them as dropped; returns how many."""
        lost = self.at_risk
        self.dropped_total += lost
        self._at_risk.clear()
        self._at_risk_older = 0
        return lost

    def ack_until(self, until_s: float | None) -> int:
        """Drop chunks the provider has consumed: those sent on this connection ending at or before
        `until_s` of stream time (None: everything sent so far). Returns how many left."""
        n = 0
        eps = 1e-6
        if until_s is None:
            self._at_risk.clear()
            self._at_risk_older = 0
        else:
            if self._at_risk and self._at_risk[0] <= until_s + eps:
                self._at_risk_older = 0  # older than the oldest kept: acknowledged too
            while self._at_risk and self._at_risk[0] <= until_s + eps:
                self._at_risk.popleft()
        while self._entries:
            end = self._entries[0].stream_end_s
            if end is None or (until_s is not None and end > until_s + eps):
                break
            self._entries.popleft()
            n += 1
        return n

    def behind(self) -> bool:
        """An older chunk than the newest is still unsent (a switch that failed kept audio for a
        link that never came up): the newest must not overtake it. O(1): unsent chunks are always
        the newest ones."""
        return len(self._entries) >= 2 and self._entries[-2].stream_end_s is None

    def unsent(self) -> Iterator[AudioChunk]:
        return (e.chunk for e in self._entries if e.stream_end_s is None)

