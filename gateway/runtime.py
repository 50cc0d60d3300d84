"""Process-wide state of a running gateway: settings, clock, one breaker per provider, the provider
connector, the provider endpoints (live or the embedded fakes) and the live call sessions.

Built once at start-up from `Settings`; nothing below reads the environment again.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Protocol

from gateway import metrics
from gateway.breaker import BreakerRegistry
from gateway.clock import Clock, MonotonicClock
from gateway.config import Settings
from gateway.events import SwitchReason
from gateway.logs import log_event
from gateway.loop_lag import LoopLagMonitor
from gateway.provider_socket import ProviderConnector
from gateway.replay import ReplayBuffer
from gateway.session_config import SessionConfig
from providers.base import Endpoint, ProviderAdapter
from providers.fakes import fake_class
from providers.registry import adapter_for, provider_entry

if TYPE_CHECKING:
    from providers.fakes.common import FakeServer

log = logging.getLogger("gateway.runtime")


class LiveCall(Protocol):
    """What the runtime and the admin API need of a live call (gateway/session.py CallSession); a
    protocol, so the runtime does not import the session that imports it."""

    id: str
    config: SessionConfig
    replay: ReplayBuffer

    @property
    def provider(self) -> str | None: ...

    async def end(self, reason: str = "client_ended") -> None: ...

    async def switch(self, target: str | None, reason: SwitchReason) -> bool: ...

    def snapshot(self, *, detail: bool = False) -> dict[str, Any]: ...


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 connector: ProviderConnector | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or MonotonicClock()
        self.breakers = BreakerRegistry(self.clock, settings.breaker)
        self.connector = connector or ProviderConnector()
        self.endpoints: dict[str, Endpoint] = {}
        self.sessions: dict[str, LiveCall] = {}
        self.fakes: dict[str, FakeServer] = {}
        self.draining = False
        self.loop_lag = LoopLagMonitor()  # voice_gateway_event_loop_lag_seconds, from start() to stop()
        for name in settings.providers:
            self.breakers.get(name)  # gauges exist from the start
        metrics.initialize(list(settings.providers))

    def adapter_class(self, provider: str) -> type[ProviderAdapter]:
        return adapter_for(provider)

    def rotate_after_s(self, provider: str) -> float | None:
        """When a link to `provider` hands over to a fresh connection ahead of the provider's session
        cap (registry `max_session_s`); VG_OPENAI_ROTATE_AFTER_S sets it for OpenAI."""
        default = provider_entry(provider).rotate_after_s
        if default is None:
            return None
        return {"openai": self.settings.openai_rotate_after_s}.get(provider, default)

    @staticmethod
    def wall_time() -> float:
        return time.time()

    async def start(self) -> None:
        """Resolve every provider's endpoint; start an in-process fake for each simulated one."""
        self.loop_lag.start()
        for name, ps in self.settings.providers.items():
            if ps.simulated:
                # a long-lived process: bounded recording (the fakes keep everything for tests)
                fake = fake_class(name)(record_limit_bytes=320_000, keep_connections=64)
                await fake.start()
                self.fakes[name] = fake
                base = fake.url + provider_entry(name).base_path
                # any non-empty key is accepted by a fake started without one; this one is random
                self.endpoints[name] = Endpoint(base_url=base, api_key="sim-" + secrets.token_hex(8),
                                                model=ps.model, simulated=True)
            else:
                self.endpoints[name] = Endpoint(base_url=ps.live_base_url, api_key=ps.api_key or "",
                                                model=ps.model, simulated=False)
            log_event(log, logging.INFO, "provider.configured",
                      f"{name}: {'simulated (embedded fake)' if ps.simulated else 'live'}",
                      provider=name, mode=ps.mode)

    async def stop(self) -> None:
        self.loop_lag.stop()
        for s in list(self.sessions.values()):
            await s.end("server_shutdown")
        for fake in self.fakes.values():
            await fake.stop()
        self.fakes.clear()
        await self.connector.close()

    def refresh_gauges(self) -> None:
        """Replay-depth gauges are the largest depth per provider (no per-session labels); computed at
        scrape time so the audio path does no metrics work for them."""
        deepest: dict[str, int] = {p: 0 for p in self.settings.providers}
        for s in self.sessions.values():
            p = s.provider or s.config.provider
            if p in deepest:
                deepest[p] = max(deepest[p], len(s.replay))
        for p, depth in deepest.items():
            metrics.voice_gateway_replay_buffer_chunks.labels(p).set(depth)
        metrics.deepgram_audio_buffer_size.set(deepest.get("deepgram", 0))

    def readiness(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.draining else "ready",
            "providers": {
                name: {"mode": ("simulated" if ep.simulated else "live"),
                       "circuit": self.breakers.get(name).state.name}
                for name, ep in self.endpoints.items()
            },
            "sessions": len(self.sessions),
        }

