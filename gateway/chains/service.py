"""The chains of a running gateway: endpoints (live, or embedded REST fakes), one breaker per provider
per chain, the runner and its HTTP session. Built once from Settings; fakes start on first use so a
process that never transcribes starts none.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from gateway import metrics
from gateway.breaker import CircuitBreaker
from gateway.chains.http import AiohttpExchange, HttpExchange
from gateway.chains.policy import ChainPolicy
from gateway.chains.runner import (
    OUTCOMES,
    RUN_RESULTS,
    BoundProvider,
    ChainOutcome,
    ChainRunner,
    CostGate,
    CostHook,
)
from gateway.chains.settings import ChainProviderSettings
from gateway.clock import Clock, MonotonicClock
from gateway.config import Settings
from gateway.logs import log_event
from providers.chains.base import ChainEndpoint, ChainProvider
from providers.chains.transcription import TRANSCRIPTION, TranscriptionOptions
from providers.registry import CHAIN_PROVIDERS, CHAINS, chain_fake_class, chain_translator
from providers.registry import chain_breaker_name as breaker_name

log = logging.getLogger("gateway.chains")


class ChainService:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, exchange: HttpExchange | None = None,
                 on_cost: CostHook | None = None, cost_gate: CostGate | None = None) -> None:
        self.settings = settings.chains
        self.clock: Clock = clock or MonotonicClock()
        self._own_exchange = exchange is None
        self.exchange: HttpExchange = exchange or AiohttpExchange()
        self.runner = ChainRunner(exchange=self.exchange, clock=self.clock,
                                  policy=ChainPolicy.from_settings(self.settings), on_cost=on_cost,
                                  cost_gate=cost_gate)
        self.orders: dict[str, tuple[str, ...]] = {TRANSCRIPTION.name: self.settings.transcription_chain}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.translators: dict[tuple[str, str], ChainProvider[Any, Any]] = {}
        for chain, order in self.orders.items():
            for name in order:
                ps = self.settings.providers[name]
                self.translators[(chain, name)] = chain_translator(chain, name)(
                    model=ps.model, max_upload_bytes=ps.max_upload_bytes)
                self.breakers[breaker_name(chain, name)] = CircuitBreaker(
                    name, clock=self.clock, policy=settings.breaker, name=breaker_name(chain, name))
            metrics.initialize_chain(chain, list(order), CHAINS[chain].endpoint, OUTCOMES, RUN_RESULTS)
        self.endpoints: dict[str, ChainEndpoint] = {}
        self.fakes: dict[str, Any] = {}
        self._started = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------
    async def ensure_started(self) -> None:
        async with self._started:
            if self.endpoints:
                return
            for name in sorted({n for order in self.orders.values() for n in order}):
                ps = self.settings.providers[name]
                self.endpoints[name] = await self._endpoint(ps)

    async def _endpoint(self, ps: ChainProviderSettings) -> ChainEndpoint:
        if not ps.simulated:
            return ChainEndpoint(base_url=ps.live_base_url, api_key=ps.api_key or "", key_env=ps.key_env)
        fake = chain_fake_class(ps.name)(keep_requests=256)
        await fake.start()
        self.fakes[ps.name] = fake
        base = fake.url + CHAIN_PROVIDERS[ps.name].base_path
        log_event(log, logging.INFO, "chain.provider_configured",
                  f"{ps.name} (chains): simulated (embedded fake)", provider=ps.name, mode="simulated")
        return ChainEndpoint(base_url=base, api_key="sim-" + secrets.token_hex(8), key_env=ps.key_env,
                             simulated=True)

    async def stop(self) -> None:
        for fake in self.fakes.values():
            await fake.stop()
        self.fakes.clear()
        self.endpoints.clear()
        if self._own_exchange and isinstance(self.exchange, AiohttpExchange):
            await self.exchange.close()

    # -- requests -----------------------------------------------------------------------------------
    def bound(self, chain: str) -> list[BoundProvider]:
        return [BoundProvider(translator=self.translators[(chain, name)], endpoint=self.endpoints[name],
                              breaker=self.breakers[breaker_name(chain, name)]) for name in self.orders[chain]]

    async def transcribe(self, options: TranscriptionOptions, *, request_id: str | None = None) -> ChainOutcome:
        TRANSCRIPTION.validate(options)  # before starting anything: bad input never starts a fake
        await self.ensure_started()
        return await self.runner.run(TRANSCRIPTION, options, self.bound(TRANSCRIPTION.name),
                                     request_id=request_id or new_request_id())

    # -- reporting ----------------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        return {chain: {name: {"mode": self.settings.providers[name].mode,
                               "circuit": self.breakers[breaker_name(chain, name)].state.name}
                        for name in order} for chain, order in self.orders.items()}

    def circuits(self) -> list[dict[str, Any]]:
        out = []
        for chain, order in self.orders.items():
            for name in order:
                snap = self.breakers[breaker_name(chain, name)].snapshot()
                out.append({**snap, "chain": chain, "reset_id": snap["name"]})
        return out

    def breaker(self, name: str) -> CircuitBreaker | None:
        return self.breakers.get(name)


def new_request_id() -> str:
    return "trx_" + secrets.token_hex(12)
