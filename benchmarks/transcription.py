"""Transcription chain benchmark: gateway overhead per request vs calling the fake directly, and
requests/s of one gateway process, in one run (loopback only).

Processes: the Deepgram fake (`voice-gateway fake-provider deepgram`, REST on its port) and the gateway
(`voice-gateway serve`, one process, uvloop, chain = deepgram only) pinned to separate cores where there
are two; this process is the load generator (aiohttp, keep-alive).

1. Latency: N sequential requests per path, interleaved (direct, gateway, direct, ...) so drift hits
   both alike; overhead = gateway − direct at p50/p95/p99.
2. Throughput: C concurrent clients for T seconds against the gateway, then the same against the fake
   directly (the baseline); requests/s, and gateway CPU ms per request from /proc (its ceiling on one
   core is 1000 / that).

    .venv/bin/python benchmarks/transcription.py [--requests 300] [--concurrency 16] [--seconds 8]
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

from benchmarks.procs import REPO, bench_env, cpu_count, free_port, start_gateway, start_server  # noqa: E402

WAV = (REPO / "fixtures" / "dtmf_159hash_16k.wav").read_bytes()
KEY = "bench-deepgram-key"


def runqueue_wait_s(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (/proc/PID/schedstat)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            pass
    return total


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


async def one(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
              inner: list[float] | None = None) -> float:
    """One request's round trip. `inner`: also record the round trip minus the provider attempt's
    latency as the gateway measured it (its own time, independent of how fast the fake answered)."""
    started = time.perf_counter()
    async with http.post(url, data=WAV, headers=headers) as res:
        body = await res.read()
        if res.status != 200 or b"159#" not in body:
            raise RuntimeError(f"{url}: HTTP {res.status}")
    elapsed = time.perf_counter() - started
    if inner is not None:
        inner.append(elapsed - orjson.loads(body)["attempts"][-1]["latency_ms"] / 1000.0)
    return elapsed


Target = tuple[str, dict[str, str]]  # URL, headers


async def latency(direct: Target, gateway: Target, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"direct": [], "gateway": [], "inside": []}
    async with aiohttp.ClientSession() as http:
        for _ in range(20):  # warm-up: connections, caches, the fake's decode cache
            await one(http, *direct)
            await one(http, *gateway)
        for _ in range(n):
            out["direct"].append(await one(http, *direct))
            out["gateway"].append(await one(http, *gateway, out["inside"]))
    return out


async def throughput(target: Target, concurrency: int, seconds: float) -> tuple[int, float]:
    done = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await one(http, *target)
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
    logs = Path(tempfile.mkdtemp(prefix="vg-bench-trx-"))
    fake = start_server("deepgram-fake", ["-m", "gateway.cli", "fake-provider", "deepgram", "--port", "0",
                                          "--api-key", KEY], cpus=other_cpus, env=bench_env(),
                        log_path=logs / "fake.log")
    gw = None
    try:
        fake_url = f"ws://127.0.0.1:{fake.port}"
        gw = start_gateway(port=free_port(), provider_url=fake_url, cpus=gw_cpus, log_path=logs / "gateway.log",
                           extra_env={"VG_TRANSCRIPTION_CHAIN": "deepgram"})  # its DEEPGRAM_API_KEY is KEY
        direct = (f"http://127.0.0.1:{fake.port}/v1/listen?model=nova-2&punctuate=true&language=en",
                  {"Authorization": f"Token {KEY}", "Content-Type": "audio/wav"})
        gateway = (f"http://127.0.0.1:{gw.port}/api/v1/transcribe", {"Content-Type": "audio/wav"})
        lat = asyncio.run(latency(direct, gateway, args.requests))
        spy = None
        if args.profile:
            py_spy = str(Path(sys.executable).with_name("py-spy"))
            spy = subprocess.Popen([py_spy, "record", "--pid", str(gw.pid), "--format", "raw", "--nonblocking",
                                    "--duration", str(int(args.seconds)), "-o", str(logs / "gateway-pyspy.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gw.mark("t0")
        wait0 = runqueue_wait_s(gw.pid)
        gw_done, gw_elapsed = asyncio.run(throughput(gateway, args.concurrency, args.seconds))
        gw_waited = runqueue_wait_s(gw.pid) - wait0
        gw.mark("t1")
        if spy is not None:
            spy.wait(30)
        fake.mark("d0")
        d_done, d_elapsed = asyncio.run(throughput(direct, args.concurrency, args.seconds))
        fake.mark("d1")
    finally:
        if gw is not None:
            gw.stop()
        fake.stop()
    over = {q: pct(lat["gateway"], q) - pct(lat["direct"], q) for q in (50, 95, 99)}
    cpu_ms = gw.cpu_between("t0", "t1") / max(gw_done, 1) * 1000.0
    print(f"transcription benchmark: {len(WAV)} B WAV (0.9 s, DTMF 159#), {args.requests} sequential requests "
          f"per path, then {args.concurrency} concurrent for {args.seconds:g} s; cores: "
          f"{'gateway on 0, fake + load on 1' if two else 'unpinned'}")
    print(f"{'path':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name in ("direct", "gateway"):
        print(f"{name:<10} {pct(lat[name], 50):8.2f} {pct(lat[name], 95):8.2f} {pct(lat[name], 99):8.2f}")
    print(f"{'overhead':<10} {over[50]:8.2f} {over[95]:8.2f} {over[99]:8.2f}   (gateway − direct)")
    print(f"{'inside':<10} {pct(lat['inside'], 50):8.2f} {pct(lat['inside'], 95):8.2f} {pct(lat['inside'], 99):8.2f}"
          "   (gateway round trip − the provider attempt it timed: its own time plus one loopback hop)")
    busy = gw.cpu_between("t0", "t1") / gw_elapsed
    fake_ms = fake.cpu_between("d0", "d1") / max(d_done, 1) * 1000.0
    print(f"throughput: gateway {gw_done / gw_elapsed:.0f} req/s (one process, {busy:.0%} of a core busy, "
          f"{gw_waited / gw_elapsed:.0%} runnable but waiting for a CPU; {cpu_ms:.2f} ms gateway CPU per request "
          f"→ ceiling ≈ {1000.0 / cpu_ms:.0f} req/s per core)")
    print(f"baseline:   direct to the fake {d_done / d_elapsed:.0f} req/s ({fake_ms:.2f} ms fake CPU per request); "
          "a core shared with other work lowers the req/s, not the CPU per request")
    print(f"logs: {logs}")
    if args.profile:
        print(f"profile: python -m benchmarks.profile_summary {logs / 'gateway-pyspy.txt'} --match gateway/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
