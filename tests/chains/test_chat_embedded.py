"""With no keys and no base URLs every chat chain provider is an embedded fake (`simulated` in /readyz), started
on first use of its chain; `voice-gateway fake-provider minimax|openrouter|anthropic` serves one on a port."""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import aiohttp

from gateway.chains.service import ChainService
from gateway.config import load_settings
from providers.chains.chat import ChatOptions
from tests.chains.chat_harness import RED_PNG


async def test_no_keys_every_chat_provider_is_an_embedded_fake() -> None:
    service = ChainService(load_settings({}))
    try:
        outcome = await service.chat("reasoning", ChatOptions(messages=({"role": "user", "content": "What is 2+2?"},)))
        assert outcome.ok and outcome.provider == "minimax" and outcome.result.text == "4"
        assert set(service.fakes) == {"minimax", "openrouter", "anthropic"}  # the reasoning chain's, no more
        url = "data:image/png;base64," + base64.b64encode(RED_PNG).decode()
        vision = await service.chat("vision", ChatOptions(messages=({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]},), complexity="complex"))
        assert vision.provider == "openrouter" and "red" in vision.result.text
        ready = service.readiness()
        assert {ready[c][p]["mode"] for c in ("vision", "reasoning") for p in ready[c]} == {"simulated"}
    finally:
        await service.stop()


async def test_fake_provider_cli_serves_the_anthropic_fake() -> None:
    exe = str(Path(sys.executable).parent / "voice-gateway")
    proc = await asyncio.create_subprocess_exec(exe, "fake-provider", "anthropic", "--port", "0", "--api-key", "k",
                                                stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                                 json={"model": "claude-3-haiku-20240307", "max_tokens": 8,
                                       "messages": [{"role": "user", "content": "What is 3+4?"}]}) as res:
                body = await res.json()
        assert body["content"][0]["text"] == "7"
    finally:
        proc.terminate()
        await proc.wait()
