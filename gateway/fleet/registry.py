"""The fleet's call registry in Redis: this replica's calls and its liveness key, kept by one writer.

Invariants:
- the calls of this process (`Runtime.sessions`) are the truth; Redis holds a copy that one task
  writes: on a session event (start, switch, end) at once, and every heartbeat refreshes the TTLs;
- Redis being unreachable never touches a call: the failure is counted
  (`voice_gateway_fleet_registry_errors_total`), `/readyz` says `registry: degraded`, and the next
  successful write re-registers everything (a Redis that restarted empty is noticed the same way:
  a TTL refresh that finds no key rewrites it);
- a replica that dies stops refreshing, so its calls and its liveness key expire after `ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway import metrics
from gateway.fleet import keys
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.config import FleetSettings
    from gateway.runtime import LiveCall, Runtime

log = logging.getLogger("gateway.fleet.registry")
REGISTRY_EVENTS = frozenset({"session.started", "provider.switched", "session.ended"})
REDIS_ERRORS = (RedisError, OSError)


class RegistryUnavailable(Exception):
    """Redis could not be read: the caller falls back to this replica's own view."""


def connect(url: str, *, timeout_s: float = 1.0) -> Any:
    """One fast-failing client: a lost Redis must cost a call nothing, not seconds of retries.
    Typed `Any`: with decode_responses=True it takes and returns `str`, which redis-py's annotations
    (bytes | str everywhere, invariant mapping keys) cannot express."""
    return Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s,
                          socket_timeout=timeout_s, retry=Retry(NoBackoff(), 1))


