"""The gateway as `voice-gateway serve` runs it (settings from the environment, aiohttp, uvloop, one
process), plus a sampler inside the process for what /proc cannot see: asyncio tasks and event-loop
lag. Used by benchmarks/soak.py and benchmarks/chaos.py.

    python -m benchmarks.gateway_probe --port P --samples FILE [--interval-s 60]

Every interval one JSON line goes to FILE: t_s, rss_kb, fds, tasks, sessions, loop_lag_ms (max and
p99 of a 50 ms ticker's lateness over the interval), gc objects (counted after a full collection, so
garbage awaiting the cyclic collector is not mistaken for growth), and `structures`: the size of every
per-call structure that must return to its baseline when calls end (see `structure_sizes`).
Each line also has the heap as Python and glibc see it (`heap()`: pymalloc blocks, malloc in use,
malloc free-but-kept), which tells a leak (in use grows) from allocator fragmentation (only RSS and
`malloc_free_kb` grow). `--detail` adds the most numerous object types (by `type.__name__`);
`--tracemalloc-after-s S` the source lines whose memory grew most since S, for hunting a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import logging
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
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


def structure_sizes(app) -> dict[str, int]:  # noqa: ANN001
    """Per-call and per-request structures of a running gateway: each must stay bounded while calls
    come and go (tests/e2e/test_call_turnover.py asserts the same after N calls)."""
    from gateway.metrics import REGISTRY

    st = app[STATE]
    rt = getattr(st, "runtime", None)
    controls = getattr(st, "controls", None)
    chains = getattr(st, "chains", None)
    out: dict[str, int] = {}
    if rt is not None:
        out.update({"sessions": len(rt.sessions), "recently_ended": len(rt.recently_ended),
                    "session_observers": len(rt.session_observers), "breakers": len(list(rt.breakers.all())),
                    "cost_days": len(rt.costs.days)})
    if controls is not None:
        out.update({"controls_in_reply": len(controls._in_reply), "controls_boundary": len(controls._boundary),
                    "controls_tasks": len(controls._tasks)})
    if chains is not None:
        out.update({"chain_breakers": len(chains.breakers), "chain_translators": len(chains.translators)})
    out["metric_series"] = sum(len(m.samples) for m in REGISTRY.collect())
    out["log_handlers"] = sum(len(logging.getLogger(n).handlers) for n in [None, *logging.root.manager.loggerDict])
    out["loggers"] = len(logging.root.manager.loggerDict)
    return out


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc_mallinfo2() -> Callable[[], _Mallinfo2] | None:
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    fn.restype = _Mallinfo2
    return fn


MALLINFO2 = _libc_mallinfo2()


def heap() -> dict[str, int]:
    """What the process really holds, as opposed to what the allocator keeps: `py_blocks` (pymalloc
    blocks in use: every Python object, bytes and str included, which gc.get_objects does not list),
    `malloc_in_use_kb` (glibc: bytes handed out and not freed, mmapped blocks included) and
    `malloc_free_kb` (freed but kept in glibc's arenas: RSS the process could give back; a growing
    one is fragmentation, not a leak). Traced Python memory too when tracemalloc runs (--tracemalloc)."""
    out = {"py_blocks": sys.getallocatedblocks()}
    if MALLINFO2 is not None:
        m = MALLINFO2()
        out["malloc_in_use_kb"] = (m.uordblks + m.hblkhd) // 1024
        out["malloc_free_kb"] = m.fordblks // 1024
    if tracemalloc.is_tracing():
        out["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
    return out


def top_growth(base: tracemalloc.Snapshot | None, n: int = 15) -> list[str]:
    """The source lines whose live allocations grew most since `base` (tracemalloc)."""
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if base is None:
        return []
    return [str(stat) for stat in snap.compare_to(base, "lineno")[:n]]


def top_types(n: int = 25) -> dict[str, int]:
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    return dict(counts.most_common(n))


async def sampler(app, path: Path, interval_s: float, detail: bool = False,  # noqa: ANN001
                  trace_after_s: float | None = None) -> None:
    t0 = time.monotonic()
    trace_base: tracemalloc.Snapshot | None = None
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
            gc.collect()
            row = {"t_s": round(now - t0, 1), "rss_kb": rss_kb(), "fds": len(os.listdir("/proc/self/fd")),
                   "tasks": len(asyncio.all_tasks()), "sessions": len(rt.sessions) if rt else 0,
                   "loop_lag_ms_max": round(lags[-1] * 1000, 2) if lags else 0.0,
                   "loop_lag_ms_p99": round(lags[int(len(lags) * 0.99)] * 1000, 2) if lags else 0.0,
                   "gc_objects": len(gc.get_objects()), **heap(), "structures": structure_sizes(app)}
            if detail:
                row["types"] = top_types()
            if tracemalloc.is_tracing():
                if trace_base is None and trace_after_s is not None and now - t0 >= trace_after_s:
                    trace_base = tracemalloc.take_snapshot().filter_traces(
                        [tracemalloc.Filter(False, tracemalloc.__file__)])
                elif trace_base is not None:
                    row["tracemalloc_growth"] = top_growth(trace_base)
            lags = []
            out.write(orjson.dumps(row).decode() + "\n")
            out.flush()


async def main(args: argparse.Namespace) -> None:
    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    task = asyncio.create_task(sampler(app, Path(args.samples), args.interval_s, args.detail,
                                       args.tracemalloc_after_s))
    try:  # the serve loop itself (SIGTERM drains, as `voice-gateway serve`)
        await run(app, "127.0.0.1", args.port, drain_timeout_s=settings.drain_timeout_s)
    finally:
        task.cancel()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--interval-s", type=float, default=60.0)
    p.add_argument("--detail", action="store_true", help="add the most numerous object types to each sample")
    p.add_argument("--tracemalloc-after-s", type=float, default=None,
                   help="trace allocations; from the first sample after this many seconds on, each sample lists "
                        "the source lines whose live memory grew most since then (slows the gateway)")
    import uvloop

    parsed = p.parse_args()
    if parsed.tracemalloc_after_s is not None:
        tracemalloc.start(1)
    uvloop.run(main(parsed))
