"""One benchmark run: the server under test, load-generator processes, the measurement window.

`BenchRunner` owns the echo fake for the whole session; `run(target, spec, n, duration)` starts the
target (nothing for `direct`, the bare relay, or a fresh gateway: fresh so its peak RSS belongs to
this run), starts ceil(n / calls_per_loadgen) load generators, waits until every call is set up,
then streams for `duration` seconds and reads the CPU time of every process over exactly that
window.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks import report
from benchmarks.procs import (
    REPO,
    Proc,
    bench_env,
    cpu_seconds,
    free_port,
    memory_kb,
    pin,
    start_gateway,
    start_server,
    system_cpu_seconds,
)

GO_DELAY_NS = 300_000_000  # between `go` and the first frame: every generator has read its line


@dataclass
class RunResult:
    run_id: str
    figures: dict[str, Any]


class LoadGen:
    """One load-generator process and its line protocol (see benchmarks/loadgen.py)."""

    def __init__(self, spec: dict[str, Any], spec_path: Path, log_path: Path, cpus: set[int] | None) -> None:
        spec_path.write_bytes(orjson.dumps(spec))
        self.out = Path(spec["out"])
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen", str(spec_path)], cwd=REPO,
                                      env=bench_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.log, text=True, bufsize=1)
        pin(self.popen.pid, cpus)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.strip())
        self._lines.put("")  # EOF

    def expect(self, word: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"load generator: no `{word}` within {timeout_s:.0f} s") from None
            if line.startswith(word):
                return line
            if not line:
                raise RuntimeError(f"load generator exited before `{word}` (see {self.log.name})")

    def go(self, t0_ns: int) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(f"go {t0_ns}\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self.log.close()


class BenchRunner:
    def __init__(self, *, server_cpus: set[int] | None, load_cpus: set[int] | None, calls_per_loadgen: int,
                 workdir: Path | None = None, fake_args: list[str] | None = None,
                 baseline_repo: Path | None = None, max_other_pct: float = 25.0) -> None:
        self.baseline_repo = baseline_repo  # target "gateway-base": the gateway of that checkout
        self.max_other_pct = max_other_pct  # a run is `quiet` when other tenants used at most this (% of a core)
        self.server_cpus = server_cpus
        self.load_cpus = load_cpus
        self.calls_per_loadgen = max(1, calls_per_loadgen)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="vg-bench-"))
        self.fake_args = fake_args or []
        self.fake: Proc | None = None
        self._count = 0

    def __enter__(self) -> BenchRunner:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fake = start_server("echo", ["-m", "benchmarks.echo_provider", *self.fake_args], cpus=self.load_cpus,
                                 env=bench_env(), log_path=self.workdir / "echo.log")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fake is not None:
            self.fake.stop()

    @property
    def fake_url(self) -> str:
        assert self.fake is not None
        return f"ws://127.0.0.1:{self.fake.port}"

    def run(self, target: str, spec: dict[str, Any], n: int, duration_s: float, *, profile: str = "",
            drain_s: float = 1.0) -> RunResult:
        """Never raises for a run that went wrong: the result then carries `error` and no figures."""
        self._count += 1
        name = "-".join(str(spec[k]) for k in ("kind", "provider", "in_rate") if k in spec)
        run_id = f"r{self._count}-{target}-{name}-{n}"
        try:
            return self._run(run_id, target, spec, n, duration_s, profile=profile, drain_s=drain_s)
        except (RuntimeError, OSError, ValueError) as e:
            print(f"  {run_id}: FAILED: {e}", flush=True)
            empty = report.analyse([], {"tags": [], "rx_ns": [], "tx_ns": [], "connections": [],
                                        "duplicates": [], "digits": []})
            return RunResult(run_id, {**empty, "calls": n, "calls_failed": n, "run_id": run_id, "error": str(e),
                                      "notes": [f"run failed: {e}"], "load_cpu_pct": 0.0, "fake_cpu_pct": 0.0,
                                      "server_cpu_pct": 0.0, "frames_lost": 0})

    def _run(self, run_id: str, target: str, spec: dict[str, Any], n: int, duration_s: float, *, profile: str,
             drain_s: float) -> RunResult:
        server = self._start_target(target, run_id)
        url = self.fake_url if server is None else f"ws://127.0.0.1:{server.port}"
        idle_kb = memory_kb(server.pid).get("VmRSS", 0) if server else 0
        gens: list[LoadGen] = []
        profiler: subprocess.Popen[bytes] | None = None
        try:
            per = math.ceil(n / math.ceil(n / self.calls_per_loadgen))
            for j, first in enumerate(range(0, n, per)):
                lg_spec = {**spec, "url": url, "run": f"{run_id}/{j}", "calls": min(per, n - first),
                           "duration_s": duration_s, "api_key": "bench-key", "seed": self._count * 100 + j,
                           "drain_s": drain_s, "out": str(self.workdir / f"{run_id}-lg{j}.npz")}
                gens.append(LoadGen(lg_spec, self.workdir / f"{run_id}-lg{j}.json",
                                    self.workdir / f"{run_id}-lg{j}.log", self._load_core(j)))
            ready = [g.expect("ready", 30 + n * 0.1).split() for g in gens]
            failed = sum(int(r[2]) for r in ready)
            if profile and server is not None:
                suffix = "-pyspy-native.txt" if profile == "native" else "-pyspy.txt"
                profiler = _start_profiler(server.pid, duration_s, self.workdir / f"{run_id}{suffix}",
                                           native=profile == "native")
                if profiler is not None:
                    pin(profiler.pid, self.load_cpus)  # the sampler must not take the server's core
            procs = [p for p in (server, self.fake) if p is not None]
            t0 = time.monotonic_ns() + GO_DELAY_NS
            for g in gens:
                g.go(t0)
            time.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
            start = {p.pid: cpu_seconds(p.pid) for p in procs} | {g.popen.pid: cpu_seconds(g.popen.pid) for g in gens}
            if profiler is not None:
                start[profiler.pid] = cpu_seconds(profiler.pid)  # ours: its CPU is not another tenant's
            start[0] = system_cpu_seconds()  # key 0: the whole machine
            time.sleep(duration_s)
            end = {pid: cpu_seconds(pid) for pid in start if pid} | {0: system_cpu_seconds()}
            peak_kb = memory_kb(server.pid).get("VmHWM", 0) if server else 0
            for g in gens:
                g.expect("done", drain_s + 30)
            metrics = _scrape(server.port) if target.startswith("gateway") and server is not None else ""
        finally:
            if profiler is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiler.wait(duration_s + 10)
            for g in gens:
                g.stop()
            if server is not None:
                server.stop()
        assert self.fake is not None
        fake_stats = report.load_fake_stats(_fetch(f"http://127.0.0.1:{self.fake.port}/bench/stats?prefix={run_id}/"))
        figures = report.analyse([g.out for g in gens], fake_stats)
        figures["calls_failed"] = max(figures["calls_failed"], failed)
        cpu = {pid: end[pid] - start[pid] for pid in start}
        self._add_resources(figures, cpu, server, gens, n, duration_s, idle_kb, peak_kb)
        if metrics:
            figures["gateway_reconnects"] = _metric_sum(metrics, "ai_provider_reconnections_total", 'success="true"')
            figures["gateway_switches"] = _metric_sum(metrics, "voice_gateway_provider_switches_total")
        figures["run_id"] = run_id
        print(f"  {run_id}: up p99 {figures['uplink_ms']['p99']} ms, down p99 {figures['downlink_ms']['p99']} ms, "
              f"server CPU {figures.get('server_cpu_pct', 0):.0f}%, load {figures['load_cpu_pct']:.0f}%, "
              f"fake {figures['fake_cpu_pct']:.0f}%, lost {figures['frames_lost']}", flush=True)
        return RunResult(run_id, figures)

    def _start_target(self, target: str, run_id: str) -> Proc | None:
        if target == "direct":
            return None
        if target == "relay":
            return start_server("relay", ["-m", "benchmarks.relay", "--upstream", self.fake_url],
                                cpus=self.server_cpus, env=bench_env(),
                                log_path=self.workdir / f"{run_id}-relay.log")
        if target == "stack":
            return start_server("stack", ["-m", "benchmarks.relay_asgi", "--upstream", self.fake_url],
                                cpus=self.server_cpus, env=bench_env(),
                                log_path=self.workdir / f"{run_id}-stack.log")
        if target == "floor":
            return start_server("floor", ["-m", "benchmarks.relay_floor", "--upstream", self.fake_url],
                                cpus=self.server_cpus, env=bench_env(),
                                log_path=self.workdir / f"{run_id}-floor.log")
        if target == "gateway":
            return start_gateway(port=free_port(), provider_url=self.fake_url, cpus=self.server_cpus,
                                 log_path=self.workdir / f"{run_id}-gateway.log")
        if target == "gateway-base" and self.baseline_repo is not None:
            return start_gateway(port=free_port(), provider_url=self.fake_url, cpus=self.server_cpus,
                                 log_path=self.workdir / f"{run_id}-gateway-base.log", repo=self.baseline_repo)
        raise ValueError(f"unknown target {target!r}")

    def _load_core(self, j: int) -> set[int] | None:
        """Load generator j's core: the load cores in turn, so callers spread over every load core
        (the echo fake may use any of them)."""
        if not self.load_cpus or len(self.load_cpus) == 1:
            return self.load_cpus
        cores = sorted(self.load_cpus)
        return {cores[j % len(cores)]}

    def _add_resources(self, figures: dict[str, Any], cpu: dict[int, float], server: Proc | None,
                       gens: list[LoadGen], n: int, duration_s: float, idle_kb: int, peak_kb: int) -> None:
        assert self.fake is not None
        live = max(1, figures["calls"] - figures["calls_failed"])
        frames = max(1, figures["frames_sent"])
        load = sum(cpu[g.popen.pid] for g in gens)
        figures["load_cpu_pct"] = round(100 * load / duration_s, 1)
        figures["fake_cpu_pct"] = round(100 * cpu[self.fake.pid] / duration_s, 1)
        notes: list[str] = []
        if server is not None:
            s = cpu[server.pid]
            figures["server_cpu_s"] = round(s, 3)
            figures["server_cpu_pct"] = round(100 * s / duration_s, 1)
            figures["cpu_s_per_call_minute"] = round(s / (live * duration_s / 60), 4)
            figures["cpu_us_per_frame"] = round(s / frames * 1e6, 2)  # one frame in + its echo out
            figures["peak_rss_kib_per_call"] = round(max(0, peak_kb - idle_kb) / live, 1)
            figures["server_rss_idle_kib"], figures["server_rss_peak_kib"] = idle_kb, peak_kb
        ours = sum(v for pid, v in cpu.items() if pid)
        figures["other_processes_cpu_pct"] = round(100 * max(0.0, cpu[0] - ours) / duration_s, 1)
        figures["quiet"] = figures["other_processes_cpu_pct"] <= self.max_other_pct
        if not figures["quiet"]:
            notes.append(f"machine busy: other processes {figures['other_processes_cpu_pct']:.0f}% CPU "
                         f"(> {self.max_other_pct:g}%)")
        cores = len(self.load_cpus) if self.load_cpus else 1
        figures["load_saturated"] = (load + cpu[self.fake.pid]) / duration_s > 0.9 * cores
        if figures["load_saturated"]:
            notes.append(f"load core saturated ({figures['load_cpu_pct'] + figures['fake_cpu_pct']:.0f}%)")
        # the server under test is pinned to its cores: saturated when it used ≥ 90 % of them
        server_cores = len(self.server_cpus) if self.server_cpus else 1
        figures["server_saturated"] = figures.get("server_cpu_pct", 0.0) >= 90.0 * server_cores
        late = figures["send_lateness_ms"]["p99"]
        if late is not None and late > 5:
            notes.append(f"sends late p99 {late:.0f} ms")
        if figures["calls_failed"]:
            notes.append(f"{figures['calls_failed']} calls failed to open")
        figures["notes"] = notes


def _fetch(url: str, timeout_s: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.read()


def _scrape(port: int) -> str:
    try:
        return _fetch(f"http://127.0.0.1:{port}/metrics", 5.0).decode()
    except OSError:
        return ""


def _metric_sum(text: str, name: str, label_filter: str = "") -> int:
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+)$", text, re.MULTILINE):
        if label_filter in (m.group(1) or ""):
            total += float(m.group(2))
    return int(total)


def _start_profiler(pid: int, duration_s: float, out: Path, *, native: bool = False) -> subprocess.Popen[bytes] | None:
    """py-spy (the `bench` extra) sampling the gateway over the window, as collapsed stacks. `native`:
    with C frames, so time in syscalls shows as such (py-spy then stops the process per sample)."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("  (py-spy not installed: pip install -e '.[bench]')", flush=True)
        return None
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--duration", str(int(duration_s)),
                             "--rate", "400" if native else "250", "--format", "raw", "--output", str(out),
                             "--native" if native else "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
