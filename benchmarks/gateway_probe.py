"""The gateway as `voice-gateway serve` runs it (settings from the environment, aiohttp, uvloop, one
process), plus a sampler inside the process for what /proc cannot see: asyncio tasks and event-loop
lag. Used by benchmarks/soak.py and benchmarks/chaos.py.

    python -m benchmarks.gateway_probe --port P --samples FILE [--interval-s 60]

Every interval one JSON line goes to FILE: t_s, rss_kb, fds, tasks, sessions, loop_lag_ms (max and
p99 of a 50 ms ticker's lateness over the interval), gc objects.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import orjson  # noqa: E402

from gateway.app import create_app  # noqa: E402
from gateway.app_state import STATE  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.logs import configure_logging  # noqa: E402
from gateway.serve import run  # noqa: E402

TICK_S = 0.05


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def sampler(app, path: Path, interval_s: float) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    lags: list[float] = []
    next_sample = t0 + interval_s
    with path.open("a") as out:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_S)
            lags.append(max(0.0, time.monotonic() - before - TICK_S))
            now = time.monotonic()
            if now < next_sample:
                continue
            next_sample += interval_s
            lags.sort()
            rt = getattr(app[STATE], "runtime", None)
            row = {"t_s": round(now - t0, 1), "rss_kb": rss_kb(), "fds": len(os.listdir("/proc/self/fd")),
                   "tasks": len(asyncio.all_tasks()), "sessions": len(rt.sessions) if rt else 0,
                   "loop_lag_ms_max": round(lags[-1] * 1000, 2) if lags else 0.0,
                   "loop_lag_ms_p99": round(lags[int(len(lags) * 0.99)] * 1000, 2) if lags else 0.0,
                   "gc_objects": len(gc.get_objects())}
            lags = []
            out.write(orjson.dumps(row).decode() + "\n")
            out.flush()


async def main(args: argparse.Namespace) -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    task = asyncio.create_task(sampler(app, Path(args.samples), args.interval_s))
    try:  # the serve loop itself (SIGTERM drains, as `voice-gateway serve`)
        await run(app, "127.0.0.1", args.port, drain_timeout_s=settings.drain_timeout_s)
    finally:
        task.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--interval-s", type=float, default=60.0)
    import uvloop

    uvloop.run(main(p.parse_args()))
