"""The ASGI app (starlette): client WebSockets, health, metrics, operator API and pages.

`create_app(settings, runtime=None)`: the lifespan builds the Runtime (providers resolved, embedded
fakes started for simulated providers) unless a test passes one in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from gateway import admin, metrics
from gateway.auth import AdminAuth, ClientAuth
from gateway.chains import http_api as chains_api
from gateway.chains.service import ChainService
from gateway.clients.native import native_endpoint
from gateway.clients.telephony import telephony_endpoint
from gateway.config import Settings, load_settings
from gateway.fleet import admin_api as fleet_admin
from gateway.fleet.controls import OperatorControls
from gateway.logs import log_event
from gateway.runtime import Runtime

log = logging.getLogger("gateway.app")
STATIC = Path(__file__).parent / "static"


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    body = rt.readiness()
    body["chains"] = request.app.state.chains.readiness()
    return JSONResponse(body, status_code=200 if rt.ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    request.app.state.runtime.refresh_gauges()
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def demo_page(_: Request) -> Response:
    return FileResponse(STATIC / "index.html")


async def console_page(_: Request) -> Response:
    return FileResponse(STATIC / "console.html")


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file():
        return JSONResponse({"error": "not_found"}, status_code=404)
    return FileResponse(path)


def _on_sighup(rt: Runtime) -> None:
    """SIGHUP: re-read the *_API_KEY_FILE keys now (key rotation, deploy/RUNBOOK.md)."""
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):  # not the main thread / no signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, rt.reload_keys, "sighup")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               handle_sighup: bool = False) -> Starlette:
    settings = settings or (runtime.settings if runtime else load_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        app.state.runtime = rt
        app.state.chains = ChainService(settings, clock=rt.clock)
        if not rt.endpoints:
            await rt.start()
        app.state.controls = OperatorControls(rt)
        app.state.fleet = None
        if settings.fleet.enabled:  # VG_REDIS_URL: fleet mode (docs/fleet.md)
            from gateway.fleet.node import FleetNode

            app.state.fleet = FleetNode(rt, settings, app.state.controls)
            await app.state.fleet.start()
        if handle_sighup:
            _on_sighup(rt)
        modes = {n: ("simulated" if e.simulated else "live") for n, e in rt.endpoints.items()}
        log_event(log, logging.INFO, "gateway.ready", "gateway ready: " + ", ".join(
            f"{n}={m}" for n, m in modes.items()), providers=modes)
        try:
            yield
        finally:
            await app.state.chains.stop()
            if runtime is None:
                await rt.stop()
            if app.state.fleet is not None:
                await app.state.fleet.stop()
            await app.state.controls.stop()

    app = Starlette(routes=[
        Route("/", demo_page),
        Route("/console", console_page),
        Route("/static/{name}", static_file),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        WebSocketRoute("/v1/voice", native_endpoint),
        WebSocketRoute("/v1/twilio", telephony_endpoint("twilio")),
        WebSocketRoute("/v1/telnyx", telephony_endpoint("telnyx")),
        WebSocketRoute("/v1/vonage", telephony_endpoint("vonage")),
        *fleet_admin.routes,
        *admin.routes,
        *chains_api.routes,
    ], lifespan=lifespan)
    app.state.settings = settings
    app.state.client_auth = ClientAuth(frozenset(settings.client_tokens), settings.client_token_secret,
                                       bind_host=settings.host)
    app.state.admin_auth = AdminAuth(settings.admin_token, bind_host=settings.host)
    return app
