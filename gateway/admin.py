"""Operator API: sessions (list, detail, switch, end) and circuits (list, reset). Bearer VG_ADMIN_TOKEN.

In fleet mode (gateway/fleet/) lists cover the whole fleet and a switch/end for a call held by
another replica is forwarded to it; provider disable/enable and reset-all live in gateway/fleet/admin_api.py.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.auth import check_origin
from gateway.errors import Unauthorized
from gateway.session_config import PROVIDERS


def _guard(request: Request) -> JSONResponse | None:
    try:
        # A page on another origin must not steer calls (a text/plain POST needs no CORS preflight).
        check_origin(request.headers.get("origin"), frozenset(request.app.state.settings.allowed_origins),
                     host=request.headers.get("host"), public_bind=True)
        request.app.state.admin_auth.check(request.headers.get("authorization"))
    except Unauthorized as e:
        status = getattr(e, "status", 401)
        return JSONResponse({"error": e.code, "message": e.message}, status_code=status,
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
    return None


async def list_sessions(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    from gateway.fleet.admin_api import sessions_view  # imports this module

    return JSONResponse(await sessions_view(request))


async def session_detail(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    s = request.app.state.runtime.sessions.get(request.path_params["sid"])
    if s is None:
        return JSONResponse({"error": "not_found", "message": "no such session"}, status_code=404)
    return JSONResponse(s.snapshot(detail=True))


async def switch_session(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    s = request.app.state.runtime.sessions.get(request.path_params["sid"])
    if s is None:
        from gateway.fleet.admin_api import forward_to_owner

        return await forward_to_owner(request, "switch")  # 404 when no replica holds it
    try:
        body = await request.json()
    except ValueError:
        body = None
    target = body.get("provider") if isinstance(body, dict) else None
    if target not in PROVIDERS:
        return JSONResponse({"error": "bad_message", "message": f"provider must be one of {', '.join(PROVIDERS)}"},
                            status_code=400)
    ok = await s.switch(target, "operator")
    if not ok:
        return JSONResponse({"error": "provider_unavailable", "message": f"could not open {target}",
                             "session": s.snapshot()}, status_code=409)
    return JSONResponse({"ok": True, "session": s.snapshot()})


async def list_circuits(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    from gateway.fleet.admin_api import circuits_view

    return JSONResponse(await circuits_view(request))


async def reset_circuit(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    provider = request.path_params["provider"]
    if provider not in PROVIDERS:
        return JSONResponse({"error": "not_found", "message": "no such provider"}, status_code=404)
    b = request.app.state.runtime.breakers.get(provider)
    b.reset()
    return JSONResponse({"ok": True, "circuit": b.snapshot()})


async def end_session_for_fleet(request: Request) -> JSONResponse:
    """End a call (single-process hang-up, or forwarded to the replica holding it). Kept apart from
    any console hang-up endpoint so the two can be merged into one."""
    if (denied := _guard(request)) is not None:
        return denied
    s = request.app.state.runtime.sessions.get(request.path_params["sid"])
    if s is None:
        from gateway.fleet.admin_api import forward_to_owner

        return await forward_to_owner(request, "end")
    await s.end("operator_ended")
    return JSONResponse({"ok": True, "session_id": s.id, "reason": "operator_ended"})


routes = [
    Route("/admin/sessions", list_sessions),
    Route("/admin/sessions/{sid}", session_detail),
    Route("/admin/sessions/{sid}/switch", switch_session, methods=["POST"]),
    Route("/admin/sessions/{sid}/end", end_session_for_fleet, methods=["POST"]),
    Route("/admin/circuits", list_circuits),
    Route("/admin/circuits/{provider}/reset", reset_circuit, methods=["POST"]),
]
