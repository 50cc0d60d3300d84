"""The Kubernetes preStop hook (`python -m gateway.fleet.prestop`) against a real `voice-gateway serve`:
it starts the drain and returns only once the last call has ended, so the pod is not killed mid-call."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from audio.formats import PCM16_16K
from tests.e2e.test_serve_process import readyz_turns_503, start_gateway
from tests.harness import VoiceClient

pytestmark = pytest.mark.timeout(60)


async def test_prestop_drains_and_waits_for_the_last_call() -> None:
    proc, port = await start_gateway({"VG_DRAIN_TIMEOUT_S": "30"})
    hook = None
    try:
        async with VoiceClient(f"ws://127.0.0.1:{port}/v1/voice") as call:
            await call.start("deepgram", input_format=PCM16_16K)
            hook = subprocess.Popen([sys.executable, "-m", "gateway.fleet.prestop", "--port", str(port),  # noqa: ASYNC220
                                     "--timeout", "30", "--pid", str(proc.pid), "--poll", "0.1"])
            await readyz_turns_503(port, tries=200, every_s=0.05)  # the hook started the drain
            assert hook.poll() is None, "the hook returned while a call was live"
            await call.send({"type": "session.end"})
            await call.wait_for("session.ended")
        assert await asyncio.to_thread(hook.wait, 15) == 0
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        for p in (hook, proc):
            if p is not None and p.poll() is None:
                p.kill()
