"""What a chain run produces: the providers it is bound to, each attempt, the cost record of an
answer, the outcome of the whole run, and the names its metrics use (`OUTCOMES` of one provider's
turn, `RUN_RESULTS` of a run); plus the hooks the runner calls for costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.breaker import CircuitBreaker
from providers.chains.base import ChainEndpoint, ChainProvider, ErrorClass, Price, Usage

# voice_gateway_chain_requests_total `outcome` of one provider's turn
OUTCOMES = ("success", "error", "rate_limit", "auth", "timeout", "low_quality", "skipped", "rejected", "disabled")


RUN_RESULTS = ("primary", "fallback", "failed")


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundProvider:
    translator: ChainProvider[Any, Any]
    endpoint: ChainEndpoint
    breaker: CircuitBreaker

    @property
    def name(self) -> str:
        return self.translator.name


@dataclass(slots=True, kw_only=True)
class Attempt:
    provider: str
    outcome: str  # one of OUTCOMES
    code: str | None = None  # stable code of a failed attempt (TRX-001, ...)
    status: int | None = None  # HTTP status, when there was one
    error_class: str | None = None
    latency_ms: float = 0.0
    retry: int = 0  # 0: the provider's first attempt
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "outcome": self.outcome, "code": self.code, "status": self.status,
                "error_class": self.error_class, "latency_ms": round(self.latency_ms, 1), "retry": self.retry,
                "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class CostRecord:
    """One billed attempt, for the cost hook (the ledger and budgets of #15 hang here)."""

    chain: str
    provider: str
    model: str
    usage: Usage
    cost_usd: float
    request_id: str


@dataclass(slots=True, kw_only=True)
class ChainOutcome:
    chain: str
    request_id: str
    result: Any = None
    provider: str | None = None
    model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    cost_usd: float = 0.0
    code: str | None = None  # the chain's all-failed code when nobody answered
    cost_preservation: bool = False  # the daily budget was used up: only the primary provider was asked

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def path(self) -> list[str]:
        seen: list[str] = []
        for a in self.attempts:
            if a.provider not in seen:
                seen.append(a.provider)
        return seen

    @property
    def fallback_used(self) -> bool:
        return any(a.provider != self.provider for a in self.attempts)

    @property
    def only_bad_input(self) -> bool:
        """Every provider that was asked refused the input itself (400/413/422)."""
        asked = [a for a in self.attempts if a.outcome not in ("skipped", "rejected", "disabled")]
        return bool(asked) and all(a.error_class == ErrorClass.BAD_INPUT for a in asked)


CostHook = Callable[[CostRecord], None]
CostGate = Callable[[str, str], bool]  # (chain, provider) → may we spend on it now
ProviderEnabled = Callable[[str], bool]  # provider → not disabled by an operator
PriceLookup = Callable[[str, str, str], Price | None]  # (chain, provider, model) → its price, if the table has one
