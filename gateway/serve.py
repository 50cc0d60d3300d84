"""Start the gateway under uvicorn (uvloop, httptools, sans-I/O websockets), with a graceful drain.

On SIGTERM/SIGINT uvicorn alone would cut every live call with 1012 at once. Instead: `/readyz`
turns 503 and new upgrades are refused with 503 (runtime.draining), live calls go on for up to
`VG_DRAIN_TIMEOUT_S`, then each ends with `session.ended` (reason `server_draining`) before the
server stops. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from gateway.logs import log_event

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime = getattr(getattr(self.config.app, "state", None), "runtime", None)
        if self._drain is not None or runtime is None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        runtime.draining = True
        fleet = getattr(runtime, "fleet", None) or getattr(getattr(self.config.app, "state", None), "fleet", None)
        if fleet is not None:  # mark this replica draining in the fleet registry now
            fleet.registry.poke()
        self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit(runtime))

    async def _drain_then_exit(self, runtime: Runtime) -> None:
        live = len(runtime.sessions)
        log_event(log, logging.WARNING, "gateway.draining",
                  f"draining: {live} live call(s), up to {self.drain_timeout_s:g}s", sessions=live)
        clock = runtime.clock
        deadline = clock.now() + self.drain_timeout_s
        while runtime.sessions and clock.now() < deadline:
            await clock.sleep(0.1)
        for session in list(runtime.sessions.values()):
            await session.end("server_draining")
        self.should_exit = True


def serve(*, host: str | None = None, port: int | None = None, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> int:
    """Run until stopped. `host`/`port` given on the command line win over VG_HOST/VG_PORT."""

    from gateway.app import create_app
    from gateway.config import load_settings
    from gateway.errors import ConfigError
    from gateway.logs import configure_logging

    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"voice-gateway: invalid configuration: {e.message}\n"
              "  (`voice-gateway check-config` lists every problem)", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    configure_logging(settings.log_level, fmt=settings.log_format)
    from gateway.config import production_simulated

    if simulated := production_simulated(settings):
        print(f"voice-gateway: VG_ENV=production but {', '.join(simulated)} has no API key and would be "
              "simulated by an embedded fake: /readyz will answer 503 until the key is configured",
              file=sys.stderr)
    config = uvicorn.Config(
        create_app(settings, handle_sighup=True), host=settings.host, port=settings.port, loop="uvloop", http="httptools",
        ws="websockets-sansio", ws_max_size=settings.max_message_bytes, ws_per_message_deflate=False,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, log_config=None, access_log=False, lifespan="on",
    )
    DrainingServer(config, drain_timeout_s=settings.drain_timeout_s).run()
    return 0