class FleetRegistry:
    def __init__(self, runtime: Runtime, fleet: FleetSettings, *, replica_url: str, redis: Any) -> None:
        self.rt = runtime
        self.fleet = fleet
        self.replica_id = fleet.replica_id
        self.replica_url = replica_url
        self.redis = redis
        self.up = False
        self.last_error: str | None = None
        self.failures = 0
        self.started_at = round(time.time(), 3)
        self._written: dict[str, dict[str, str]] = {}  # session id → fields believed to be in Redis
        self._call_started: dict[str, float] = {}  # session id → wall-clock start
        self._dirty: set[str] = set()  # calls with an event since the last write
        self._replica_dirty = True  # breakers moved, draining started
        self._resync = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ttl_ms = int(fleet.ttl_s * 1000)
        runtime.session_observers.append(self._observe)
        for breaker in runtime.breakers.all():
            breaker.subscribe(lambda _src, _dst: self.poke())

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        metrics.voice_gateway_fleet_registry_up.set(0)
        await self.sync(full=True)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Leave the fleet: this replica's calls and liveness key are removed (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        ids = set(self._written) | set(self.rt.sessions)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for sid in ids:
                pipe.delete(keys.call(sid))
            pipe.delete(keys.replica(self.replica_id))
            pipe.srem(keys.REPLICAS, self.replica_id)
            await pipe.execute()
        except REDIS_ERRORS as e:
            self._failed("leave", e)
        log_event(log, logging.INFO, "fleet.left", f"replica {self.replica_id} left the fleet",
                  replica=self.replica_id)

    def _observe(self, session: LiveCall, wire: dict[str, Any]) -> None:
        if wire["type"] in REGISTRY_EVENTS:
            self._dirty.add(session.id)
            self._wake.set()

    def poke(self) -> None:
        """Rewrite the replica's own key now (draining marked, circuits changed), not at the heartbeat."""
        self._replica_dirty = True
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.fleet.heartbeat_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_beat - loop.time()))
            self._wake.clear()
            full = loop.time() >= next_beat
            if full:
                next_beat = loop.time() + self.fleet.heartbeat_s
            await self.sync(full=full)

    # -- writing --------------------------------------------------------------------------------
    def _fields(self, session: LiveCall) -> dict[str, str]:
        started = self._call_started.get(session.id)
        if started is None:
            started = self._call_started[session.id] = round(
                time.time() - (self.rt.clock.now() - session.started_at), 3)
        return {"id": session.id, "replica": self.replica_id, "replica_url": self.replica_url,
                "client": session.client, "provider": session.provider or "none",
                "state": session.state.value, "started_at": str(started)}

    def _replica_fields(self) -> dict[str, str]:
        return {"id": self.replica_id, "url": self.replica_url, "draining": "1" if self.rt.draining else "0",
                "started_at": str(self.started_at), "calls": str(len(self.rt.sessions)),
                "circuits": orjson.dumps([b.snapshot() for b in self.rt.breakers.all()]).decode()}

    async def sync(self, *, full: bool) -> bool:
        """Bring Redis in line with this process. `full` (the heartbeat): every call, every TTL refreshed;
        otherwise only the calls that had an event (start, switch, end) since the last write."""
        sessions, rewrite = self.rt.sessions, self._resync
        if full or rewrite:
            scope = list(sessions)
            gone = [sid for sid in self._written if sid not in sessions]
            ended = [sid for sid in self._call_started if sid not in sessions]
        else:
            scope = [sid for sid in self._dirty if sid in sessions]
            gone = [sid for sid in self._dirty if sid not in sessions and sid in self._written]
            ended = [sid for sid in self._dirty if sid not in sessions]
        self._dirty = set()
        # an ended call's start time is never needed again, written or not (a call that lived and ended
        # during a Redis outage was never written, so it is never `gone`: it would stay here for ever)
        for sid in ended:
            self._call_started.pop(sid, None)
        current = {sid: self._fields(sessions[sid]) for sid in scope}
        changed = {sid: f for sid, f in current.items() if rewrite or self._written.get(sid) != f}
        refresh = [sid for sid in current if sid not in changed] if full else []
        pipe = self.redis.pipeline(transaction=False)
        for sid, f in changed.items():
            pipe.hset(keys.call(sid), mapping=f)
            pipe.pexpire(keys.call(sid), self._ttl_ms)
        for sid in gone:
            pipe.delete(keys.call(sid))
        for sid in refresh:
            pipe.pexpire(keys.call(sid), self._ttl_ms)
        # a call start or end alone does not rewrite the replica hash: its `calls` count waits for the heartbeat
        write_replica = full or rewrite or self._replica_dirty
        if write_replica:
            replica = self._replica_fields()
            pipe.hset(keys.replica(self.replica_id), mapping={**replica, "heartbeat_at": str(round(time.time(), 3))})
            pipe.pexpire(keys.replica(self.replica_id), self._ttl_ms)
            pipe.sadd(keys.REPLICAS, self.replica_id)
        try:
            results = await pipe.execute()
        except REDIS_ERRORS as e:
            self._failed("heartbeat" if full else "write", e)
            return False
        missing = [sid for sid, ok in zip(refresh, results[len(changed) * 2 + len(gone):], strict=False) if not ok]
        self._written.update(current)
        for sid in gone:
            self._written.pop(sid, None)
        if write_replica:
            self._replica_dirty = False
        self._resync = False
        if missing:  # keys gone while we thought them there (Redis restarted empty): rewrite now
            log_event(log, logging.WARNING, "fleet.reregister", f"{len(missing)} call(s) missing from Redis",
                      replica=self.replica_id, calls=len(missing))
            self._resync = True
            self._wake.set()
        self._recovered()
        return True

    def _failed(self, operation: str, error: BaseException) -> None:
        metrics.voice_gateway_fleet_registry_errors.labels(operation).inc()
        metrics.voice_gateway_fleet_registry_up.set(0)
        self.failures += 1
        self._resync = True  # whatever Redis holds now is unknown: rewrite everything when back
        message = f"{type(error).__name__}: {error}"[:200]
        if self.up or self.last_error is None:
            log_event(log, logging.ERROR, "fleet.registry_unavailable",
                      f"Redis unavailable ({operation}); calls go on, registry writes are retried",
                      replica=self.replica_id, operation=operation, error=message)
        self.up, self.last_error = False, message

    def _recovered(self) -> None:
        if not self.up:
            log_event(log, logging.INFO, "fleet.registry_available",
                      f"registry written: replica {self.replica_id} with {len(self._written)} call(s)",
                      replica=self.replica_id, calls=len(self._written), failures=self.failures)
        self.up = True
        metrics.voice_gateway_fleet_registry_up.set(1)

    # -- reading --------------------------------------------------------------------------------
    async def calls(self) -> list[dict[str, Any]]:
        try:
            names = [k async for k in self.redis.scan_iter(match=keys.CALL_PATTERN, count=1000)]
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            rows = await pipe.execute() if names else []
        except REDIS_ERRORS as e:
            self._failed("read", e)
            raise RegistryUnavailable(str(e)) from None
        now = time.time()
        out = []
        for row in rows:
            if not row.get("id"):
                continue  # expired between SCAN and HGETALL
            started = float(row.get("started_at") or now)
            out.append({**row, "started_at": started, "duration_s": round(max(0.0, now - started), 1)})
        return out

    async def call(self, session_id: str) -> dict[str, str] | None:
        try:
            row = await self.redis.hgetall(keys.call(session_id))
        except REDIS_ERRORS as e:
            self._failed("read", e)
            raise RegistryUnavailable(str(e)) from None
        return row or None

    async def replicas(self) -> list[dict[str, Any]]:
        try:
            ids = sorted(await self.redis.smembers(keys.REPLICAS))
            pipe = self.redis.pipeline(transaction=False)
            for rid in ids:
                pipe.hgetall(keys.replica(rid))
            rows = await pipe.execute() if ids else []
            dead = [rid for rid, row in zip(ids, rows, strict=True) if not row]
            if dead:
                await self.redis.srem(keys.REPLICAS, *dead)
        except REDIS_ERRORS as e:
            self._failed("read", e)
            raise RegistryUnavailable(str(e)) from None
        out = []
        for row in rows:
            if row:
                out.append({"id": row["id"], "url": row.get("url"), "draining": row.get("draining") == "1",
                            "calls": int(row.get("calls") or 0), "heartbeat_at": float(row.get("heartbeat_at") or 0),
                            "circuits": orjson.loads(row.get("circuits") or "[]")})
        return out

    def status(self) -> dict[str, Any]:
        return {"mode": "fleet", "replica": self.replica_id, "url": self.replica_url,
                "registry": "ok" if self.up else "degraded", "draining": self.rt.draining,
                "registry_failures": self.failures, **({} if self.up else {"last_error": self.last_error})}
