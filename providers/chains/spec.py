"""A chain is data: its name, default order, stable error codes and input validation.

The runner reads a `ChainSpec` and nothing else about a chain, so a new chain (vision, reasoning) is
a new spec plus its translators, never a new loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.chains.base import ErrorClass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainCodes:
    """Stable codes. `by_provider[(provider, class)]` wins over `by_provider[(provider, None)]`;
    a provider with neither reports the error class itself (`rate_limit`, `server`, ...)."""

    all_failed: str
    by_provider: Mapping[tuple[str, ErrorClass | None], str] = field(default_factory=dict)

    def for_attempt(self, provider: str, error_class: ErrorClass) -> str:
        return (self.by_provider.get((provider, error_class))
                or self.by_provider.get((provider, None))
                or error_class.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainSpec:
    name: str  # metric label `chain`, log field `chain`
    endpoint: str  # `endpoint` label of ai_provider_requests_total / latency
    order: tuple[str, ...]  # default provider order (settings may reorder or shorten it)
    codes: ChainCodes
    validate: Callable[[Any], None]  # raises a gateway ClientError before any provider is contacted
