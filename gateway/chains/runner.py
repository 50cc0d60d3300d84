"""The one chain runner: executes any `ChainSpec` over its bound providers, in order.

Per provider: skip it (counted `disabled`) while an operator has disabled it (gateway/fleet/controls.py);
skip it (counted `skipped`) when the upload exceeds its cap or the cost gate says no;
one breaker call for the provider's whole turn (its retries included), so an OPEN breaker skips it
(counted `rejected`) without contacting it; attempts under a per-attempt timeout and the chain's total
deadline; retries per error class from gateway/chains/policy.py. Metrics, logs, costs here and only
here. Translators (providers/chains/) do the wire; the exchange (gateway/chains/http.py) the I/O.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import metrics
from gateway.breaker import BreakerTicket
from gateway.chains.http import ExchangeFailed, HttpExchange, OpenResponse
from gateway.chains.outcome import (
    Attempt,
    BoundProvider,
    ChainOutcome,
    CostGate,
    CostHook,
    CostRecord,
    PriceLookup,
    ProviderEnabled,
)
from gateway.chains.policy import BreakerEffect, ChainPolicy
from gateway.clock import Clock
from gateway.errors import CircuitOpen, ProviderUnavailable
from gateway.logs import log_event
from providers.chains.base import (
    METRIC_ERROR_TYPES,
    AttemptError,
    ChainProvider,
    ErrorClass,
    HttpResponse,
    Usage,
)
from providers.chains.spec import ChainSpec

__all__ = ["ChainOutcome", "ChainRunner", "ChainStream"]  # ChainOutcome: the HTTP APIs import it from here

log = logging.getLogger("gateway.chains")

_CLASS_OUTCOME = {ErrorClass.RATE_LIMIT: "rate_limit", ErrorClass.AUTH: "auth", ErrorClass.TIMEOUT: "timeout",
                  ErrorClass.LOW_QUALITY: "low_quality"}
_NOT_PROVIDER_ERRORS = (ErrorClass.BAD_INPUT, ErrorClass.LOW_QUALITY)
MIN_ATTEMPT_S = 0.05  # an attempt (or retry) with less time than this left before the deadline is not started


class ChainRunner:
    def __init__(self, *, exchange: HttpExchange, clock: Clock, policy: ChainPolicy,
                 on_cost: CostHook | None = None, cost_gate: CostGate | None = None,
                 prices: PriceLookup | None = None, provider_enabled: ProviderEnabled | None = None) -> None:
        self._exchange = exchange
        self.provider_enabled = provider_enabled  # the operator controls' view; None: every provider is enabled
        self._clock = clock
        self.policy = policy
        self._on_cost = on_cost
        self._cost_gate = cost_gate
        self._prices = prices  # the price table (gateway/costs.py); else each translator's own prices

    async def run(self, spec: ChainSpec, options: Any, providers: Sequence[BoundProvider], *,
                  request_id: str, stream: bool = False) -> ChainOutcome:
        """Validate (ClientError before any provider is contacted), then walk the chain.

        `stream=True`: the providers' translators stream (SSE); an attempt commits at a 2xx status line
        and `outcome.result` is a `ChainStream` to iterate. Failures before the commit fall back as
        usual; after it there is no fallback (the caller may already have sent part of the answer)."""
        spec.validate(options)
        outcome = ChainOutcome(chain=spec.name, request_id=request_id)
        deadline = self._clock.now() + self.policy.deadline_s
        for index, bound in enumerate(providers):
            last = index == len(providers) - 1
            turn = await self._turn(spec, options, bound, outcome, deadline, last=last, stream=stream)
            metrics.voice_gateway_chain_requests.labels(spec.name, bound.name, turn).inc()
            if outcome.ok:
                self._succeeded(spec, outcome, bound, last=last)
                return outcome
            if not last:
                nxt = providers[index + 1].name
                metrics.voice_gateway_chain_fallbacks.labels(spec.name, bound.name, nxt).inc()
                failed = outcome.attempts[-1]
                fields: dict[str, Any] = {"from": bound.name, "to": nxt}  # `from` is a keyword
                log_event(log, logging.WARNING, "chain.fallback",
                          f"{spec.name}: {bound.name} failed ({failed.outcome}), falling back to {nxt}",
                          chain=spec.name, request_id=request_id, provider=bound.name,
                          error_class=failed.error_class or failed.outcome, code=failed.code,
                          status=failed.status, **fields)
        outcome.code = spec.codes.all_failed
        metrics.voice_gateway_chain_runs.labels(spec.name, "failed").inc()
        log_event(log, logging.ERROR, "chain.failed", f"{spec.name}: every provider failed ({outcome.code})",
                  chain=spec.name, request_id=request_id, code=outcome.code,
                  attempts=[a.to_dict() for a in outcome.attempts], cost_usd=round(outcome.cost_usd, 8))
        return outcome

    # -- one provider's turn ------------------------------------------------------------------------
    async def _turn(self, spec: ChainSpec, options: Any, bound: BoundProvider, outcome: ChainOutcome,
                    deadline: float, *, last: bool, stream: bool) -> str:
        t = bound.translator
        if self.provider_enabled is not None and not self.provider_enabled(t.name):
            outcome.attempts.append(Attempt(provider=t.name, outcome="disabled", code="provider_disabled",
                                            message=f"{t.name} is disabled by an operator"))
            return "disabled"
        if deadline - self._clock.now() < MIN_ATTEMPT_S:
            outcome.attempts.append(Attempt(provider=t.name, outcome="skipped", code="deadline_exceeded",
                                            message="the chain deadline passed before this provider's turn"))
            return "skipped"
        if t.upload_size(options) > t.max_upload_bytes:
            outcome.attempts.append(Attempt(provider=t.name, outcome="skipped", code="upload_too_large",
                                            message=f"the upload exceeds the {t.max_upload_bytes} byte cap"))
            return "skipped"
        if self._cost_gate is not None and not self._cost_gate(spec.name, t.name):
            outcome.attempts.append(Attempt(provider=t.name, outcome="skipped", code="budget_exceeded",
                                            message="the spending budget for this provider is used up"))
            return "skipped"
        try:
            ticket = bound.breaker.admit()
        except CircuitOpen as err:
            outcome.attempts.append(Attempt(provider=t.name, outcome="rejected", code="circuit_open",
                                            message=f"circuit OPEN, retry after {err.retry_after_s:.1f}s"))
            return "rejected"
        try:
            return await self._attempts(spec, options, bound, ticket, outcome, deadline, last=last,
                                        stream=stream)
        finally:
            ticket.cancel()  # no-op once resolved; frees a half-open slot if we were cancelled

    async def _attempts(self, spec: ChainSpec, options: Any, bound: BoundProvider, ticket: BreakerTicket,
                        outcome: ChainOutcome, deadline: float, *, last: bool, stream: bool) -> str:
        t = bound.translator
        request = t.build(options, bound.endpoint)
        used: Counter[ErrorClass] = Counter()
        timeout_s, retry, honoured_retry_after = self.policy.attempt_timeout_s, 0, False
        while True:
            remaining = max(deadline - self._clock.now(), MIN_ATTEMPT_S)
            started = time.perf_counter()
            try:
                parsed = await self._attempt(t, request, min(timeout_s, remaining), stream=stream)
            except TimeoutError:
                parsed = AttemptError(error_class=ErrorClass.TIMEOUT,
                                      message=f"no answer within {min(timeout_s, remaining):.1f}s")
            except ExchangeFailed as err:
                parsed = AttemptError(error_class=ErrorClass.NETWORK, message=f"connection failed ({err})")
            if spec.check is not None and not isinstance(parsed, AttemptError | _Committed) \
                    and (reason := spec.check(options, parsed)) is not None:
                parsed = AttemptError(error_class=ErrorClass.LOW_QUALITY, status=200, message=reason,
                                      usage=t.usage(parsed))
            elapsed = time.perf_counter() - started
            metrics.ai_provider_latency_seconds.labels(t.name, spec.endpoint).observe(elapsed)
            if not isinstance(parsed, AttemptError):
                metrics.ai_provider_requests.labels(t.name, spec.endpoint, "success").inc()
                ticket.success()
                if isinstance(parsed, _Committed):
                    parsed = ChainStream(self, spec, bound, parsed, outcome)
                outcome.result, outcome.provider = parsed, t.name
                outcome.model = getattr(parsed, "model", None) or t.model
                outcome.attempts.append(Attempt(provider=t.name, outcome="success", status=200,
                                                latency_ms=elapsed * 1000, retry=retry))
                metrics.voice_gateway_chain_latency_seconds.labels(spec.name, t.name).observe(elapsed)
                return "success"
            self._record_failure(spec, outcome, t.name, parsed, elapsed, retry)
            if parsed.usage is not None:  # the provider billed this answer although we cannot use it
                self.bill(spec, outcome, t, parsed.usage, model=getattr(t, "model", ""))
            action = self.policy.action(parsed.error_class)
            used[parsed.error_class] += 1
            wait: float | None = None
            if used[parsed.error_class] <= action.retries:
                wait = self.policy.backoff_s(used[parsed.error_class]) if action.backoff else 0.0
                timeout_s = self.policy.attempt_timeout_s * action.timeout_factor
            elif (parsed.error_class is ErrorClass.RATE_LIMIT and last and not honoured_retry_after
                  and parsed.retry_after_s is not None
                  and parsed.retry_after_s <= self.policy.retry_after_max_s):
                wait, honoured_retry_after = parsed.retry_after_s, True
            # no retry that would start past the deadline
            if wait is None or wait + MIN_ATTEMPT_S > deadline - self._clock.now():
                self._resolve(ticket, bound, parsed, spec.codes.for_attempt(t.name, parsed.error_class))
                return _CLASS_OUTCOME.get(parsed.error_class, "error")
            if wait > 0:
                await self._clock.sleep(wait)
            retry += 1

    async def _attempt(self, t: ChainProvider[Any, Any], request: Any, timeout_s: float, *,
                       stream: bool) -> Any:
        if not stream:
            return t.parse(await self._exchange(request, timeout_s))
        opened = await self._exchange.open(request, timeout_s)
        if not 200 <= opened.status < 300:
            body = await opened.read()
            return t.parse(HttpResponse(status=opened.status, headers=opened.headers, body=body))
        if "text/event-stream" not in opened.headers.get("content-type", "").lower():
            # a 2xx that is not a stream: an error in a 200 (MiniMax's base_resp) or a provider ignoring `stream`
            body = await opened.read()
            parsed = t.parse(HttpResponse(status=opened.status, headers=opened.headers, body=body))
            return parsed if isinstance(parsed, AttemptError) else AttemptError(
                error_class=ErrorClass.PROTOCOL, status=opened.status, message="asked for a stream, got none")
        return await self._first_events(t, opened)

    async def _first_events(self, t: ChainProvider[Any, Any], opened: OpenResponse) -> Any:
        """Read a 2xx stream up to its first event: the commit point. Until then nothing can have reached
        the caller, so a break-off, an idle timeout, an in-band error or an empty stream is an attempt
        failure like any other (fallback as usual)."""
        decoder, chunks = t.stream_decoder(), opened.chunks()
        first: list[Any] = []
        ended = False
        try:
            while not first:
                data = await anext(chunks, None)
                if data is None:
                    first, ended = decoder.finish(), True
                    break
                first = decoder.feed(data)
                if not first and (error := getattr(decoder, "error", None)) is not None:
                    opened.close()  # an error before any answer (events decoded with it still commit)
                    return error
        except BaseException:
            opened.close()
            raise
        if not first:
            opened.close()
            return AttemptError(error_class=ErrorClass.PROTOCOL, status=opened.status,
                                message="the stream ended before any answer")
        return _Committed(opened, decoder, chunks, first, ended)

    def _record_failure(self, spec: ChainSpec, outcome: ChainOutcome, provider: str, error: AttemptError,
                        elapsed: float, retry: int) -> None:
        code = spec.codes.for_attempt(provider, error.error_class)
        outcome.attempts.append(Attempt(
            provider=provider, outcome=_CLASS_OUTCOME.get(error.error_class, "error"), code=code,
            status=error.status, error_class=error.error_class.value, latency_ms=elapsed * 1000, retry=retry,
            message=error.message))
        metrics.ai_provider_requests.labels(provider, spec.endpoint, "failure").inc()
        if error.error_class not in _NOT_PROVIDER_ERRORS:  # the input's fault is not a provider error
            metrics.ai_provider_errors.labels(provider, METRIC_ERROR_TYPES[error.error_class]).inc()
        log_event(log, logging.INFO, "chain.attempt_failed",
                  f"{spec.name}: {provider} attempt {retry + 1} failed: {error.error_class.value} ({code})",
                  chain=spec.name, request_id=outcome.request_id, provider=provider, code=code,
                  status=error.status, error_class=error.error_class.value, retry=retry,
                  provider_code=error.provider_code)

    def _resolve(self, ticket: BreakerTicket, bound: BoundProvider, error: AttemptError, code: str) -> None:
        effect = self.policy.action(error.error_class).breaker
        if effect is BreakerEffect.NEUTRAL:
            ticket.cancel()
            return
        ticket.failure(METRIC_ERROR_TYPES[error.error_class])
        if effect is BreakerEffect.AUTH:
            key_env = bound.endpoint.key_env or bound.translator.key_env
            log_event(log, logging.ERROR, "chain.auth_failed",
                      f"{bound.name} refused the credentials in {key_env} (HTTP {error.status}); its "
                      f"'{bound.breaker.name}' circuit is forced OPEN until an operator resets it or the key "
                      "changes", provider=bound.name, status=error.status, code=code, key_env=key_env,
                      breaker=bound.breaker.name)
            bound.breaker.force_open("auth")

    def bill(self, spec: ChainSpec, outcome: ChainOutcome, t: ChainProvider[Any, Any], usage: Usage, *,
             model: str | None = None) -> float:
        """Cost of one billed attempt from the provider's usage fields → metric and cost hook. The
        request's cost is the sum over its billed attempts (a low-quality answer is billed too)."""
        model = model or outcome.model or t.model
        price = self._prices(spec.name, t.name, model) if self._prices is not None else None
        if price is None:
            price_for = getattr(t, "price_for", None)
            price = price_for(model) if price_for else None
        cost = price.cost_usd(usage) if price is not None else 0.0
        outcome.cost_usd += cost
        metrics.voice_gateway_chain_cost_usd.labels(spec.name, t.name).inc(cost)
        if self._on_cost is not None:
            self._on_cost(CostRecord(chain=spec.name, provider=t.name, model=model, usage=usage,
                                     cost_usd=cost, request_id=outcome.request_id))
        return cost

    def _succeeded(self, spec: ChainSpec, outcome: ChainOutcome, bound: BoundProvider, *, last: bool) -> None:
        t = bound.translator
        # a stream is billed when it ends (its usage comes last); anything else now
        streaming = isinstance(outcome.result, ChainStream)
        if not streaming:
            self.bill(spec, outcome, t, t.usage(outcome.result))
        result = "fallback" if outcome.fallback_used else "primary"
        metrics.voice_gateway_chain_runs.labels(spec.name, result).inc()
        path = "→".join(outcome.path)
        if last and outcome.fallback_used:
            log_event(log, logging.CRITICAL, "chain.last_resort",
                      f"{spec.name}: answered by the last provider, {t.name}, after {path}",
                      chain=spec.name, request_id=outcome.request_id, provider=t.name, path=path,
                      attempts=[a.to_dict() for a in outcome.attempts])
        else:
            log_event(log, logging.INFO, "chain.succeeded", f"{spec.name}: answered by {t.name}",
                      chain=spec.name, request_id=outcome.request_id, provider=t.name, path=path,
                      fallback_used=outcome.fallback_used, cost_usd=round(outcome.cost_usd, 6))


