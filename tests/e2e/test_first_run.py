"""A new user's first hour: the command line's help, configuration errors, the bind address,
readable logs, one clear line for a bad key, `make run`'s install, and a clean package build.
Everything runs the real `voice-gateway` executable or the real build, as a user would."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import orjson
import pytest

from gateway.cli import build_parser
from gateway.logs import JsonFormatter
from tests.e2e.test_serve_process import free_port
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "voice-gateway"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VG_") and not k.endswith(("_API_KEY", "_API_KEY_FILE", "_BASE_URL"))}
    return {**env, **extra}


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], env=clean_env(**env), cwd=REPO, capture_output=True,
                          text=True, timeout=60)


# -- help -------------------------------------------------------------------------------------
def _subparser(name: str):  # noqa: ANN202
    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001 - argparse's API
    return sub.choices[name]


@pytest.mark.parametrize("command", ["serve", "fake-provider", "token"])
def test_every_option_of_the_main_commands_is_described(command: str) -> None:
    undescribed = [a.option_strings or a.dest for a in _subparser(command)._actions  # noqa: SLF001
                   if a.help in (None, "") and a.dest != "help"]
    assert not undescribed


def test_faults_help_describes_the_syntax_instead_of_pointing_at_a_source_file() -> None:
    out = run_cli("fake-provider", "--help").stdout
    assert "common.py" not in out
    for word in ("CONN:KIND", "drop", "refuse", "status=", "audio_bytes=N", "example:"):
        assert word in out


def test_bench_help_no_longer_claims_twilio_paths_are_skipped() -> None:
    out = run_cli("bench", "--help").stdout
    assert "skipped" not in out and "twilio-pcmu" in out
    assert "--capacity-start" in out and "first N the capacity search tries" in out


# -- configuration errors ---------------------------------------------------------------------
def test_check_config_reports_every_error_on_stderr() -> None:
    done = run_cli("check-config", VG_PORT="eighty", VG_LOG_LEVEL="LOUD", VG_FALLBACK_CHAIN="gemini,bard",
                   VG_PUBLIC_URL="ftp://voice.example.com", OPENAI_API_KEY="sk-never-printed-0001")
    assert done.returncode == 2
    report = orjson.loads(done.stdout)
    assert report["ok"] is False and len(report["errors"]) == 4
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4
    for var in ("VG_PORT", "VG_LOG_LEVEL", "VG_FALLBACK_CHAIN", "VG_PUBLIC_URL"):
        assert sum(var in line for line in lines) == 1
    assert "sk-never-printed-0001" not in done.stdout + done.stderr


def test_serve_with_a_bad_config_says_so_on_stderr_and_exits_2() -> None:
    done = run_cli("serve", VG_PORT="eighty")
    assert done.returncode == 2
    assert "VG_PORT" in done.stderr and "check-config" in done.stderr
    assert done.stdout == ""


# -- serve: bind address and console logs --------------------------------------------------------
async def test_serve_binds_vg_host_and_vg_port_and_logs_readably_with_console_format() -> None:
    port = free_port()
    proc = subprocess.Popen([str(BIN), "serve"], env=clean_env(VG_HOST="127.0.0.1", VG_PORT=str(port),  # noqa: ASYNC220
                                                               VG_LOG_FORMAT="console"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"nothing answered on VG_PORT={port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    ready = next(line for line in out.splitlines() if "gateway.ready" in line)
    assert not ready.startswith("{")  # a terminal line, not JSON
    assert " INFO " in ready and "gemini=simulated" in ready


def test_json_stays_the_default_log_format() -> None:
    from gateway.config import load_settings

    assert load_settings({}).log_format == "json"


# -- a bad key: one clear ERROR line, the stack only at DEBUG -----------------------------------
async def _log_lines_of_a_bad_gemini_key(level: int) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        async with Gateway(keys={"gemini": "AIzaWRONG-first-run-0000000000"}) as gw, gw.client() as c:
            await c.send({"type": "session.start", "provider": "gemini"})
            started = await c.wait_for("session.started")  # the call starts on the next provider
            assert started["provider"] != "gemini"
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_bad_key_logs_one_clear_error_line_without_a_stack() -> None:
    lines = await _log_lines_of_a_bad_gemini_key(logging.INFO)
    errors = [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert [e["event"] for e in errors] == ["provider.auth_failed"]
    assert "GEMINI_API_KEY" in errors[0]["message"]
    assert not [line["event"] for line in lines if "stack" in line]


async def test_at_debug_the_bad_key_line_carries_its_stack() -> None:
    lines = await _log_lines_of_a_bad_gemini_key(logging.DEBUG)
    assert "stack" in next(line for line in lines if line["event"] == "provider.auth_failed")


# -- make run and the package build ------------------------------------------------------------
def test_make_run_installs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    # -n: print what `make run` would do on a fresh clone (no venv yet), without doing it
    # run as a top-level make: under `make test` the outer make's MAKEFLAGS/MAKELEVEL would make this one
    # print "Entering/Leaving directory" lines around the recipe
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(["make", "--no-print-directory", "-n", "run", f"VENV={tmp_path}/venv"], cwd=REPO,
                          capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    installs = [line for line in done.stdout.splitlines() if "pip install" in line and "-e" in line]
    # runtime only: the optional `opus` extra (PyAV, for compressed browser audio) is runtime too
    extras = [line.partition("-e")[2] for line in installs]
    assert installs and all("test" not in e and "bench" not in e for e in extras), installs
    assert done.stdout.strip().splitlines()[-1].endswith("voice-gateway serve")


def test_the_wheel_builds_without_the_license_warning_and_ships_the_client(tmp_path: Path) -> None:
    # build from a copy of the checkout: setuptools writes build/ and *.egg-info into the source tree
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    src = tmp_path / "src"
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "project.license" not in done.stdout + done.stderr
    wheel = next(tmp_path.glob("voice_gateway-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "voice_gateway_client/__init__.py" in names and "gateway/app.py" in names


async def test_serve_with_ssl_certfile_serves_https_and_wss(tmp_path: Path) -> None:
    """deployment.md option 1: the gateway terminates TLS itself; a client trusting the CA talks
    wss:// to it (trustme makes the CA and the certificate for 127.0.0.1)."""
    import ssl

    import trustme

    from audio.formats import PCM16_16K
    from tests.harness import dtmf_utterance
    from voice_gateway_client import Transcript, connect

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    port = free_port()
    proc = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--ssl-certfile", str(tmp_path / "server.pem"),  # noqa: ASYNC220
                             "--ssl-keyfile", str(tmp_path / "server.pem")],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=client_ctx) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                await asyncio.sleep(0.05)
        async with connect(f"wss://127.0.0.1:{port}/v1/voice", provider="deepgram", ssl=client_ctx) as call:
            pcm = dtmf_utterance("5", PCM16_16K)
            for i in range(0, len(pcm), 640):
                await call.send_audio(pcm[i:i + 640])
                await asyncio.sleep(0.005)
            async for event in call:
                if isinstance(event, Transcript) and event.final:
                    assert event.text == "5"
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_serve_refuses_a_certificate_without_its_key() -> None:
    done = run_cli("serve", "--ssl-certfile", "cert.pem")
    assert done.returncode == 2 and "--ssl-keyfile" in done.stderr
