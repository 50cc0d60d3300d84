"""Chain test harness: the three REST fakes (Deepgram pre-recorded, Groq, OpenAI) on 127.0.0.1 with
recognisable keys and scripted faults, and the gateway app under a real aiohttp server (port 0).

The clock is real for `now()` (deadlines) but `sleep()` only records the requested delay and yields:
retry backoff and Retry-After waits are asserted exactly without waiting (stamina's test mode).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.app import create_app
from gateway.app_state import STATE
from gateway.breaker import BreakerPolicy
from gateway.chains.settings import ChainProviderSettings, ChainSettings
from gateway.config import ProviderSettings, Settings
from gateway.runtime import Runtime
from providers.fakes.rest_common import HttpFaultScript
from providers.registry import chain_fake_class as rest_fake_class
from tests.harness import serve_app, stop_served

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DTMF_WAV = (FIXTURES / "dtmf_159hash_16k.wav").read_bytes()
CHAIN_KEYS = {"deepgram": "dgFAKE-deepgram-key-1a2b3c4d5e6f", "groq": "gsk_FAKE-groq-key-5e6f7a8b9c0d",
              "openai": "sk-FAKE-openai-key-9a8b7c6d5e4f"}
TRANSCRIBE_PATHS = {"deepgram": "/v1/listen", "groq": "/openai/v1/audio/transcriptions",
                    "openai": "/v1/audio/transcriptions"}


class RecordingClock:
    """Monotonic `now()` plus whatever `advance()` added; `sleep()` records and returns at once."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.offset_s = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset_s

    def advance(self, seconds: float) -> None:
        """Jump forward (breaker open timeouts) without waiting."""
        self.offset_s += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


class ChainGateway:
    def __init__(self, *, faults: dict[str, str] | None = None, keys: dict[str, str] | None = None,
                 chain: tuple[str, ...] = ("deepgram", "groq", "openai"), caps: dict[str, int] | None = None,
                 fake_caps: dict[str, int] | None = None, breaker: BreakerPolicy = BreakerPolicy(),
                 settings_overrides: dict[str, Any] | None = None, **chain_overrides: Any) -> None:
        self.settings_overrides = settings_overrides or {}
        self.faults = faults or {}
        self.keys = {**CHAIN_KEYS, **(keys or {})}
        self.chain = chain
        self.caps = caps or {}
        self.fake_caps = fake_caps or {}
        self.breaker = breaker
        self.chain_overrides = chain_overrides
        self.fakes: dict[str, Any] = {}
        self.clock = RecordingClock()
        self.runner: web.AppRunner | None = None
        self.runtime: Runtime | None = None
        self.port = 0

    async def __aenter__(self) -> ChainGateway:
        for name in ("deepgram", "groq", "openai"):
            fake = rest_fake_class(name)(api_key=CHAIN_KEYS[name], faults=HttpFaultScript.parse(self.faults.get(name)))
            if name in self.fake_caps:
                fake.max_body_bytes = self.fake_caps[name]
            await fake.start()
            self.fakes[name] = fake
        chains = ChainSettings(
            providers={n: ChainProviderSettings(name=n, api_key=self.keys[n], simulated=False,
                                                base_url=f.url + ("/v1" if n == "openai" else ""),
                                                max_upload_bytes=self.caps.get(n))
                       for n, f in self.fakes.items()},
            transcription_chain=self.chain, **{"attempt_timeout_s": 5.0, **self.chain_overrides})
        # live providers point nowhere: these tests make no calls
        live = {n: ProviderSettings(name=n, api_key="unused", base_url="ws://127.0.0.1:9", simulated=False)
                for n in ("gemini", "openai", "deepgram")}
        settings = dataclasses.replace(Settings(), providers=live, chains=chains, breaker=self.breaker,
                                       **self.settings_overrides)
        self.runtime = Runtime(settings, clock=self.clock)
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
        return self.fakes[provider].hits(TRANSCRIBE_PATHS[provider])

    @property
    def chains(self) -> Any:
        return self.app[STATE].chains
