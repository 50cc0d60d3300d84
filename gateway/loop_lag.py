"""Event-loop lag: how late the loop runs a callback it was asked to run at a given time
(`voice_gateway_event_loop_lag_seconds`, docs/metrics.md).

Every `interval_s` a callback is scheduled with `loop.call_at(deadline)`; when it runs, the lag is
`loop.time() - deadline`: the time the loop spent on other work (frames, a blocking call) past the
moment it should have run it. A saturated gateway shows lag before its calls show latency, so this is
what an autoscaler watches. One callback per interval, no task: the cost is one timer handle.

Invariant: the lag is measured on the loop's own clock; `start` and `stop` are idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway import metrics

DEFAULT_INTERVAL_S = 0.25


class LoopLagMonitor:
    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S,
                 on_sample: Callable[[float], None] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = interval_s
        self._on_sample = on_sample  # tests synchronise on samples here
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Start sampling on the running loop."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        assert self._loop is not None
        self._deadline = self._loop.time() + self.interval_s
        self._handle = self._loop.call_at(self._deadline, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        lag = max(0.0, self._loop.time() - self._deadline)
        metrics.EVENT_LOOP_LAG.observe(lag)
        self._schedule()
        if self._on_sample is not None:
            self._on_sample(lag)
