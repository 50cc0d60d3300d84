"""What fleet mode costs: gateway CPU per call-minute and call-setup latency with fleet mode on
(`VG_REDIS_URL`, a real redis-server) vs off, in one run, against the echo provider on loopback.

    .venv/bin/python benchmarks/fleet.py [--calls 50] [--duration 20] [--rounds 2] [--setups 60]

Per mode and round: `--calls` native calls stream 20 ms PCM16 frames in real time for `--duration`
seconds (the load generator is this process, on another core than the gateway), and the gateway's
CPU time over the streaming window gives CPU s per call-minute; then `--setups` calls are opened one
after another on the idle gateway: WebSocket connect → `session.started` (provider link included) is
the setup latency. Modes alternate (off, on, off, on, ...) so machine noise hits both alike; the
figures are the medians over rounds, with Redis's own CPU reported beside them. The fleet's heartbeat
is the production default (5 s; every heartbeat refreshes every call's TTL).

On a shared, busy machine the end-to-end difference can drown in noise, so the run also measures the
registry's own work in this process, against the same redis-server (`--registry-calls` calls): the
CPU of registering and removing one call, and of one heartbeat per call; from those, the registry's
CPU per call-minute (heartbeats, plus start and end spread over a `--call-minutes` long call).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from benchmarks.procs import bench_env, cpu_seconds, free_port, pin, start_gateway, start_server  # noqa: E402

FRAME = b"\x00\x01" * 320  # 20 ms of PCM16 16 kHz (any audio: the echo provider answers each frame)
START = orjson.dumps({"type": "session.start", "provider": "gemini", "fallback": ["gemini"],
                      "audio": {"input": {"encoding": "pcm16", "sample_rate": 16000},
                                "output": {"encoding": "pcm16", "sample_rate": 24000}}}).decode()


async def open_call(http: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientWebSocketResponse, float]:
    t0 = time.perf_counter()
    ws = await http.ws_connect(url, max_msg_size=0)
    await ws.send_str(START)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and orjson.loads(msg.data).get("type") == "session.started":
            return ws, time.perf_counter() - t0
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
    raise RuntimeError("no session.started")


async def stream(ws: aiohttp.ClientWebSocketResponse, duration_s: float, start_at: float) -> None:
    async def drain() -> None:
        async for _ in ws:
            pass

    reader = asyncio.create_task(drain())
    n = 0
    while (due := start_at + n * 0.02) < start_at + duration_s:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await ws.send_bytes(FRAME)
        n += 1
    await ws.send_str('{"type": "session.end"}')
    await ws.close()
    reader.cancel()


async def measure(port: int, gateway_pid: int, redis_pid: int | None, calls: int, duration_s: float,
                  setups: int) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/v1/voice"
    async with aiohttp.ClientSession() as http:
        opened = await asyncio.gather(*(open_call(http, url) for _ in range(calls)))
        await asyncio.sleep(0.5)
        start_at = time.perf_counter() + 0.1
        cpu0, redis0 = cpu_seconds(gateway_pid), cpu_seconds(redis_pid) if redis_pid else 0.0
        t0 = time.perf_counter()
        await asyncio.gather(*(stream(ws, duration_s, start_at) for ws, _ in opened))
        wall = time.perf_counter() - t0
        cpu, redis_cpu = cpu_seconds(gateway_pid) - cpu0, (cpu_seconds(redis_pid) - redis0) if redis_pid else 0.0
        await asyncio.sleep(0.5)
        latencies = []
        for _ in range(setups):
            ws, latency = await open_call(http, url)
            latencies.append(latency)
            await ws.send_str('{"type": "session.end"}')
            await ws.close()
    call_minutes = calls * wall / 60
    latencies.sort()
    return {"cpu_per_call_min": cpu / call_minutes, "redis_cpu_per_call_min": redis_cpu / call_minutes,
            "setup_p50_ms": 1000 * statistics.median(latencies),
            "setup_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))]}


def start_redis(cpus: set[int] | None) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (Debian package redis-server; `make test` installs it)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", tempfile.mkdtemp(prefix="vg-bench-redis-")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pin(proc.pid, cpus)
    time.sleep(0.3)
    return proc, port


class _Call:
    """The fields of a live call the registry reads (gateway/fleet/registry.py `_fields`)."""

    class _State:
        value = "active"

    def __init__(self, sid: str) -> None:
        self.id, self.client, self.provider, self.started_at, self.state = sid, "native", "gemini", 0.0, self._State()


async def registry_work(redis_url: str, calls: int, call_minutes: float) -> dict[str, float]:
    """CPU (this process) of the registry's writes, per call: register, heartbeat, remove."""
    from gateway.config import FleetSettings, Settings
    from gateway.fleet.registry import FleetRegistry, connect
    from gateway.runtime import Runtime

    rt = Runtime(Settings())
    fleet = FleetSettings(redis_url=redis_url, replica_id="bench-registry", ttl_s=15.0, heartbeat_s=5.0)
    registry = FleetRegistry(rt, fleet, replica_url="http://127.0.0.1:1", redis=connect(redis_url))
    await registry.sync(full=True)
    t0 = time.process_time()
    for i in range(calls):  # one call starts: its session.started event, then the write it causes
        call = rt.sessions[f"c{i}"] = _Call(f"c{i}")  # type: ignore[assignment]
        rt.notify_session_event(call, {"type": "session.started"})
        await registry.sync(full=False)
    start_s = (time.process_time() - t0) / calls
    beats = 20
    t0 = time.process_time()
    for _ in range(beats):
        await registry.sync(full=True)
    beat_s = (time.process_time() - t0) / beats / calls
    t0 = time.process_time()
    for i in range(calls):
        call = rt.sessions.pop(f"c{i}")
        rt.notify_session_event(call, {"type": "session.ended"})
        await registry.sync(full=False)
    end_s = (time.process_time() - t0) / calls
    await registry.stop()
    await registry.redis.aclose()
    per_call_min = beat_s * 60 / fleet.heartbeat_s + (start_s + end_s) / call_minutes
    return {"start_ms": 1000 * start_s, "end_ms": 1000 * end_s, "beat_us_per_call": 1e6 * beat_s,
            "cpu_per_call_min": per_call_min}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--setups", type=int, default=60)
    p.add_argument("--registry-calls", type=int, default=300)
    p.add_argument("--call-minutes", type=float, default=3.0, help="average call length for the registry figure")
    p.add_argument("--server-cpus", default="0", help="gateway core(s); the load and the fakes get the others")
    args = p.parse_args(argv)
    server_cpus = {int(c) for c in args.server_cpus.split(",") if c} or None
    other_cpus = {1} if server_cpus == {0} else None
    out = Path(tempfile.mkdtemp(prefix="vg-bench-fleet-"))
    pin(0, other_cpus)
    echo = start_server("echo", ["-m", "benchmarks.echo_provider", "--port", "0"], cpus=other_cpus,
                        env=bench_env(), log_path=out / "echo.log")
    redis, redis_port = start_redis(other_cpus)
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        for rnd in range(args.rounds):
            for mode in ("off", "on"):
                extra = {"VG_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "VG_REPLICA_ID": "bench"} \
                    if mode == "on" else {}
                gw = start_gateway(port=free_port(), provider_url=f"ws://127.0.0.1:{echo.port}", cpus=server_cpus,
                                   log_path=out / f"gateway-{mode}-{rnd}.log", extra_env=extra)
                try:
                    r = asyncio.run(measure(gw.port, gw.pid, redis.pid if mode == "on" else None,
                                            args.calls, args.duration, args.setups))
                finally:
                    gw.stop()
                results[mode].append(r)
                print(f"round {rnd + 1} fleet {mode:3}: {r['cpu_per_call_min']:.4f} CPU s/call-min "
                      f"(redis {r['redis_cpu_per_call_min']:.4f}), setup p50 {r['setup_p50_ms']:.2f} ms "
                      f"p95 {r['setup_p95_ms']:.2f} ms", flush=True)
        work = asyncio.run(registry_work(f"redis://127.0.0.1:{redis_port}/0", args.registry_calls,
                                         args.call_minutes))
    finally:
        redis.terminate()
        redis.wait(5)
        echo.stop()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    print(f"\n{args.calls} calls × {args.duration:g} s, {args.rounds} round(s) per mode, medians (logs: {out}):")
    print("| fleet mode | gateway CPU s/call-min | redis CPU s/call-min | setup p50 ms | setup p95 ms |")
    print("|---|---|---|---|---|")
    for mode in ("off", "on"):
        print(f"| {mode} | {med(mode, 'cpu_per_call_min'):.4f} | {med(mode, 'redis_cpu_per_call_min'):.4f} | "
              f"{med(mode, 'setup_p50_ms'):.2f} | {med(mode, 'setup_p95_ms'):.2f} |")
    added_cpu = med("on", "cpu_per_call_min") - med("off", "cpu_per_call_min")
    print(f"\nadded by fleet mode: {added_cpu:+.4f} gateway CPU s per call-minute "
          f"({100 * added_cpu / med('off', 'cpu_per_call_min'):+.1f} %), "
          f"+{med('on', 'redis_cpu_per_call_min'):.4f} s in Redis; call setup p50 "
          f"{med('on', 'setup_p50_ms') - med('off', 'setup_p50_ms'):+.2f} ms, "
          f"p95 {med('on', 'setup_p95_ms') - med('off', 'setup_p95_ms'):+.2f} ms")
    print(f"registry work in-process ({args.registry_calls} calls): register {work['start_ms']:.3f} ms, "
          f"remove {work['end_ms']:.3f} ms, heartbeat {work['beat_us_per_call']:.1f} µs per call; "
          f"= {work['cpu_per_call_min']:.5f} CPU s per call-minute for {args.call_minutes:g}-minute calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
