"""The fleet's control channel (Redis pub/sub `vg:control`): operator actions and shared breaker
advisories reach every replica.

Invariants:
- the replica that takes an action applies it itself first and publishes it; the others apply what
  they receive (their own messages are ignored), so the action holds in one process too;
- state that must outlive a message lives in Redis as well: disabled providers in a hash, advisories
  in keys with a TTL; a replica (re)subscribing reads both, so a replica that starts later, or missed
  messages during a Redis outage, converges;
- advisories only when `VG_SHARED_BREAKER_ADVISORIES=1`: a local breaker that opens publishes one
  for its remaining open time; receivers refuse new calls on that provider until it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

import orjson

from gateway import metrics
from gateway.breaker import BreakerState
from gateway.fleet import keys
from gateway.fleet.controls import OperatorControls, audit
from gateway.fleet.registry import REDIS_ERRORS, RegistryUnavailable
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.fleet.bus")
RESUBSCRIBE_S = 0.5


class ControlBus:
    def __init__(self, runtime: Runtime, controls: OperatorControls, *, replica_id: str, redis: Any,
                 advisories: bool) -> None:
        self.rt = runtime
        self.controls = controls
        self.replica_id = replica_id
        self.redis = redis
        self.advisories = advisories
        self.subscribed = asyncio.Event()
        self._advertised: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        if advisories:
            for breaker in runtime.breakers.all():
                breaker.subscribe(functools.partial(self._on_breaker_move, breaker.provider))

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def stop(self) -> None:
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- publishing -----------------------------------------------------------------------------
    async def publish(self, message: dict[str, Any]) -> int:
        """Send to every other replica; returns how many subscribers got it (this one included)."""
        try:
            return int(await self.redis.publish(keys.CONTROL_CHANNEL,
                                                orjson.dumps({**message, "by": self.replica_id})))
        except REDIS_ERRORS as e:
            metrics.voice_gateway_fleet_registry_errors.labels("publish").inc()
            raise RegistryUnavailable(str(e)) from None

    async def set_provider_status(self, name: str, status: str, live_calls: str) -> int:
        """Persist, then publish, a disable/enable (the caller already applied it here)."""
        try:
            if status == "disabled":
                record = {"live_calls": live_calls, "source": self.replica_id}
                await self.redis.hset(keys.DISABLED, name, orjson.dumps(record).decode())
            else:
                await self.redis.hdel(keys.DISABLED, name)
        except REDIS_ERRORS as e:
            metrics.voice_gateway_fleet_registry_errors.labels("publish").inc()
            raise RegistryUnavailable(str(e)) from None
        return await self.publish({"op": "provider", "name": name, "status": status, "live_calls": live_calls})

    async def reset_all(self) -> int:
        try:
            await self.redis.delete(*(keys.advisory(p) for p in self.rt.settings.providers))
        except REDIS_ERRORS as e:
            metrics.voice_gateway_fleet_registry_errors.labels("publish").inc()
            raise RegistryUnavailable(str(e)) from None
        return await self.publish({"op": "reset_all"})

    def _on_breaker_move(self, provider: str, _src: BreakerState, dst: BreakerState) -> None:
        if dst is BreakerState.OPEN:
            ttl_s = self.rt.breakers.get(provider).retry_after_s()
            self._advertised.add(provider)
            self._spawn(self._advise(provider, ttl_s))
        elif dst is BreakerState.CLOSED and provider in self._advertised:
            self._advertised.discard(provider)
            self._spawn(self._advise(provider, 0.0))

    async def _advise(self, provider: str, ttl_s: float) -> None:
        try:
            if ttl_s > 0:
                await self.redis.set(keys.advisory(provider), self.replica_id, px=max(1, int(ttl_s * 1000)))
                await self.publish({"op": "advisory", "provider": provider, "ttl_s": ttl_s})
            else:
                await self.redis.delete(keys.advisory(provider))
                await self.publish({"op": "advisory_clear", "provider": provider})
        except (RegistryUnavailable, *REDIS_ERRORS) as e:
            log_event(log, logging.WARNING, "fleet.advisory_not_sent", f"advisory for {provider} not sent: {e}",
                      provider=provider)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving ------------------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.CONTROL_CHANNEL)
                await self._converge()
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"])
            except REDIS_ERRORS as e:
                self.subscribed.clear()
                metrics.voice_gateway_fleet_registry_errors.labels("listen").inc()
                log_event(log, logging.DEBUG, "fleet.control_lost", f"control channel lost: {e}")
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_S)

    async def _converge(self) -> None:
        """After (re)subscribing: adopt the fleet's disabled providers and live advisories."""
        disabled = await self.redis.hgetall(keys.DISABLED)
        for name in self.rt.settings.providers:
            record = orjson.loads(disabled[name]) if name in disabled else None
            is_disabled = name in self.rt.disabled_providers
            if record is not None and not is_disabled:
                self.controls.set_provider_status(name, "disabled", live_calls=record.get("live_calls", "stay"),
                                                  source=record.get("source", "fleet"))
            elif record is None and is_disabled:
                self.controls.set_provider_status(name, "enabled")
        if not self.advisories:
            return
        for name in self.rt.settings.providers:
            source = await self.redis.get(keys.advisory(name))
            ttl_ms = await self.redis.pttl(keys.advisory(name))
            if source and source != self.replica_id and ttl_ms > 0:
                self.rt.breakers.get(name).advise_open(ttl_ms / 1000, source)

    def _apply(self, data: str) -> None:
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(msg, dict) or (by := msg.get("by")) == self.replica_id:
            return
        op, name = msg.get("op"), str(msg.get("name") or msg.get("provider") or "")
        if not isinstance(by, str) or (op != "reset_all" and name not in self.rt.settings.providers):
            return
        if op == "provider" and msg.get("status") in ("disabled", "enabled"):
            moving = self.controls.set_provider_status(name, msg["status"], live_calls=msg.get("live_calls", "stay"),
                                                       source=by)
            audit(f"provider_{msg['status'][:-1]}", f"provider {name} {msg['status']} by replica {by}",
                  provider=name, source=by, applied_by=self.replica_id, live_calls_moving=moving)
        elif op == "reset_all":
            self.controls.reset_all_breakers()
            audit("circuits_reset_all", f"every breaker reset by replica {by}", source=by,
                  applied_by=self.replica_id)
        elif op == "advisory" and self.advisories:
            self.rt.breakers.get(name).advise_open(float(msg.get("ttl_s", 0.0)), by)
        elif op == "advisory_clear" and self.advisories:
            breaker = self.rt.breakers.get(name)
            if breaker.advisory_source == by:
                breaker.clear_advisory()
