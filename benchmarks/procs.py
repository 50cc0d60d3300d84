"""Processes of a benchmark run: start, pin to a core, wait for readiness, read CPU time and memory
from /proc, stop. Linux only (sched_setaffinity, /proc); elsewhere pinning and RSS are skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
# what aiohttp's server logs when a handler raised (an exception the gateway did not catch)
UNHANDLED = ("Error handling request", "Unhandled exception")
_LISTENING = re.compile(r"listening on (?:ws|http)s?://[\w.]+:(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pin(pid: int, cpus: set[int] | None) -> None:
    """Best effort: restrict `pid` to `cpus` (ignored where unsupported or the cores don't exist)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    usable = cpus & os.sched_getaffinity(0)
    if usable:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, usable)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (stat fields 14, 15)


def system_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (all cores; /proc/stat, idle and iowait excluded)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(v) for v in fields]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK  # user..steal minus idle, iowait


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) in KiB."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VG_", "GEMINI_", "OPENAI_", "DEEPGRAM_"))}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    log: IO[str] | None = None
    port: int = 0
    cpu_marks: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def mark(self, label: str) -> None:
        self.cpu_marks[label] = cpu_seconds(self.pid)

    def cpu_between(self, a: str, b: str) -> float:
        return self.cpu_marks.get(b, 0.0) - self.cpu_marks.get(a, 0.0)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout_s)
        if self.log is not None:
            self.log.close()


def start_server(name: str, args: list[str], *, cpus: set[int] | None, env: dict[str, str],
                 log_path: Path | None = None, timeout_s: float = 20.0) -> Proc:
    """Start a server that prints `listening on ws://HOST:PORT`; returns once it did."""
    popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
    pin(popen.pid, cpus)
    proc = Proc(name, popen)
    deadline = time.monotonic() + timeout_s
    assert popen.stdout is not None
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if not line:
            break
        m = _LISTENING.search(line)
        if m:
            proc.port = int(m.group(1))
            _drain_to(popen, log_path, proc)
            return proc
    proc.stop()
    raise RuntimeError(f"{name} did not start (see its output above)")


def _drain_to(popen: subprocess.Popen[str], log_path: Path | None, proc: Proc) -> None:
    """Keep reading the child's output (into a log file) so a full pipe never blocks it."""
    import threading

    log = open(log_path, "w") if log_path is not None else None  # noqa: SIM115 - closed by Proc.stop
    proc.log = log

    def pump() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            if log is not None and not log.closed:
                with contextlib.suppress(ValueError):
                    log.write(line)

    threading.Thread(target=pump, daemon=True).start()


def _ready(proc: Proc, port: int, timeout_s: float, log_path: Path) -> Proc:
    """`proc` once its /readyz answers 200; stopped, with an error, if it dies or times out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1.0) as r:
                if r.status == 200:
                    return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"the gateway did not become ready; see {log_path}")


def start_gateway(*, port: int, provider_url: str, cpus: set[int] | None, log_path: Path,
                  extra_env: dict[str, str] | None = None, timeout_s: float = 30.0, repo: Path = REPO) -> Proc:
    """`voice-gateway serve` (aiohttp.web, uvloop, one process) with both providers on the echo fake;
    `repo` runs the gateway of another checkout (a baseline) with this environment's packages."""
    env = bench_env(GEMINI_BASE_URL=provider_url, GEMINI_API_KEY="bench-gemini-key",
                    OPENAI_BASE_URL=provider_url + "/v1", OPENAI_API_KEY="bench-openai-key",
                    DEEPGRAM_BASE_URL=provider_url, DEEPGRAM_API_KEY="bench-deepgram-key",
                    VG_FALLBACK_CHAIN="gemini,openai", **(extra_env or {}))
    if repo != REPO:
        env["PYTHONPATH"] = str(repo) + os.pathsep + env["PYTHONPATH"]
    log = open(log_path, "w")  # noqa: SIM115 - closed by Proc.stop
    popen = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)], cwd=repo,
                             env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    pin(popen.pid, cpus)
    return _ready(Proc("gateway", popen, log=log, port=port), port, timeout_s, log_path)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FakesProc:
    """benchmarks/fakes_server.py process(es); `urls` by provider."""

    procs: list[Proc]
    urls: dict[str, str]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def start_fakes(*, log_path: Path, faults: dict[str, str] | None = None, seed: int = 0,
                cpus: set[int] | None = None, timeout_s: float = 30.0, split: bool = False) -> FakesProc:
    """The five live providers' fakes (benchmarks/fakes_server.py) in one process, or (`split`) one
    process per origin: under many calls the fakes' DTMF recognisers are CPU work, and one process
    would be the bottleneck of the run. OpenAI Realtime and GPT-Live share an origin (one process)."""
    if not split:
        return _start_fakes(log_path=log_path, faults=faults, seed=seed, cpus=cpus, timeout_s=timeout_s)
    parts = [_start_fakes(log_path=log_path.with_name(f"{log_path.stem}-{group[0]}{log_path.suffix}"),
                          faults=faults, seed=seed, cpus=cpus, timeout_s=timeout_s, only=group)
             for group in FAKE_ORIGINS]
    return FakesProc([p for part in parts for p in part.procs], {k: v for part in parts for k, v in part.urls.items()})


