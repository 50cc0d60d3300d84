"""Operator endpoints that know about the fleet (docs/fleet.md); all need the admin bearer token.
Mounted before gateway/admin.py's routes, so these handle the paths both define; with no fleet they
hand the request to gateway/admin.py's own handlers, and for a call held here they call its switch.

- `GET /admin/sessions`, `GET /admin/circuits`: the whole fleet (each row with its `replica`);
  `?scope=local` for this replica only;
- `POST /admin/sessions/{id}/switch`, `POST /admin/sessions/{id}/end`: a call held by another replica
  is forwarded to it (its answer, 404 unknown call, 504 owner silent);
- `GET /admin/providers`, `PATCH /admin/providers/{name}` `{"status": "disabled"|"enabled",
  "live_calls": "switch"|"stay"}`: new calls skip a disabled provider at once; live calls on it are
  switched away at their next turn boundary (`switch`, the default) or stay (`stay`);
- `POST /admin/circuits/reset`: every breaker → CLOSED (and shared advisories cleared);

Both actions are audited and, in fleet mode, reach every replica through the control channel.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway import admin
from gateway.admin import _guard
from gateway.fleet.controls import LIVE_CALLS, audit
from gateway.fleet.node import FORWARDED_HEADER, FleetNode, OwnerSilent
from gateway.fleet.registry import RegistryUnavailable

log = logging.getLogger("gateway.fleet.admin")


def _fleet(request: Request) -> FleetNode | None:
    return getattr(request.app.state, "fleet", None)


def _fleet_wide(request: Request) -> FleetNode | None:
    """The fleet, unless the caller asked for this replica only (`?scope=local`) or is a replica."""
    if request.query_params.get("scope") == "local" or FORWARDED_HEADER in request.headers:
        return None
    return _fleet(request)


def _actor(request: Request) -> dict[str, Any]:
    return {"remote": request.client.host if request.client else None,
            **({"forwarded_by": request.headers[FORWARDED_HEADER]} if FORWARDED_HEADER in request.headers else {})}


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _registry_down(message: str) -> JSONResponse:
    return JSONResponse({"error": "registry_unavailable", "message": message}, status_code=503)


# -- fleet views -----------------------------------------------------------------------------------
async def sessions_view(request: Request) -> dict[str, Any]:
    rt, fleet = request.app.state.runtime, _fleet_wide(request)
    local = [s.snapshot() for s in list(rt.sessions.values())]
    if fleet is None:
        if (own := _fleet(request)) is not None:
            for row in local:
                row["replica"] = own.replica_id
        return {"sessions": local}
    for row in local:
        row["replica"] = fleet.replica_id
    try:
        calls, replicas = await fleet.registry.calls(), await fleet.registry.replicas()
    except RegistryUnavailable:
        return {"sessions": local, "fleet": fleet.status()}
    remote = [{**c, "remote": True} for c in calls if c.get("replica") != fleet.replica_id]
    for r in replicas:
        r.pop("circuits", None)
    return {"sessions": local + sorted(remote, key=lambda c: c["started_at"]), "replicas": replicas,
            "fleet": fleet.status()}


async def circuits_view(request: Request) -> dict[str, Any]:
    rt, fleet = request.app.state.runtime, _fleet_wide(request)
    local = [b.snapshot() for b in rt.breakers.all()]
    if fleet is None:
        if (own := _fleet(request)) is not None:
            local = [{**c, "replica": own.replica_id} for c in local]
        return {"circuits": local}
    local = [{**c, "replica": fleet.replica_id} for c in local]
    try:
        replicas = await fleet.registry.replicas()
    except RegistryUnavailable:
        return {"circuits": local, "fleet": fleet.status()}
    remote = [{**c, "replica": r["id"], "draining": r["draining"]}
              for r in replicas if r["id"] != fleet.replica_id for c in r["circuits"]]
    return {"circuits": local + remote, "fleet": fleet.status()}


async def forward_to_owner(request: Request, command: str) -> JSONResponse:
    """A command for a call this replica does not hold: ask the registry who does, forward.
    `command` "detail" is the GET of the call itself; "switch"/"end" are POSTs."""
    sid = request.path_params["sid"]
    fleet = _fleet(request)
    not_found = JSONResponse({"error": "not_found", "message": "no such session"}, status_code=404)
    if fleet is None or FORWARDED_HEADER in request.headers:
        return not_found
    try:
        owner = await fleet.registry.call(sid)
    except RegistryUnavailable:
        return _registry_down("the call registry (Redis) is unreachable; retry on the replica holding the call")
    if owner is None or owner.get("replica") == fleet.replica_id:
        return not_found
    try:
        if command == "detail":
            status, answer = await fleet.forward(owner, command, f"/admin/sessions/{sid}", None, method="GET")
        else:
            status, answer = await fleet.forward(owner, command, f"/admin/sessions/{sid}/{command}",
                                                 await _body(request) or {})
    except OwnerSilent:
        return JSONResponse({"error": "owner_timeout", "replica": owner.get("replica"),
                             "message": f"replica {owner.get('replica')} holding the call did not answer "
                                        f"within {fleet.settings.fleet.forward_timeout_s:g}s"}, status_code=504)
    if isinstance(answer, dict):
        answer.setdefault("replica", owner.get("replica"))
    return JSONResponse(answer, status_code=status)


async def list_sessions(request: Request) -> JSONResponse:
    if _fleet(request) is None:  # one process: exactly the single-process answer
        return await admin.list_sessions(request)
    if (denied := _guard(request)) is not None:
        return denied
    return JSONResponse(await sessions_view(request))


async def list_circuits(request: Request) -> JSONResponse:
    if _fleet(request) is None:
        return await admin.list_circuits(request)
    if (denied := _guard(request)) is not None:
        return denied
    return JSONResponse(await circuits_view(request))


def _held_here(request: Request) -> bool:
    """This replica has the call, live or among its recently ended ones: gateway/admin.py answers."""
    rt, sid = request.app.state.runtime, request.path_params["sid"]
    return sid in rt.sessions or rt.ended_session(sid) is not None


async def session_detail(request: Request) -> JSONResponse:
    if _fleet(request) is None or _held_here(request):
        return await admin.session_detail(request)
    if (denied := _guard(request)) is not None:
        return denied
    return await forward_to_owner(request, "detail")


async def switch_session(request: Request) -> JSONResponse:
    if _fleet(request) is None or request.path_params["sid"] in request.app.state.runtime.sessions:
        return await admin.switch_session(request)
    if (denied := _guard(request)) is not None:
        return denied
    return await forward_to_owner(request, "switch")


async def end_session(request: Request) -> JSONResponse:
    """Hang up a call: gateway/admin.py's hang-up when this replica holds it, else on its owner."""
    if _fleet(request) is None or request.path_params["sid"] in request.app.state.runtime.sessions:
        return await admin.end_session(request)
    if (denied := _guard(request)) is not None:
        return denied
    return await forward_to_owner(request, "end")


