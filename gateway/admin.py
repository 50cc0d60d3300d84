"""Operator API: sessions (list with the recently ended, detail, switch, end), circuits (list, reset) and
costs (report, reset-mode). Bearer VG_ADMIN_TOKEN."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.audit import audit, bearer_id, remote_addr
from gateway.auth import check_origin
from gateway.errors import Unauthorized
from providers.registry import PROVIDER_NAMES as PROVIDERS


def _guard(request: Request) -> JSONResponse | None:
    try:
        # A page on another origin must not steer calls (a text/plain POST needs no CORS preflight).
        check_origin(request.headers.get("origin"), frozenset(request.app.state.settings.allowed_origins),
                     host=request.headers.get("host"), public_bind=True)
        request.app.state.admin_auth.check(request.headers.get("authorization"))
    except Unauthorized as e:
        status = getattr(e, "status", 401)
        audit("admin.access", "denied", remote=remote_addr(request.scope),
              actor=bearer_id(request.headers.get("authorization")), level=logging.WARNING, status=status,
              reason=getattr(e, "reason", "unauthorized"), method=request.method, path=request.url.path[:200])
        return JSONResponse({"error": e.code, "message": e.message}, status_code=status,
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
    return None


async def list_sessions(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    rt = request.app.state.runtime
    ended = [{k: v for k, v in s.items() if k not in ("recent_events", "transcript")} for s in rt.recently_ended]
    return JSONResponse({"sessions": [s.snapshot() for s in list(rt.sessions.values())], "recently_ended": ended})


async def session_detail(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    rt = request.app.state.runtime
    s = rt.sessions.get(request.path_params["sid"])
    if s is None:  # an ended call stays readable while it is among the recently ended
        ended = rt.ended_session(request.path_params["sid"])
        if ended is None:
            return JSONResponse({"error": "not_found", "message": "no such session"}, status_code=404)
        return JSONResponse(ended)
    return JSONResponse(s.snapshot(detail=True))


async def end_session(request: Request) -> JSONResponse:
    """Operator hang-up: the call ends with reason `operator_hangup` (the client gets session.ended)
    and its connection is closed."""
    if (denied := _guard(request)) is not None:
        return denied
    s = request.app.state.runtime.sessions.get(request.path_params["sid"])
    if s is None:
        return JSONResponse({"error": "not_found", "message": "no such session"}, status_code=404)
    await s.end("operator_hangup")
    await s.sink.hang_up()
    return JSONResponse({"ok": True, "session": request.app.state.runtime.ended_session(s.id)})


async def switch_session(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    s = request.app.state.runtime.sessions.get(request.path_params["sid"])
    if s is None:
        return JSONResponse({"error": "not_found", "message": "no such session"}, status_code=404)
    try:
        body = await request.json()
    except ValueError:
        body = None
    target = body.get("provider") if isinstance(body, dict) else None
    if target not in PROVIDERS:
        return JSONResponse({"error": "bad_message", "message": f"provider must be one of {', '.join(PROVIDERS)}"},
                            status_code=400)
    ok = await s.switch(target, "operator")
    audit("session.switch", "ok" if ok else "failed", remote=remote_addr(request.scope),
          actor=bearer_id(request.headers.get("authorization")), session_id=s.id, target=target)
    if not ok:
        # reason: call_ended, circuit_open (the target's breaker), or the class of the target's failure
        return JSONResponse({"error": "provider_unavailable", "message": f"could not open {target}",
                             "reason": s.failover.last_refusal, "session": s.snapshot()}, status_code=409)
    return JSONResponse({"ok": True, "session": s.snapshot()})


async def list_circuits(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    rt = request.app.state.runtime
    chains = getattr(request.app.state, "chains", None)  # one-shot chain breakers (gateway/chains)
    return JSONResponse({"circuits": [b.snapshot() for b in rt.breakers.all()]
                         + (chains.circuits() if chains is not None else [])})


async def reset_circuit(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    provider = request.path_params["provider"]
    chains = getattr(request.app.state, "chains", None)
    if provider not in PROVIDERS and chains is not None and (chain_breaker := chains.breaker(provider)):
        chain_breaker.reset()  # a chain breaker, addressed by its name (e.g. deepgram_transcription)
        return JSONResponse({"ok": True, "circuit": chain_breaker.snapshot()})
    if provider not in PROVIDERS:
        return JSONResponse({"error": "not_found", "message": "no such provider"}, status_code=404)
    b = request.app.state.runtime.breakers.get(provider)
    before = b.state.name
    b.reset()
    audit("circuit.reset", "ok", remote=remote_addr(request.scope),
          actor=bearer_id(request.headers.get("authorization")), provider=provider, from_state=before)
    return JSONResponse({"ok": True, "circuit": b.snapshot()})


async def costs(request: Request) -> JSONResponse:
    """The cost ledger (docs/costs.md): today and the last 7 days, the budget and its mode."""
    if (denied := _guard(request)) is not None:
        return denied
    return JSONResponse(request.app.state.runtime.costs.report())


async def reset_cost_mode(request: Request) -> JSONResponse:
    """End cost preservation mode for the rest of the UTC day."""
    if (denied := _guard(request)) is not None:
        return denied
    ledger = request.app.state.runtime.costs
    was_on = ledger.reset_mode()
    return JSONResponse({"ok": True, "was_cost_preservation": was_on, "budget": ledger.budget_dict()})


routes = [
    Route("/admin/sessions", list_sessions),
    Route("/admin/sessions/{sid}", session_detail),
    Route("/admin/sessions/{sid}/switch", switch_session, methods=["POST"]),
    Route("/admin/sessions/{sid}/end", end_session, methods=["POST"]),
    Route("/admin/circuits", list_circuits),
    Route("/admin/circuits/{provider}/reset", reset_circuit, methods=["POST"]),
    Route("/admin/costs", costs),
    Route("/admin/costs/reset-mode", reset_cost_mode, methods=["POST"]),
]
