"""Fleet test harness: a real `redis-server`, real `voice-gateway serve` processes in fleet mode and
fake Gemini/OpenAI servers per replica (in a background event loop of the test process, so a test can
count each fake's connections and switch its faults). Everything on 127.0.0.1, free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from providers.fakes import fake_class
from providers.fakes.common import FakeServer, FaultScript

BIN = Path(sys.executable).parent / "voice-gateway"
ADMIN_TOKEN = "fleet-admin-token-5f2c9a"
KEYS = {"gemini": "AIzaFAKE-fleet-gemini-key", "openai": "sk-FAKE-fleet-openai-key"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll a cross-process condition with a deadline (there is no event to wait on across processes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


async def until(cond: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
    """wait_until for async tests: the event loop (and the test's WebSocket clients) keep running."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="vg-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (make test installs the Debian package)"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def pong() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(pong, what="redis-server up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class FakeLoop:
    """Fake providers served from a background thread's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fakes: list[FakeServer] = []

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_fake(self, provider: str) -> FakeServer:
        fake = fake_class(provider)(api_key=KEYS[provider])
        self.run(fake.start())
        self.fakes.append(fake)
        return fake

    def set_faults(self, fake: FakeServer, spec: str) -> None:
        async def apply() -> None:
            fake.faults = FaultScript.parse(spec)

        self.run(apply())

    def close(self) -> None:
        for fake in self.fakes:
            with contextlib.suppress(Exception):
                self.run(fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Replica:
    def __init__(self, name: str, env: dict[str, str], fakes: dict[str, FakeServer]) -> None:
        self.name = name
        self.env = env
        self.fakes = fakes
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"vg-{name}-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/voice"

    def spawn(self) -> None:
        self.proc = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited: {self.output()[-3000:]}"
            status, body = self.get("/readyz")
            return status == 200 and body.get("fleet", {}).get("registry") == "ok"

        wait_until(up, timeout=20, what=f"replica {self.name} ready")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 10.0) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(self.http + path, data=data, method=method,
                                     headers={"authorization": f"Bearer {ADMIN_TOKEN}",
                                              "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, orjson.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, orjson.loads(e.read() or b"null")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def sessions(self) -> list[dict[str, Any]]:
        status, body = self.get("/admin/sessions")
        assert status == 200, body
        return body["sessions"]

    def replicas(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.get("/admin/sessions")[1].get("replicas", [])}

    def circuits(self, *, local: bool = False) -> list[dict[str, Any]]:
        status, body = self.get("/admin/circuits" + ("?scope=local" if local else ""))
        assert status == 200, body
        return body["circuits"]

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.http + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Fleet:
    """redis-server + replicas A, B, C, each with its own Gemini and OpenAI fakes (Deepgram simulated)."""

    def __init__(self, names: tuple[str, ...] = ("A", "B", "C"), **env_overrides: str) -> None:
        self.redis = RedisServer()
        self.fakes = FakeLoop()
        self.replicas: dict[str, Replica] = {}
        self.names = names
        self.env_overrides = env_overrides

    def replica_env(self, name: str, fakes: dict[str, FakeServer]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.endswith(("_API_KEY", "_API_KEY_FILE", "_BASE_URL")) and not k.startswith("VG_")}
        env.update({
            "GEMINI_API_KEY": KEYS["gemini"], "GEMINI_BASE_URL": fakes["gemini"].url,
            "OPENAI_API_KEY": KEYS["openai"], "OPENAI_BASE_URL": fakes["openai"].url + "/v1",
            "VG_REDIS_URL": self.redis.url, "VG_REPLICA_ID": name, "VG_ADMIN_TOKEN": ADMIN_TOKEN,
            "VG_FLEET_TTL_S": "1.5", "VG_FLEET_HEARTBEAT_S": "0.25", "VG_FLEET_FORWARD_TIMEOUT_S": "3",
            "VG_SHARED_BREAKER_ADVISORIES": "1", "VG_BREAKER_FAILURE_THRESHOLD": "1",
            "VG_BREAKER_OPEN_TIMEOUT_S": "6", "VG_DRAIN_TIMEOUT_S": "20",
            "VG_RECONNECT_INITIAL_BACKOFF_S": "0.05", "VG_RECONNECT_MAX_ATTEMPTS": "2",
            "VG_LOG_LEVEL": "INFO", **self.env_overrides,
        })
        return env

    def start(self) -> Fleet:
        self.redis.start()
        for name in self.names:
            fakes = {"gemini": self.fakes.start_fake("gemini"), "openai": self.fakes.start_fake("openai")}
            self.replicas[name] = Replica(name, self.replica_env(name, fakes), fakes)
        for r in self.replicas.values():
            r.spawn()
        for r in self.replicas.values():
            r.wait_ready()
        return self

    def restart(self, name: str) -> Replica:
        old = self.replicas[name]
        old.stop()
        fresh = Replica(name, old.env, old.fakes)
        self.replicas[name] = fresh
        fresh.spawn()
        fresh.wait_ready()
        return fresh

    def close(self) -> None:
        for r in self.replicas.values():
            r.stop()
        self.redis.stop()
        self.fakes.close()
