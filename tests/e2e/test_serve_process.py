"""`voice-gateway serve` as a real process: the embedded default (no keys → in-process fakes, said
`simulated`) and the graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import websockets

from audio.dtmf import detect_dtmf
from audio.formats import PCM16_16K, PCM16_24K
from tests.harness import VoiceClient, dtmf_utterance

pytestmark = pytest.mark.timeout(60)
BIN = Path(sys.executable).parent / "voice-gateway"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_gateway(env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_API_KEY_FILE", "_BASE_URL")) and not k.startswith("VG_")}
    env.update(env_extra)
    port = free_port()
    proc = subprocess.Popen([str(BIN), "serve", "--port", str(port)], env=env,  # noqa: ASYNC220 - a long-lived server
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc, port
            except aiohttp.ClientError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("gateway did not come up")


async def readyz_turns_503(port: int, *, tries: int = 100, every_s: float = 0.02) -> None:
    """After SIGTERM (or a preStop hook): /readyz answers 503 (polled: the drain's start sends the
    client nothing)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(tries):
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                if r.status == 503:
                    break
            await asyncio.sleep(every_s)
        assert r.status == 503


async def test_embedded_default_needs_no_keys_and_says_simulated() -> None:
    proc, port = await start_gateway({})
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as r:
            ready = await r.json()
        assert r.status == 200
        assert {p: v["mode"] for p, v in ready["providers"].items()} == \
            {"gemini": "simulated", "openai": "simulated", "deepgram": "simulated", "openai_live": "simulated",
            "deepgram_agent": "simulated"}
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as c:
            await c.start("gemini", input_format=PCM16_16K, output_format=PCM16_24K)
            await c.send_audio(dtmf_utterance("12", PCM16_16K), PCM16_16K)
            await c.wait_for("turn.completed", lambda e: e["role"] == "assistant", timeout=10)
            assert c.user_finals() == "12"
            assert "".join(d.digit for d in detect_dtmf(bytes(c.audio), 24000)) == "12"
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as c:  # deepgram talks back, in-process too
            started = await c.start("deepgram", input_format=PCM16_16K, output_format=PCM16_24K)
            assert started["provider"] == "deepgram_agent"
            await c.send_audio(dtmf_utterance("34", PCM16_16K), PCM16_16K)
            await c.wait_for("turn.completed", lambda e: e["role"] == "assistant", timeout=10)
            assert "".join(d.digit for d in detect_dtmf(bytes(c.audio), 24000)) == "34"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[0].decode()
    assert "simulated" in out and '"event":"gateway.ready"' in out


async def test_sigterm_drains_live_calls_then_ends_them() -> None:
    proc, port = await start_gateway({"VG_DRAIN_TIMEOUT_S": "1.0"})
    try:
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as c:
            await c.start("deepgram", input_format=PCM16_16K)
            proc.send_signal(signal.SIGTERM)
            await readyz_turns_503(port)
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://127.0.0.1:{port}/v1/voice")
            assert refused.value.response.status_code == 503
            # the live call still works during the drain...
            await c.send_audio(dtmf_utterance("5", PCM16_16K), PCM16_16K)
            await c.wait_for("transcript.final", lambda e: e["role"] == "user")
            # ...and ends with session.ended when the drain time is up
            ended = await c.wait_for("session.ended", timeout=5)
            assert ended["reason"] == "server_draining"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_second_sigterm_stops_at_once_and_closes_live_calls_with_1012() -> None:
    proc, port = await start_gateway({"VG_DRAIN_TIMEOUT_S": "300"})
    try:
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as c:
            await c.start("deepgram", input_format=PCM16_16K)
            proc.send_signal(signal.SIGTERM)
            await readyz_turns_503(port)  # the drain has begun...
            proc.send_signal(signal.SIGTERM)  # ...and a second signal does not wait for its 300 s
            await asyncio.wait_for(c.closed.wait(), 10)
            assert c.ws is not None and c.ws.close_code == 1012
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