# -- operator actions ----------------------------------------------------------------------------
async def list_providers(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    return JSONResponse({"providers": request.app.state.controls.provider_status()})


async def patch_provider(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    rt, controls, fleet = request.app.state.runtime, request.app.state.controls, _fleet_wide(request)
    name = request.path_params["name"]
    if name not in rt.settings.providers:
        return JSONResponse({"error": "not_found", "message": "no such provider"}, status_code=404)
    body = await _body(request) or {}
    status, live_calls = body.get("status"), body.get("live_calls", "switch")
    if status not in ("disabled", "enabled") or live_calls not in LIVE_CALLS:
        return JSONResponse({"error": "bad_message", "message": 'body: {"status": "disabled"|"enabled", '
                                                                '"live_calls": "switch"|"stay"}'}, status_code=400)
    source = fleet.replica_id if fleet else "local"
    moving = controls.set_provider_status(name, status, live_calls=live_calls, source=source)
    audit(f"provider_{status[:-1]}", f"provider {name} {status} by operator", provider=name,
          live_calls=live_calls, live_calls_moving=moving, **_actor(request))
    answer: dict[str, Any] = {"ok": True, "provider": name, "status": status, "live_calls": live_calls,
                              "switching_calls": moving}
    if fleet is not None:
        try:
            answer["replicas_notified"] = await fleet.bus.set_provider_status(name, status, live_calls)
        except RegistryUnavailable:
            return _registry_down(f"{name} {status} on this replica only: Redis is unreachable, retry")
    return JSONResponse({**answer, "providers": controls.provider_status()})


async def reset_all_circuits(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    controls, fleet = request.app.state.controls, _fleet_wide(request)
    circuits = controls.reset_all_breakers()
    audit("circuits_reset_all", "every breaker reset by operator", **_actor(request))
    answer: dict[str, Any] = {"ok": True, "circuits": circuits}
    if fleet is not None:
        try:
            answer["replicas_notified"] = await fleet.bus.reset_all()
        except RegistryUnavailable:
            return _registry_down("breakers reset on this replica only: Redis is unreachable, retry")
    return JSONResponse(answer)


routes = [
    Route("/admin/sessions", list_sessions),
    Route("/admin/sessions/{sid}", session_detail),
    Route("/admin/sessions/{sid}/switch", switch_session, methods=["POST"]),
    Route("/admin/sessions/{sid}/end", end_session, methods=["POST"]),
    Route("/admin/circuits", list_circuits),
    Route("/admin/providers", list_providers),
    Route("/admin/providers/{name}", patch_provider, methods=["PATCH"]),
    Route("/admin/circuits/reset", reset_all_circuits, methods=["POST"]),
]