# one fakes process per origin: GPT-Live is served on OpenAI's (OPENAI_BASE_URL)
FAKE_ORIGINS = (("gemini",), ("openai", "openai_live"), ("deepgram",), ("deepgram_agent",))


def _start_fakes(*, log_path: Path, faults: dict[str, str] | None, seed: int, cpus: set[int] | None,
                 timeout_s: float, only: tuple[str, ...] = ()) -> FakesProc:
    args = ["-m", "benchmarks.fakes_server", "--seed", str(seed)]
    for name in only:
        args += ["--only", name]
    for name, spec in (faults or {}).items():
        if not only or name in only:
            args += [f"--faults-{name.replace('_', '-')}", spec]
    popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=bench_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
    pin(popen.pid, cpus)
    proc = Proc("fakes", popen)
    deadline = time.monotonic() + timeout_s
    assert popen.stdout is not None
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if not line:
            break
        if line.startswith("listening "):
            urls = dict(part.split("=", 1) for part in line.split()[1:])
            _drain_to(popen, log_path, proc)
            return FakesProc([proc], urls)
    proc.stop()
    raise RuntimeError("the fakes did not start")


def start_gateway_probe(*, port: int, fakes: FakesProc, samples: Path, interval_s: float, log_path: Path,
                        extra_env: dict[str, str] | None = None, cpus: set[int] | None = None,
                        timeout_s: float = 30.0, detail: bool = False,
                        tracemalloc_after_s: float | None = None) -> Proc:
    """benchmarks/gateway_probe.py with every provider live on the fakes (any key is accepted): GPT-Live
    on OPENAI_BASE_URL, the Deepgram Voice Agent on DEEPGRAM_AGENT_BASE_URL (else a call on `deepgram`,
    which means the agent, would go to the real agent.deepgram.com)."""
    env = bench_env(GEMINI_BASE_URL=fakes.urls["gemini"], GEMINI_API_KEY="soak-gemini-key",
                    OPENAI_BASE_URL=fakes.urls["openai"] + "/v1", OPENAI_API_KEY="soak-openai-key",
                    DEEPGRAM_BASE_URL=fakes.urls["deepgram"], DEEPGRAM_API_KEY="soak-deepgram-key",
                    **({"DEEPGRAM_AGENT_BASE_URL": fakes.urls["deepgram_agent"]} if "deepgram_agent" in fakes.urls
                       else {}),
                    **(extra_env or {}))
    log = open(log_path, "w")  # noqa: SIM115 - closed by Proc.stop
    popen = subprocess.Popen([sys.executable, "-m", "benchmarks.gateway_probe", "--port", str(port),
                              "--samples", str(samples), "--interval-s", str(interval_s),
                              *(["--detail"] if detail else []),
                              *(["--tracemalloc-after-s", str(tracemalloc_after_s)] if tracemalloc_after_s is not None
                                else [])], cwd=REPO,
                             env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    pin(popen.pid, cpus)
    return _ready(Proc("gateway", popen, log=log, port=port), port, timeout_s, log_path)
