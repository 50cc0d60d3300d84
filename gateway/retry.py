"""The one reconnect policy for every provider link (docs/architecture.md "Reconnect").

Attempts 1..max_attempts wait `initial_backoff_s * multiplier**(attempt-1)` capped at
`max_backoff_s` (defaults: 1, 2, 4, 8, 16 s). Jitter is upward-only: it never shortens a delay,
so the audited schedule is a floor. No sleeping here: the link sleeps on its injected clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.errors import ConfigError

_default_rng = random.Random()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectPolicy:
    max_attempts: int = 5
    initial_backoff_s: float = 1.0
    multiplier: float = 2.0
    max_backoff_s: float = 16.0
    jitter_s: float = 0.0  # upward-only: each delay gains uniform [0, jitter_s]
    connect_timeout_s: float = 10.0  # upgrade + setup acknowledged, per attempt
    # An abnormal close this soon after setup counts as the establishing call failing (docs/architecture.md, Breaker).
    early_failure_window_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"reconnect max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0:
            raise ConfigError(f"reconnect initial_backoff_s must be >= 0, got {self.initial_backoff_s}")
        if self.multiplier < 1:
            raise ConfigError(f"reconnect multiplier must be >= 1, got {self.multiplier}")
        if self.max_backoff_s < self.initial_backoff_s:
            raise ConfigError(f"reconnect max_backoff_s ({self.max_backoff_s}) must be >= "
                              f"initial_backoff_s ({self.initial_backoff_s})")
        if self.jitter_s < 0:
            raise ConfigError(f"reconnect jitter_s must be >= 0, got {self.jitter_s}")
        if self.connect_timeout_s <= 0 or self.early_failure_window_s < 0:
            raise ConfigError("reconnect connect_timeout_s must be > 0 and early_failure_window_s >= 0")

    def base_delay_s(self, attempt: int) -> float:
        """The delay before `attempt` (1-based) without jitter."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        return min(self.initial_backoff_s * self.multiplier ** (attempt - 1), self.max_backoff_s)

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before `attempt` (1-based), jitter included; never below base_delay_s()."""
        delay = self.base_delay_s(attempt)
        if self.jitter_s > 0:
            delay += (rng or _default_rng).uniform(0.0, self.jitter_s)
        return delay

    def schedule(self) -> list[float]:
        """Base delays for attempts 1..max_attempts: [1, 2, 4, 8, 16] by default."""
        return [self.base_delay_s(n) for n in range(1, self.max_attempts + 1)]

    def is_early_failure(self, link_up_for_s: float) -> bool:
        """An abnormal close after `link_up_for_s` of uptime is a failure of the establishing call."""
        return link_up_for_s < self.early_failure_window_s
