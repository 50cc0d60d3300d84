"""Chat chain benchmark: the gateway's added latency per reasoning request (JSON and SSE first chunk) vs calling
the MiniMax fake directly, and requests/s of one gateway process, in one run (loopback only).

Processes: the MiniMax fake (`voice-gateway fake-provider minimax`) and the gateway (`voice-gateway serve`,
one process, reasoning chain = minimax only), pinned to separate cores where there are two; this process
is the load generator (aiohttp, keep-alive).

1. Latency: N sequential requests per path, interleaved (direct, gateway, ...); overhead = gateway − direct
   at p50/p95/p99, for a whole JSON answer and for the first streamed chunk.
2. Throughput: C concurrent clients for T seconds against the gateway, then against the fake directly
   (the baseline); gateway CPU ms per request from /proc.

    .venv/bin/python benchmarks/chat.py [--requests 300] [--concurrency 16] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procs import bench_env, cpu_count, free_port, start_gateway, start_server  # noqa: E402

KEY = "bench-minimax-key"
QUESTION = [{"role": "user", "content": "What is 2+2?"}]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


Target = tuple[str, dict[str, str], dict[str, object]]  # URL, headers, body


async def one(http: aiohttp.ClientSession, target: Target, *, stream: bool = False) -> float:
    """A whole JSON answer, or (stream) the time to the first content chunk, then drained."""
    url, headers, body = target
    started = time.perf_counter()
    async with http.post(url, data=orjson.dumps({**body, "stream": stream}), headers=headers) as res:
        if res.status != 200:
            raise RuntimeError(f"{url}: HTTP {res.status}")
        if not stream:
            data = orjson.loads(await res.read())
            if data["choices"][0]["message"]["content"] != "4":
                raise RuntimeError(f"{url}: wrong answer")
            return time.perf_counter() - started
        first = None
        async for line in res.content:
            if first is None and b'"content":"4"' in line:
                first = time.perf_counter() - started
        if first is None:
            raise RuntimeError(f"{url}: no content chunk")
        return first


async def latency(direct: Target, gateway: Target, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("direct", "gateway", "direct_sse", "gateway_sse")}
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            await one(http, direct)
            await one(http, gateway)
        for _ in range(n):
            out["direct"].append(await one(http, direct))
            out["gateway"].append(await one(http, gateway))
            out["direct_sse"].append(await one(http, direct, stream=True))
            out["gateway_sse"].append(await one(http, gateway, stream=True))
    return out


async def throughput(target: Target, concurrency: int, seconds: float) -> tuple[int, float]:
    done = 0
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await one(http, target)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="sequential requests per path (latency)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0, help="per throughput phase")
    ap.add_argument("--profile", action="store_true", help="py-spy the gateway during its throughput phase")
    args = ap.parse_args()
    two = cpu_count() >= 2
    gw_cpus, other_cpus = ({0}, {1}) if two else (None, None)
    logs = Path(tempfile.mkdtemp(prefix="vg-bench-chat-"))
    fake = start_server("minimax-fake", ["-m", "gateway.cli", "fake-provider", "minimax", "--port", "0",
                                         "--api-key", KEY], cpus=other_cpus, env=bench_env(),
                        log_path=logs / "fake.log")
    gw = None
    try:
        origin = f"http://127.0.0.1:{fake.port}"
        gw = start_gateway(port=free_port(), provider_url=f"ws://127.0.0.1:{free_port()}", cpus=gw_cpus,
                           log_path=logs / "gateway.log",
                           extra_env={"MINIMAX_BASE_URL": origin, "MINIMAX_API_KEY": KEY,
                                      "VG_REASONING_CHAIN": "minimax"})
        direct = (origin + "/v1/text/chatcompletion_v2",
                  {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                  {"model": "minimax-m2.1-lightning", "messages": QUESTION})
        gateway = (f"http://127.0.0.1:{gw.port}/v1/chat/completions", {"Content-Type": "application/json"},
                   {"model": "reasoning", "messages": QUESTION})
        lat = asyncio.run(latency(direct, gateway, args.requests))
        spy = None
        if args.profile:
            py_spy = str(Path(sys.executable).with_name("py-spy"))
            spy = subprocess.Popen([py_spy, "record", "--pid", str(gw.pid), "--format", "raw", "--nonblocking",
                                    "--duration", str(int(args.seconds)), "-o", str(logs / "gateway-pyspy.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gw.mark("t0")
        gw_done, gw_elapsed = asyncio.run(throughput(gateway, args.concurrency, args.seconds))
        gw.mark("t1")
        if spy is not None:
            spy.wait(30)
        d_done, d_elapsed = asyncio.run(throughput(direct, args.concurrency, args.seconds))
    finally:
        if gw is not None:
            gw.stop()
        fake.stop()
    print(f"chat benchmark: reasoning 'What is 2+2?' via MiniMax, {args.requests} sequential requests per path, "
          f"then {args.concurrency} concurrent for {args.seconds:g} s; cores: "
          f"{'gateway on 0, fake + load on 1' if two else 'unpinned'}")
    print(f"{'path':<12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name in ("direct", "gateway", "direct_sse", "gateway_sse"):
        print(f"{name:<12} {pct(lat[name], 50):8.2f} {pct(lat[name], 95):8.2f} {pct(lat[name], 99):8.2f}")
    for label, a, b in (("overhead", "gateway", "direct"), ("overhead_sse", "gateway_sse", "direct_sse")):
        print(f"{label:<12} " + " ".join(f"{pct(lat[a], q) - pct(lat[b], q):8.2f}" for q in (50, 95, 99))
              + "   (gateway − direct" + (", first content chunk)" if "sse" in label else ")"))
    cpu_ms = gw.cpu_between("t0", "t1") / max(gw_done, 1) * 1000.0
    print(f"throughput: gateway {gw_done / gw_elapsed:.0f} req/s (one process; {cpu_ms:.2f} ms gateway CPU per "
          f"request → ceiling ≈ {1000.0 / cpu_ms:.0f} req/s per core)")
    print(f"baseline:   direct to the fake {d_done / d_elapsed:.0f} req/s")
    print(f"logs: {logs}")
    if args.profile:
        print(f"profile: python -m benchmarks.profile_summary {logs / 'gateway-pyspy.txt'} --match gateway/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
