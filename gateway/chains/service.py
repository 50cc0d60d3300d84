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
from gateway.chains.outcome import (
    OUTCOMES,
    RUN_RESULTS,
    BoundProvider,
    ChainOutcome,
    CostGate,
    CostHook,
    CostRecord,
    ProviderEnabled,
)
from gateway.chains.policy import ChainPolicy
from gateway.chains.runner import ChainRunner
from gateway.chains.settings import ChainProviderSettings
from gateway.clock import Clock, MonotonicClock
from gateway.config import Settings
from gateway.costs import CostLedger
from gateway.logs import log_event
from providers.chains.base import ChainEndpoint, ChainProvider
from providers.chains.chat import REASONING, VISION, ChatOptions
from providers.chains.transcription import TRANSCRIPTION, TranscriptionOptions
from providers.registry import CHAIN_PROVIDERS, CHAINS, chain_fake_class, chain_translator
from providers.registry import chain_breaker_name as breaker_name

log = logging.getLogger("gateway.chains")


class ChainService:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, exchange: HttpExchange | None = None,
                 on_cost: CostHook | None = None, cost_gate: CostGate | None = None,
                 ledger: CostLedger | None = None, provider_enabled: ProviderEnabled | None = None) -> None:
        """`provider_enabled`: the operator controls' view (`Runtime.provider_enabled`): a provider an
        operator disabled is skipped by every chain too (attempt outcome `disabled`)."""
        self.settings = settings.chains
        self.clock: Clock = clock or MonotonicClock()
        self._own_exchange = exchange is None
        self.exchange: HttpExchange = exchange or AiohttpExchange()
        # the one cost ledger (the runtime's, shared with live calls) prices every billed attempt
        self.ledger = ledger or CostLedger(self.settings.prices, daily_budget_usd=self.settings.daily_budget_usd)
        extra_hook = on_cost

        def record(rec: CostRecord) -> None:
            self.ledger.record(rec.chain, rec.provider, rec.cost_usd, rec.usage, model=rec.model,
                               request_id=rec.request_id)
            if extra_hook is not None:
                extra_hook(rec)

        self.runner = ChainRunner(exchange=self.exchange, clock=self.clock,
                                  policy=ChainPolicy.from_settings(self.settings), on_cost=record,
                                  cost_gate=cost_gate, prices=self.ledger.price_for,
                                  provider_enabled=provider_enabled)
        self.orders: dict[str, tuple[str, ...]] = {TRANSCRIPTION.name: self.settings.transcription_chain,
                                                   VISION.name: self.settings.vision_chain,
                                                   REASONING.name: self.settings.reasoning_chain}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.translators: dict[tuple[str, str], ChainProvider[Any, Any]] = {}
        for chain, order in self.orders.items():
            for name in order:
                ps = self.provider_settings(name)
                model = ps.model if chain == TRANSCRIPTION.name else self.settings.chat_models.get((chain, name))
                self.translators[(chain, name)] = chain_translator(chain, name)(
                    model=model, max_upload_bytes=ps.max_upload_bytes)
                self.breakers[breaker_name(chain, name)] = CircuitBreaker(
                    name, clock=self.clock, policy=settings.breaker, name=breaker_name(chain, name))
            metrics.initialize_chain(chain, list(order), CHAINS[chain].endpoint, OUTCOMES, RUN_RESULTS)
            self.ledger.chain_prices[chain] = [(n, self.translators[(chain, n)].model) for n in order]
        self.endpoints: dict[str, ChainEndpoint] = {}
        self.fakes: dict[str, Any] = {}
        self._started = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------
    def provider_settings(self, name: str) -> ChainProviderSettings:
        """A provider's settings; one the settings do not list is simulated (its embedded fake)."""
        return self.settings.providers.get(name) or ChainProviderSettings(name=name)

    async def ensure_started(self, chain: str | None = None) -> None:
        """Endpoints of the chain's providers (all chains' when None); fakes start on first use."""
        async with self._started:
            names = self.orders[chain] if chain else {n for order in self.orders.values() for n in order}
            for name in sorted(names):
                if name not in self.endpoints:
                    self.endpoints[name] = await self._endpoint(self.provider_settings(name))

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

    @property
    def provider_enabled(self) -> ProviderEnabled | None:
        return self.runner.provider_enabled

    @provider_enabled.setter
    def provider_enabled(self, enabled: ProviderEnabled | None) -> None:
        self.runner.provider_enabled = enabled

    # -- requests -----------------------------------------------------------------------------------
    def bound(self, chain: str, order: tuple[str, ...] | None = None) -> list[BoundProvider]:
        return [BoundProvider(translator=self.translators[(chain, name)], endpoint=self.endpoints[name],
                              breaker=self.breakers[breaker_name(chain, name)])
                for name in (self.orders[chain] if order is None else order)]

    async def transcribe(self, options: TranscriptionOptions, *, request_id: str | None = None) -> ChainOutcome:
        return await self.run(TRANSCRIPTION.name, options, request_id=request_id or new_request_id())

    async def chat(self, chain: str, options: ChatOptions, *, request_id: str | None = None) -> ChainOutcome:
        """The vision or reasoning chain; `options.stream` makes `outcome.result` a ChainStream."""
        return await self.run(chain, options, request_id=request_id or new_request_id(chain),
                              stream=options.stream)

    def effective_order(self, chain: str, options: Any) -> tuple[tuple[str, ...], bool]:
        """(providers to try, cost preservation on): the configured order without the providers the chain
        skips for these options (vision `complex`: no MiniMax); in cost preservation mode only the first
        one an operator has not disabled (those before it stay in the order, to be reported `disabled`)."""
        spec = CHAINS[chain]
        skipped = spec.skip_when.get(getattr(options, "complexity", ""), ())
        order = tuple(n for n in self.orders[chain] if n not in skipped) or self.orders[chain][-1:]
        preserving = self.ledger.preserving
        if preserving:
            enabled = self.provider_enabled
            first = next((i for i, n in enumerate(order) if enabled is None or enabled(n)), len(order) - 1)
            order = order[:first + 1]
        return order, preserving

    async def run(self, chain: str, options: Any, *, request_id: str, stream: bool = False) -> ChainOutcome:
        spec = CHAINS[chain]
        spec.validate(options)  # before starting anything: bad input never starts a fake
        await self.ensure_started(chain)
        order, preserving = self.effective_order(chain, options)
        outcome = await self.runner.run(spec, options, self.bound(chain, order), request_id=request_id,
                                        stream=stream)
        outcome.cost_preservation = preserving
        self.ledger.record_request(chain, fallback=outcome.ok and outcome.fallback_used, failed=not outcome.ok)
        return outcome

    # -- reporting ----------------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        enabled = self.provider_enabled
        return {chain: {name: {"mode": self.provider_settings(name).mode,
                               "circuit": self.breakers[breaker_name(chain, name)].state.name,
                               "status": "enabled" if enabled is None or enabled(name) else "disabled"}
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


REQUEST_ID_PREFIXES = {"transcription": "trx_", "vision": "vis_", "reasoning": "rsn_"}


def new_request_id(chain: str = "transcription") -> str:
    return REQUEST_ID_PREFIXES.get(chain, "req_") + secrets.token_hex(12)
