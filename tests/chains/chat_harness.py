"""Chat chains test harness: every chain provider's REST fake (MiniMax, OpenRouter, OpenAI, Anthropic, and the
transcription ones) on 127.0.0.1 with recognisable keys and scripted faults, and the gateway app under a real
aiohttp server (port 0). Backoff waits are recorded by the harness clock, not slept (tests/chains/harness.py).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from datetime import date
from typing import Any

from aiohttp import web

from gateway.app import create_app
from gateway.app_state import STATE
from gateway.breaker import BreakerPolicy
from gateway.chains.settings import ChainProviderSettings, ChainSettings
from gateway.config import ProviderSettings, Settings
from gateway.runtime import Runtime
from providers.chains.prices import PriceTable
from providers.fakes.rest_common import HttpFaultScript
from providers.registry import CHAIN_PROVIDERS, chain_fake_class
from tests.chains.harness import CHAIN_KEYS, RecordingClock
from tests.harness import serve_app, stop_served

KEYS = {**CHAIN_KEYS, "minimax": "mmFAKE-minimax-key-0a1b2c3d", "openrouter": "sk-or-FAKE-openrouter-4e5f6a7b",
        "anthropic": "sk-ant-FAKE-anthropic-8c9d0e1f"}
CHAT_PATHS = {"minimax": "/v1/text/chatcompletion_v2", "openrouter": "/api/v1/chat/completions",
              "openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG (8-bit, filter 0), built by hand."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


RED_PNG = png(8, 8, (255, 0, 0))


class Today:
    """The ledger's UTC date, moved by hand (midnight without waiting)."""

    def __init__(self, day: date = date(2026, 12, 7)) -> None:
        self.day = day

    def __call__(self) -> date:
        return self.day


class ChatGateway:
    def __init__(self, *, faults: dict[str, str] | None = None, budget: float | None = None,
                 prices: PriceTable | None = None, breaker: BreakerPolicy = BreakerPolicy(),
                 settings_overrides: dict[str, Any] | None = None, **chain_overrides: Any) -> None:
        self.faults = faults or {}
        self.budget = budget
        self.prices = prices or PriceTable()
        self.breaker = breaker
        self.settings_overrides = settings_overrides or {}
        self.chain_overrides = chain_overrides
        self.fakes: dict[str, Any] = {}
        self.clock = RecordingClock()
        self.today = Today()
        self.runner: web.AppRunner | None = None
        self.runtime: Runtime | None = None
        self.port = 0

    async def __aenter__(self) -> ChatGateway:
        for name in CHAIN_PROVIDERS:
            fake = chain_fake_class(name)(api_key=KEYS[name], faults=HttpFaultScript.parse(self.faults.get(name)))
            await fake.start()
            self.fakes[name] = fake
        providers = {n: ChainProviderSettings(name=n, api_key=KEYS[n], simulated=False,
                                              base_url=f.url + CHAIN_PROVIDERS[n].base_path)
                     for n, f in self.fakes.items()}
        chains = ChainSettings(providers=providers, prices=self.prices, daily_budget_usd=self.budget,
                               **{"attempt_timeout_s": 5.0, **self.chain_overrides})
        live = {n: ProviderSettings(name=n, api_key="unused", base_url="ws://127.0.0.1:9", simulated=False)
                for n in ("gemini", "openai", "deepgram")}
        settings = dataclasses.replace(Settings(), providers=live, chains=chains, breaker=self.breaker,
                                       **self.settings_overrides)
        self.runtime = Runtime(settings, clock=self.clock)
        self.runtime.costs._today = self.today
        await self.runtime.start()
        self.app = create_app(settings, runtime=self.runtime)
        self.runner, self.port = await serve_app(self.app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runtime is not None
        await stop_served(self.runtime, self.runner, self.fakes.values())

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hits(self, provider: str) -> int:
        return self.fakes[provider].hits(CHAT_PATHS[provider])

    @property
    def ledger(self) -> Any:
        assert self.runtime is not None
        return self.runtime.costs

    @property
    def chains(self) -> Any:
        return self.app[STATE].chains
