"""The aiohttp application: client WebSockets, health, metrics, operator API and pages.

`create_app(settings, runtime=None)`: the app's startup (a cleanup context) builds the Runtime
(providers resolved, embedded fakes started for simulated providers) unless a test passes one in,
then the chain service, operator controls and, in fleet mode, the fleet node; its cleanup stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import WSCloseCode, web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import admin, metrics
from gateway.app_state import STATE, AppState, json_response, state
from gateway.auth import AdminAuth, ClientAuth
from gateway.chains import chat_api
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


async def healthz(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    st = state(request)
    body = st.runtime.readiness()
    body["chains"] = st.chains.readiness()
    return json_response(body, status=200 if st.runtime.ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    state(request).runtime.refresh_gauges()
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def demo_page(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def console_page(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "console.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file():
        return json_response({"error": "not_found"}, status=404)
    return web.FileResponse(path)


def _on_sighup(rt: Runtime) -> None:
    """SIGHUP: re-read the *_API_KEY_FILE keys now (key rotation, deploy/RUNBOOK.md)."""
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):  # not the main thread / no signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, rt.reload_keys, "sighup")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               handle_sighup: bool = False) -> web.Application:
    settings = settings or (runtime.settings if runtime else load_settings())

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        st = app[STATE]
        rt = runtime or Runtime(settings)
        st.runtime = rt
        st.chains = ChainService(settings, clock=rt.clock, ledger=rt.costs, provider_enabled=rt.provider_enabled)
        if not rt.endpoints:
            await rt.start()
        st.controls = OperatorControls(rt)
        st.fleet = None
        if settings.fleet.enabled:  # VG_REDIS_URL: fleet mode (docs/fleet.md)
            from gateway.fleet.node import FleetNode

            st.fleet = FleetNode(rt, settings, st.controls)
            await st.fleet.start()
        if handle_sighup:
            _on_sighup(rt)
        modes = {n: ("simulated" if e.simulated else "live") for n, e in rt.endpoints.items()}
        log_event(log, logging.INFO, "gateway.ready", "gateway ready: " + ", ".join(
            f"{n}={m}" for n, m in modes.items()), providers=modes)
        try:
            yield
        finally:
            await st.chains.stop()
            if runtime is None:
                await rt.stop()
            if st.fleet is not None:
                await st.fleet.stop()
            await st.controls.stop()

    async def close_sockets(app: web.Application) -> None:
        """Server stopping with calls still open (after the drain, or a second signal): 1012."""
        for ws in list(app[STATE].sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"server shutting down")

    app = web.Application()
    app[STATE] = AppState(
        settings=settings,
        client_auth=ClientAuth(frozenset(settings.client_tokens), settings.client_token_secret,
                               bind_host=settings.host),
        admin_auth=AdminAuth(settings.admin_token, bind_host=settings.host))
    app.cleanup_ctx.append(lifespan)
    app.on_shutdown.append(close_sockets)
    app.router.add_get("/", demo_page)
    app.router.add_get("/console", console_page)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/v1/voice", native_endpoint)
    for vendor in ("twilio", "telnyx", "vonage"):
        app.router.add_get(f"/v1/{vendor}", telephony_endpoint(vendor))
    # the fleet-aware handlers first: they answer the paths both define (gateway/fleet/admin_api.py)
    app.router.add_routes(fleet_admin.routes)
    taken = {(r.method, r.path) for r in fleet_admin.routes}
    app.router.add_routes([r for r in admin.routes if (r.method, r.path) not in taken])
    app.router.add_routes(chains_api.routes)
    app.router.add_routes(chat_api.routes)
    return app


def route_paths(app: web.Application) -> set[str]:
    """Every path the app serves (`/admin/sessions/{sid}` as written): what deployment checks test."""
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}