@dataclass(frozen=True, slots=True)
class _Committed:
    """A stream past its commit point: its first events are decoded, the rest is still to come."""

    opened: OpenResponse
    decoder: Any
    chunks: AsyncIterator[bytes]
    first: list[Any]
    ended: bool


class ChainStream:
    """A committed streaming answer (its first event decoded). `async for event in stream.events()` yields
    the translator's events; the answer is billed from the decoder's usage when the stream ends. A
    break-off after the commit raises ProviderUnavailable: no fallback once the caller may have part of
    the answer."""

    def __init__(self, runner: ChainRunner, spec: ChainSpec, bound: BoundProvider, committed: _Committed,
                 outcome: ChainOutcome) -> None:
        self._runner, self._spec, self._bound = runner, spec, bound
        self._committed, self._opened, self._outcome = committed, committed.opened, outcome
        self.model = outcome.model
        self.usage: Usage | None = None  # the provider's usage, once the stream has ended

    async def events(self) -> AsyncIterator[Any]:
        t = self._bound.translator
        c = self._committed
        decoder = c.decoder
        try:
            for event in c.first:
                yield event
            if getattr(decoder, "error", None) is not None:  # an error event right behind the first ones
                raise ExchangeFailed("error event")
            if not c.ended:
                async for data in c.chunks:
                    for event in decoder.feed(data):
                        yield event
                    if getattr(decoder, "error", None) is not None:  # an error event after the commit
                        raise ExchangeFailed("error event")
                for event in decoder.finish():
                    yield event
        except (TimeoutError, ExchangeFailed) as err:
            error_type = "timeout" if isinstance(err, TimeoutError) else "network"
            metrics.ai_provider_errors.labels(t.name, error_type).inc()
            log_event(log, logging.ERROR, "chain.stream_failed",
                      f"{self._spec.name}: {t.name} broke off mid-stream ({error_type})", chain=self._spec.name,
                      request_id=self._outcome.request_id, provider=t.name, error_type=error_type)
            raise ProviderUnavailable(f"{t.name} broke off mid-stream", provider=t.name,
                                      error_type=error_type) from None
        finally:
            self._opened.close()
        self.usage = decoder.usage
        self._runner.bill(self._spec, self._outcome, t, decoder.usage)
