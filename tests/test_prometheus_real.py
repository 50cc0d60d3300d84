"""A real Prometheus (Debian's `prometheus`) scraping a real `voice-gateway serve` on loopback, with
our alert rules loaded: targets come up, the documented PromQL evaluates, the rules evaluate
cleanly, and alerts react to what the gateway really does (breaker forced OPEN, gateway gone).

Every wait polls with a deadline (these are separate processes); every process is stopped in a
finalizer. Scrape and evaluation run every second, so each scenario takes a few seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from promtool import DEPLOY, require_binary
from websockets.sync.client import connect

import gateway

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
JOB = "voice-gateway"
DEADLINE_S = 20.0
POLL_S = 0.1
# Variables a developer's shell may carry that would change what the gateway connects to.
_SCRUBBED_PREFIXES = ("VG_", "GEMINI_", "OPENAI_", "DEEPGRAM_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(probe: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Call `probe` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = probe()
        except (OSError, urllib.error.URLError) as err:  # not listening yet, or just went away
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(POLL_S)


def http_json(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Prometheus:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def query(self, promql: str) -> list[dict]:
        body = http_json(f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single sample of an instant query, or None while it has none."""
        result = self.query(promql)
        assert len(result) <= 1, f"{promql} returned {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str, **labels: str) -> list[dict]:
        found = http_json(f"{self.base_url}/api/v1/alerts")["data"]["alerts"]
        return [a for a in found if a["labels"]["alertname"] == name
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def rules(self) -> list[dict]:
        groups = http_json(f"{self.base_url}/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[[list[str]], str]]:
    """Factory: start Prometheus scraping `targets` (host:port) as job voice-gateway; returns its URL."""
    binary = require_binary("prometheus")
    started: list[subprocess.Popen] = []

    def start(targets: list[str]) -> str:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with (workdir / "prometheus.log").open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        base_url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited: {(workdir / 'prometheus.log').read_text()}"
            with urllib.request.urlopen(f"{base_url}/-/ready", timeout=2) as response:
                return response.status == 200

        poll(ready, "prometheus /-/ready")
        return base_url

    yield start
    for process in started:
        stop(process)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `voice-gateway <args>` with a scrubbed environment plus `env`; stopped at teardown."""
    script = Path(sys.executable).with_name("voice-gateway")
    assert script.exists(), f"console script missing: {script} (pip install -e .)"
    started: list[subprocess.Popen] = []

    def run(*args: str, env: dict[str, str] | None = None, stdout: Any = None) -> subprocess.Popen:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        command, full_env = [str(script), *args], {**clean, **(env or {})}
        if stdout is not None:
            process = subprocess.Popen(command, env=full_env, stdout=stdout)
        else:
            with (tmp_path / f"process-{len(started)}.log").open("wb") as log:
                process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield run
    for process in started:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


def start_gateway(spawn: Callable[..., subprocess.Popen], env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen]:
    port = free_port()
    process = spawn("serve", "--host", "127.0.0.1", "--port", str(port), env=env)
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, f"gateway exited with {process.returncode}"
        return http_json(f"{base_url}/healthz")["status"] == "ok"

    poll(healthy, "gateway /healthz")
    return f"127.0.0.1:{port}", process


def start_fake_provider(spawn: Callable[..., subprocess.Popen], provider: str, api_key: str) -> str:
    process = spawn("fake-provider", provider, "--port", str(free_port()), "--api-key", api_key,
                    stdout=subprocess.PIPE)
    ready, _, _ = select.select([process.stdout], [], [], DEADLINE_S)
    line = process.stdout.readline().decode().strip() if ready else ""
    assert line.startswith("listening on ws://"), f"fake {provider} did not start: {line!r}"
    return line.removeprefix("listening on ")


def test_prometheus_scrapes_the_gateway_evaluates_rules_and_notices_it_die(spawn, prometheus_server):
    # One Prometheus for the whole lifecycle: its first target sync alone takes ~5 s.
    target, gateway_process = start_gateway(spawn)
    prom = Prometheus(prometheus_server([target]))

    poll(lambda: prom.value(f'up{{job="{JOB}"}}') == 1, "up == 1")
    (active,) = http_json(f"{prom.base_url}/api/v1/targets")["data"]["activeTargets"]
    assert (active["labels"]["job"], active["labels"]["instance"], active["health"]) == (JOB, target, "up")
    assert active["scrapeUrl"] == f"http://{target}/metrics"

    # One breaker per provider, exposed from start-up, all CLOSED.
    states = {s["metric"]["name"]: s["value"][1] for s in prom.query("circuit_breaker_state")}
    assert states == {"gemini_provider": "0", "openai_provider": "0", "deepgram_stt": "0",
                      # the transcription chain's own breakers (docs/chains.md), one per chain provider
                      "deepgram_transcription": "0", "groq_transcription": "0", "openai_transcription": "0"}
    assert prom.value('circuit_breaker_state{provider="gemini"}') == 0
    (build,) = prom.query("voice_gateway_build_info")
    assert build["metric"]["version"] == gateway.__version__
    # The audit's other queries evaluate (no calls yet, so no samples).
    prom.query('sum(rate(circuit_breaker_calls_total{status="success"}[5m])) by (provider) / '
               'sum(rate(circuit_breaker_calls_total{status="attempted"}[5m])) by (provider)')
    prom.query("histogram_quantile(0.95, sum(rate(ai_provider_latency_seconds_bucket[5m])) by (le, provider))")

    # Every rule of alerts.yml loaded and evaluated against real data without error.
    loaded = {r["name"] for r in prom.rules() if r["type"] == "alerting"}
    expected = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert loaded == expected
    scraped_at = prom.value("vector(time())")

    def evaluated_after_scrape() -> bool:
        rules = prom.rules()
        assert all(r["health"] != "err" for r in rules), [r for r in rules if r["health"] == "err"]
        return all(_rfc3339_seconds(r["lastEvaluation"]) > scraped_at for r in rules)

    poll(evaluated_after_scrape, "rules evaluated after the first scrape")
    # A healthy idle gateway raises nothing, not even pending.
    assert http_json(f"{prom.base_url}/api/v1/alerts")["data"]["alerts"] == []

    stop(gateway_process)
    poll(lambda: prom.value(f'up{{job="{JOB}"}}') == 0, "up == 0 after the gateway stopped")
    (alert,) = poll(lambda: prom.alerts("GatewayDown", instance=target), "GatewayDown alert")
    # `for: 1m` in the production rules: pending now, firing a minute later.
    assert alert["state"] == "pending"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == "deploy/RUNBOOK.md#gatewaydown"


def test_breaker_forced_open_by_a_bad_key_raises_alerts_until_reset(spawn, prometheus_server):
    real_key, admin_token = secrets.token_hex(8), secrets.token_hex(8)
    fake_url = start_fake_provider(spawn, "gemini", real_key)
    target, _ = start_gateway(spawn, env={
        "GEMINI_API_KEY": "not-" + real_key, "GEMINI_BASE_URL": fake_url, "VG_ADMIN_TOKEN": admin_token})
    prom = Prometheus(prometheus_server([target]))
    poll(lambda: prom.value('circuit_breaker_state{provider="gemini"}') == 0, "gemini breaker CLOSED")

    # A caller asks for gemini: the bad key is fatal for the link, the caller lands on openai.
    with connect(f"ws://{target}/v1/voice", open_timeout=5) as ws:
        ws.send(json.dumps({"type": "session.start", "provider": "gemini", "fallback": ["openai"]}))
        events = []
        while not events or events[-1]["type"] not in ("session.started", "session.ended", "error"):
            message = ws.recv(timeout=10)
            if isinstance(message, str):
                events.append(json.loads(message))
    assert events[-1]["type"] == "session.started" and events[-1]["provider"] == "openai", events
    assert any(e["type"] == "connection.failed" and e["provider"] == "gemini" for e in events), events
    assert real_key not in json.dumps(events)

    poll(lambda: prom.value('circuit_breaker_state{provider="gemini"}') == 2, "gemini breaker OPEN in Prometheus")
    (auth,) = poll(lambda: prom.alerts("ProviderAuthFailing", provider="gemini"), "ProviderAuthFailing")
    assert auth["state"] == "firing"  # no `for:` on this one: it needs a human now
    (opened,) = poll(lambda: prom.alerts("ProviderCircuitBreakerOpen", provider="gemini"), "breaker alert")
    assert opened["state"] == "pending"  # `for: 1m` in the production rules
    assert opened["labels"]["name"] == "gemini_provider" and opened["labels"]["instance"] == target
    assert prom.alerts("NoProviderUsable") == []  # openai and deepgram still admit calls
    assert prom.value('sum(circuit_breaker_state_transitions_total{provider="gemini",to_state="open"})') == 1

    # The runbook's fix: reset the circuit (after fixing the key) and the alert clears.
    reset = http_json(f"http://{target}/admin/circuits/gemini/reset", method="POST",
                      headers={"Authorization": f"Bearer {admin_token}"})
    assert reset["circuit"]["state"] == "CLOSED"
    poll(lambda: prom.value('circuit_breaker_state{provider="gemini"}') == 0, "gemini breaker CLOSED again")
    poll(lambda: not prom.alerts("ProviderCircuitBreakerOpen"), "ProviderCircuitBreakerOpen cleared")


def _rfc3339_seconds(text: str) -> float:
    """Prometheus' nanosecond RFC 3339 timestamps, to Unix seconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return seconds + (float("0." + fraction) if fraction else 0.0)
