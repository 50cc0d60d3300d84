"""Time for protocol decisions comes from here, never from time.time().

`MonotonicClock` is the real one; `VirtualClock` lets tests run the 1→16 s reconnect schedule
and the 60 s breaker timeout exactly and instantly: `sleep()` parks the caller until a test
calls `advance()` (or `run_until_idle()` jumps straight to the next deadline).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    # time.monotonic itself, not a method wrapping it: the limiter and the link read it per frame
    now = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that only moves when told to. Sleepers wake in deadline order."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []  # every requested sleep, in order: tests read the schedule here

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def pending(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    def advance_to_next(self) -> bool:
        """Jump to the earliest pending deadline; False when nobody sleeps."""
        nxt = self.next_deadline()
        if nxt is None:
            return False
        self.advance(max(0.0, nxt - self._now))
        return True

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has come."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
        self._now = target

    async def settle(self, rounds: int = 20) -> None:
        """Let woken tasks run (no time passes)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def run_until_idle(self, max_jumps: int = 1000) -> None:
        """Repeatedly jump to the next deadline until nobody sleeps."""
        for _ in range(max_jumps):
            await self.settle()
            live = [(d, s, f) for d, s, f in self._sleepers if not f.done()]
            if not live:
                return
            nxt = min(d for d, _, _ in live)
            self.advance(max(0.0, nxt - self._now))
        raise RuntimeError("virtual clock never went idle")
