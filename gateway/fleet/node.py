"""This replica's membership of the fleet: the registry, the control channel and the forwarder of
admin commands to the replica that holds a call (HTTP to its internal URL with the admin token).

Forwarding is HTTP rather than a per-replica channel so the caller gets the owner's own answer
(status and body) and a dead owner shows as a timeout (504), with nothing to acknowledge by hand.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

import aiohttp

from gateway import metrics
from gateway.fleet.bus import ControlBus
from gateway.fleet.controls import OperatorControls
from gateway.fleet.registry import FleetRegistry, connect
from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.fleet")
FORWARDED_HEADER = "x-vg-forwarded-by"  # a forwarded command is never forwarded again


class OwnerSilent(Exception):
    """The replica holding the call did not answer within the forward timeout."""


def default_replica_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


class FleetNode:
    def __init__(self, runtime: Runtime, settings: Settings, controls: OperatorControls) -> None:
        fleet = settings.fleet
        assert fleet.redis_url is not None
        self.settings = settings
        self.replica_id = fleet.replica_id
        self.replica_url = fleet.replica_url or default_replica_url(settings)
        self.redis = connect(fleet.redis_url)
        # pub/sub blocks on reads, so it gets its own connection pool without a read timeout
        self.bus_redis = connect(fleet.redis_url, timeout_s=1.0)
        self.registry = FleetRegistry(runtime, fleet, replica_url=self.replica_url, redis=self.redis)
        self.bus = ControlBus(runtime, controls, replica_id=self.replica_id, redis=self.bus_redis,
                              advisories=fleet.shared_breaker_advisories)
        self.http: aiohttp.ClientSession | None = None
        runtime.fleet_status = self.status

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        await self.registry.start()
        await self.bus.start()
        log_event(log, logging.INFO, "fleet.joined",
                  f"fleet mode: replica {self.replica_id} at {self.replica_url} "
                  f"(registry {'ok' if self.registry.up else 'degraded'})",
                  replica=self.replica_id, url=self.replica_url,
                  shared_breaker_advisories=self.settings.fleet.shared_breaker_advisories)

    async def stop(self) -> None:
        await self.bus.stop()
        await self.registry.stop()
        if self.http is not None:
            await self.http.close()
        await self.redis.aclose()
        await self.bus_redis.aclose()

    def status(self) -> dict[str, Any]:
        return {**self.registry.status(), "control_channel": "ok" if self.bus.subscribed.is_set() else "degraded"}

    async def forward(self, owner: dict[str, str], command: str, path: str, body: dict[str, Any] | None,
                      *, method: str = "POST") -> tuple[int, Any]:
        """`method path` on the owner replica; returns its (status, JSON body) or raises OwnerSilent."""
        assert self.http is not None
        headers = {FORWARDED_HEADER: self.replica_id}
        if self.settings.admin_token:
            headers["authorization"] = f"Bearer {self.settings.admin_token}"
        timeout = aiohttp.ClientTimeout(total=self.settings.fleet.forward_timeout_s)
        try:
            async with self.http.request(method, owner["replica_url"] + path, json=body, headers=headers,
                                         timeout=timeout) as r:
                status, answer = r.status, await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            metrics.voice_gateway_fleet_forwarded_commands.labels(command, "timeout").inc()
            log_event(log, logging.WARNING, "fleet.owner_silent",
                      f"replica {owner.get('replica')} did not answer {command}: {type(e).__name__}",
                      replica=owner.get("replica"), command=command)
            raise OwnerSilent(owner.get("replica", "?")) from None
        metrics.voice_gateway_fleet_forwarded_commands.labels(command, str(status)).inc()
        return status, answer
