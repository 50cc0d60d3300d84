"""What the chain runner does after a failed attempt, per error class: one table.

    class           retries  between retries          breaker        then
    rate_limit      0        -                        failure        next provider at once
                                                                     (the last one: honour Retry-After once)
    auth            0        -                        forced OPEN    next provider at once
    timeout         1        timeout × 2              failure        next provider
    server          2        backoff b, 2b            failure        next provider
    network         0        -                        failure        next provider (refused/reset: it is down)
    protocol        1        backoff b                failure        next provider
    processing_cap  0        -                        failure        next provider (Deepgram 504)
    bad_input       0        -                        not counted    next provider
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.chains.settings import ChainSettings
from providers.chains.base import ErrorClass


class BreakerEffect(StrEnum):
    FAILURE = "failure"
    AUTH = "auth"  # failure, then forced OPEN (reason auth) until an operator resets it
    NEUTRAL = "neutral"  # the input's fault: the call is cancelled, not a result


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassAction:
    retries: int = 0
    backoff: bool = False
    timeout_factor: float = 1.0  # the retry's timeout = attempt timeout × this
    breaker: BreakerEffect = BreakerEffect.FAILURE


ACTIONS: dict[ErrorClass, ClassAction] = {
    ErrorClass.RATE_LIMIT: ClassAction(),
    ErrorClass.AUTH: ClassAction(breaker=BreakerEffect.AUTH),
    ErrorClass.TIMEOUT: ClassAction(retries=1, timeout_factor=2.0),
    ErrorClass.SERVER: ClassAction(retries=2, backoff=True),
    ErrorClass.NETWORK: ClassAction(),
    ErrorClass.PROTOCOL: ClassAction(retries=1, backoff=True),
    ErrorClass.PROCESSING_CAP: ClassAction(),
    ErrorClass.BAD_INPUT: ClassAction(breaker=BreakerEffect.NEUTRAL),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainPolicy:
    attempt_timeout_s: float = 30.0
    deadline_s: float = 120.0
    retry_backoff_s: float = 0.5
    retry_after_max_s: float = 10.0

    @classmethod
    def from_settings(cls, s: ChainSettings) -> ChainPolicy:
        return cls(attempt_timeout_s=s.attempt_timeout_s, deadline_s=s.deadline_s,
                   retry_backoff_s=s.retry_backoff_s, retry_after_max_s=s.retry_after_max_s)

    def action(self, error_class: ErrorClass) -> ClassAction:
        return ACTIONS[error_class]

    def backoff_s(self, retry: int) -> float:
        """Wait before retry number `retry` (1-based) of a backoff class: b, 2b, 4b, ..."""
        return self.retry_backoff_s * 2 ** (retry - 1)
