"""Soak: a steady number of concurrent calls with constant turnover, for a long time; the gateway's
RSS, open file descriptors, asyncio tasks and event-loop lag sampled every interval, and the growth
after warm-up reported (not part of `make test`).

    nice -n 19 .venv/bin/python -m benchmarks.soak --calls 50 --minutes 60
    nice -n 19 .venv/bin/python -m benchmarks.soak --calls 10 --minutes 2 --sample-s 10   # smoke

Processes (loopback only): the three fakes (benchmarks/fakes_server.py, bounded recording), the
gateway (benchmarks/gateway_probe.py: `serve` plus an in-process sampler) and this process, which
keeps `--calls` native calls going; each lasts U(call_min_s, call_max_s), speaks DTMF words in real
time (benchmarks/calls.py) and is replaced by a new call when it ends (provider drawn at random).

Each sample is taken after a full `gc.collect()` in the gateway. Reported per figure (RSS, fds, tasks,
gc objects): growth = (mean of the last 3 samples − mean of the first 3 after warm-up) / the latter,
and the least-squares slope over every sample after warm-up in % of the start per hour; and per
per-call structure (sessions, metrics series, operator-control maps, breakers, …) its first, last and
largest value after warm-up. Goal: RSS growth < 5 % over the hour, structures flat. docs/soak.md
says how to read the figures (allocator arenas, warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from benchmarks.calls import CallResult, run_call, summarize  # noqa: E402
from benchmarks.procs import REPO, free_port, start_fakes, start_gateway_probe  # noqa: E402

PROVIDERS = ["gemini", "openai", "deepgram"]
# the per-connection rate ceilings are not under test here (tests/e2e/test_client_limits.py is); a
# load generator starved by a busy machine catches up in bursts that would trip them
NO_CEILINGS = {"VG_MAX_FRAMES_PER_S": "100000", "VG_MAX_BYTES_PER_S": "64000000"}
# glibc malloc as the image runs it (Dockerfile ENV; tests/test_compose.py keeps the two equal): two
# arenas, and blocks >= 128 KiB (a call's resampler buffers) always mmapped, so freeing them returns
# the memory instead of leaving holes in the heap that RSS counts for ever (docs/soak.md)
DEPLOYED_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t_s, value), per hour."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return 3600.0 * sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0


def growth(samples: list[dict], key: str, warmup_s: float, calls: int) -> dict[str, Any] | None:
    """How `key` moved after warm-up, while the load was on (not the ramp-down after the deadline).

    Three figures, because one alone misleads: `growth_pct` compares the mean of the first three
    samples after warm-up with the mean of the last three (one sample is noisy: a burst of calls
    starting together, a collection about to run); `slope_pct_per_h` is the least-squares trend over
    every sample after warm-up, as a share of the start (a leak is a steady slope; a step that then
    stays flat, as allocator arenas settling, is not); `max` is the highest sample seen."""
    after = [s for s in samples if s["t_s"] >= warmup_s and s["sessions"] >= 0.8 * calls and key in s]
    if len(after) < 2:
        return None
    k = min(3, len(after) // 2)
    base = sum(s[key] for s in after[:k]) / k
    end = sum(s[key] for s in after[-k:]) / k
    slope = _slope_per_hour([(s["t_s"], s[key]) for s in after])
    return {"after_warmup": round(base, 1), "end": round(end, 1), "max": max(s[key] for s in after),
            "growth_pct": round(100.0 * (end - base) / base, 2) if base else 0.0,
            "slope_pct_per_h": round(100.0 * slope / base, 2) if base else 0.0,
            "samples": len(after), "window_s": round(after[-1]["t_s"] - after[0]["t_s"], 1)}


def structures_growth(samples: list[dict], warmup_s: float, calls: int) -> dict[str, Any]:
    """Per-call structures (benchmarks/gateway_probe.py `structure_sizes`): first and last value after
    warm-up and the largest seen; one that only grows is a leak whatever RSS says."""
    after = [s for s in samples if s["t_s"] >= warmup_s and s["sessions"] >= 0.8 * calls and "structures" in s]
    if not after:
        return {}
    return {name: {"after_warmup": after[0]["structures"][name], "end": after[-1]["structures"].get(name),
                   "max": max(s["structures"].get(name, 0) for s in after)}
            for name in after[0]["structures"]}


async def keep_calls(url: str, args: argparse.Namespace, deadline: float, results: list[CallResult]) -> None:
    rng = random.Random(args.seed)
    async with aiohttp.ClientSession() as http:
        async def one(i: int) -> None:
            while time.monotonic() < deadline:
                provider = rng.choice(PROVIDERS)
                duration = rng.uniform(args.call_min_s, args.call_max_s)
                duration = min(duration, max(5.0, deadline - time.monotonic()))
                r = await run_call(http, url, provider=provider, fallback=PROVIDERS, duration_s=duration,
                                   rng=random.Random(rng.random()))
                results.append(r)

        async def staggered(i: int) -> None:
            await asyncio.sleep(i * args.call_max_s / args.calls / 2)  # spread the first wave
            await one(i)

        await asyncio.gather(*(staggered(i) for i in range(args.calls)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--call-min-s", type=float, default=15.0)
    p.add_argument("--call-max-s", type=float, default=45.0)
    p.add_argument("--sample-s", type=float, default=60.0)
    p.add_argument("--warmup-min", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--detail", action="store_true", help="the gateway adds its most numerous object types to each sample")
    p.add_argument("--glibc-malloc-defaults", action="store_true",
                   help="run the gateway without the image's malloc settings (DEPLOYED_MALLOC_ENV): RSS then "
                        "also counts freed memory glibc keeps (docs/soak.md)")
    p.add_argument("--tracemalloc", action="store_true",
                   help="the gateway traces allocations and lists the lines that grew since warm-up (slower)")
    p.add_argument("--out", default=str(REPO / "test-artifacts" / "soak"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples_path = out / "samples.jsonl"
    samples_path.write_text("")
    fakes = start_fakes(log_path=out / "fakes.log")
    arena = {} if args.glibc_malloc_defaults else DEPLOYED_MALLOC_ENV
    port = free_port()
    gw = start_gateway_probe(port=port, fakes=fakes, samples=samples_path, interval_s=args.sample_s,
                             log_path=out / "gateway.log", detail=args.detail,
                             tracemalloc_after_s=args.warmup_min * 60 if args.tracemalloc else None,
                             extra_env={"VG_LOG_LEVEL": "WARNING", **NO_CEILINGS, **arena})
    results: list[CallResult] = []
    started = time.monotonic()
    try:
        deadline = started + args.minutes * 60
        asyncio.run(keep_calls(f"ws://127.0.0.1:{port}/v1/voice", args, deadline, results))
        time.sleep(min(args.sample_s, 5))
    finally:
        gw.stop()
        fakes.stop()
    samples = [orjson.loads(line) for line in samples_path.read_text().splitlines() if line.strip()]
    warmup_s = args.warmup_min * 60
    report = {
        "command": " ".join(sys.argv), "calls_concurrent": args.calls, "minutes": args.minutes,
        "elapsed_s": round(time.monotonic() - started, 1), "samples": len(samples),
        "warmup_s": warmup_s,
        "malloc_env": {k: v for k, v in {**os.environ, **arena}.items() if k.startswith("MALLOC_")},
        "sample_s": args.sample_s,
        "growth": {k: growth(samples, k, warmup_s, args.calls) for k in ("rss_kb", "malloc_in_use_kb", "malloc_free_kb", "py_blocks", "traced_kb", "fds", "tasks",
                                                                "gc_objects")},
        "structures": structures_growth(samples, warmup_s, args.calls),
        "loop_lag_ms_max": max((s["loop_lag_ms_max"] for s in samples), default=None),
        "loop_lag_ms_p99_max": max((s["loop_lag_ms_p99"] for s in samples), default=None),
        "calls": summarize(results),
        "tracemalloc_growth": next((s["tracemalloc_growth"] for s in reversed(samples) if "tracemalloc_growth" in s),
                                   None),
    }
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    (out / "report.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
