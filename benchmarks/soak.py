"""Soak: a steady number of concurrent calls with constant turnover, for a long time; the gateway's
RSS, open file descriptors, asyncio tasks and event-loop lag sampled every interval, and the growth
after warm-up reported (not part of `make test`).

    nice -n 19 .venv/bin/python -m benchmarks.soak --calls 50 --minutes 60
    nice -n 19 .venv/bin/python -m benchmarks.soak --calls 10 --minutes 2 --sample-s 10   # smoke

Processes (loopback only): the three fakes (benchmarks/fakes_server.py, bounded recording), the
gateway (benchmarks/gateway_probe.py: `serve` plus an in-process sampler) and this process, which
keeps `--calls` native calls going; each lasts U(call_min_s, call_max_s), speaks DTMF words in real
time (benchmarks/calls.py) and is replaced by a new call when it ends (provider drawn at random).

Growth = (mean of the last 3 samples − the first sample after warm-up) / that sample. Goal < 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

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


def growth(samples: list[dict], key: str, warmup_s: float, calls: int) -> dict[str, float] | None:
    # after warm-up, and only while the load is on (not the ramp-down after the deadline)
    after = [s for s in samples if s["t_s"] >= warmup_s and s["sessions"] >= 0.8 * calls]
    if len(after) < 2:
        return None
    base = after[0][key]
    tail = after[-3:]
    end = sum(s[key] for s in tail) / len(tail)
    return {"after_warmup": base, "end": round(end, 1),
            "growth_pct": round(100.0 * (end - base) / base, 2) if base else 0.0}


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
    p.add_argument("--out", default=str(REPO / "test-artifacts" / "soak"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples_path = out / "samples.jsonl"
    samples_path.write_text("")
    fakes = start_fakes(log_path=out / "fakes.log")
    port = free_port()
    gw = start_gateway_probe(port=port, fakes=fakes, samples=samples_path, interval_s=args.sample_s,
                             log_path=out / "gateway.log", extra_env={"VG_LOG_LEVEL": "WARNING", **NO_CEILINGS})
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
        "growth": {k: growth(samples, k, warmup_s, args.calls) for k in ("rss_kb", "fds", "tasks", "gc_objects")},
        "loop_lag_ms_max": max((s["loop_lag_ms_max"] for s in samples), default=None),
        "loop_lag_ms_p99_max": max((s["loop_lag_ms_p99"] for s in samples), default=None),
        "calls": summarize(results),
    }
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    (out / "report.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
