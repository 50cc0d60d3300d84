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

from aiohttp import web

from gateway import admin
from gateway.admin import guard
from gateway.app_state import json_response, state
from gateway.fleet.controls import LIVE_CALLS, audit
from gateway.fleet.node import FORWARDED_HEADER, FleetNode, OwnerSilent
from gateway.fleet.registry import RegistryUnavailable

log = logging.getLogger("gateway.fleet.admin")


def _fleet(request: web.Request) -> FleetNode | None:
    return state(request).fleet


def _fleet_wide(request: web.Request) -> FleetNode | None:
    """The fleet, unless the caller asked for this replica only (`?scope=local`) or is a replica."""
    if request.query.get("scope") == "local" or FORWARDED_HEADER in request.headers:
        return None
    return _fleet(request)


def _actor(request: web.Request) -> dict[str, Any]:
    return {"remote": request.remote,
            **({"forwarded_by": request.headers[FORWARDED_HEADER]} if FORWARDED_HEADER in request.headers else {})}


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _registry_down(message: str) -> web.Response:
    return json_response({"error": "registry_unavailable", "message": message}, status=503)


# -- fleet views -----------------------------------------------------------------------------------
async def sessions_view(request: web.Request) -> dict[str, Any]:
    rt, fleet = state(request).runtime, _fleet_wide(request)
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


async def circuits_view(request: web.Request) -> dict[str, Any]:
    rt, fleet = state(request).runtime, _fleet_wide(request)
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


async def forward_to_owner(request: web.Request, command: str) -> web.Response:
    """A command for a call this replica does not hold: ask the registry who does, forward.
    `command` "detail" is the GET of the call itself; "switch"/"end" are POSTs."""
    sid = request.match_info["sid"]
    fleet = _fleet(request)
    not_found = json_response({"error": "not_found", "message": "no such session"}, status=404)
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
        return json_response({"error": "owner_timeout", "replica": owner.get("replica"),
                             "message": f"replica {owner.get('replica')} holding the call did not answer "
                                        f"within {fleet.settings.fleet.forward_timeout_s:g}s"}, status=504)
    if isinstance(answer, dict):
        answer.setdefault("replica", owner.get("replica"))
    return json_response(answer, status=status)


async def list_sessions(request: web.Request) -> web.Response:
    if _fleet(request) is None:  # one process: exactly the single-process answer
        return await admin.list_sessions(request)
    if (denied := guard(request)) is not None:
        return denied
    return json_response(await sessions_view(request))


async def list_circuits(request: web.Request) -> web.Response:
    if _fleet(request) is None:
        return await admin.list_circuits(request)
    if (denied := guard(request)) is not None:
        return denied
    return json_response(await circuits_view(request))


def _held_here(request: web.Request) -> bool:
    """This replica has the call, live or among its recently ended ones: gateway/admin.py answers."""
    rt, sid = state(request).runtime, request.match_info["sid"]
    return sid in rt.sessions or rt.ended_session(sid) is not None


async def session_detail(request: web.Request) -> web.Response:
    if _fleet(request) is None or _held_here(request):
        return await admin.session_detail(request)
    if (denied := guard(request)) is not None:
        return denied
    return await forward_to_owner(request, "detail")


async def switch_session(request: web.Request) -> web.Response:
    if _fleet(request) is None or request.match_info["sid"] in state(request).runtime.sessions:
        return await admin.switch_session(request)
    if (denied := guard(request)) is not None:
        return denied
    return await forward_to_owner(request, "switch")


async def end_session(request: web.Request) -> web.Response:
    """Hang up a call: gateway/admin.py's hang-up when this replica holds it, else on its owner."""
    if _fleet(request) is None or request.match_info["sid"] in state(request).runtime.sessions:
        return await admin.end_session(request)
    if (denied := guard(request)) is not None:
        return denied
    return await forward_to_owner(request, "end")


# -- operator actions ----------------------------------------------------------------------------
async def list_providers(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    return json_response({"providers": state(request).controls.provider_status()})


async def patch_provider(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    rt, controls, fleet = state(request).runtime, state(request).controls, _fleet_wide(request)
    name = request.match_info["name"]
    if name not in rt.settings.providers:
        return json_response({"error": "not_found", "message": "no such provider"}, status=404)
    body = await _body(request) or {}
    status, live_calls = body.get("status"), body.get("live_calls", "switch")
    if status not in ("disabled", "enabled") or live_calls not in LIVE_CALLS:
        return json_response({"error": "bad_message", "message": 'body: {"status": "disabled"|"enabled", '
                                                                '"live_calls": "switch"|"stay"}'}, status=400)
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
    return json_response({**answer, "providers": controls.provider_status()})


async def reset_all_circuits(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    controls, fleet = state(request).controls, _fleet_wide(request)
    circuits = controls.reset_all_breakers()
    audit("circuits_reset_all", "every breaker reset by operator", **_actor(request))
    answer: dict[str, Any] = {"ok": True, "circuits": circuits}
    if fleet is not None:
        try:
            answer["replicas_notified"] = await fleet.bus.reset_all()
        except RegistryUnavailable:
            return _registry_down("breakers reset on this replica only: Redis is unreachable, retry")
    return json_response(answer)


routes = [
    web.get("/admin/sessions", list_sessions),
    web.get("/admin/sessions/{sid}", session_detail),
    web.post("/admin/sessions/{sid}/switch", switch_session),
    web.post("/admin/sessions/{sid}/end", end_session),
    web.get("/admin/circuits", list_circuits),
    web.get("/admin/providers", list_providers),
    web.patch("/admin/providers/{name}", patch_provider),
    web.post("/admin/circuits/reset", reset_all_circuits),
]
