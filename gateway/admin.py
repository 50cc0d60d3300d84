"""Operator API: sessions (list with the recently ended, detail, switch, end), circuits (list, reset) and
costs (report, reset-mode). Bearer VG_ADMIN_TOKEN."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.app_state import json_response, state
from gateway.audit import audit, bearer_id, remote_addr
from gateway.auth import check_origin
from gateway.errors import Unauthorized
from providers.registry import PROVIDER_NAMES as PROVIDERS


def guard(request: web.Request) -> web.Response | None:
    try:
        # A page on another origin must not steer calls (a text/plain POST needs no CORS preflight).
        check_origin(request.headers.get("origin"), frozenset(state(request).settings.allowed_origins),
                     host=request.headers.get("host"), public_bind=True)
        state(request).admin_auth.check(request.headers.get("authorization"))
    except Unauthorized as e:
        status = getattr(e, "status", 401)
        audit("admin.access", "denied", remote=remote_addr(request),
              actor=bearer_id(request.headers.get("authorization")), level=logging.WARNING, status=status,
              reason=getattr(e, "reason", "unauthorized"), method=request.method, path=request.path[:200])
        return json_response({"error": e.code, "message": e.message}, status=status,
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
    return None


async def list_sessions(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    rt = state(request).runtime
    ended = [{k: v for k, v in s.items() if k not in ("recent_events", "transcript")} for s in rt.recently_ended]
    return json_response({"sessions": [s.snapshot() for s in list(rt.sessions.values())], "recently_ended": ended})


async def session_detail(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    rt = state(request).runtime
    s = rt.sessions.get(request.match_info["sid"])
    if s is None:  # an ended call stays readable while it is among the recently ended
        ended = rt.ended_session(request.match_info["sid"])
        if ended is None:
            return json_response({"error": "not_found", "message": "no such session"}, status=404)
        return json_response(ended)
    return json_response(s.snapshot(detail=True))


async def end_session(request: web.Request) -> web.Response:
    """Operator hang-up: the call ends with reason `operator_hangup` (the client gets session.ended)
    and its connection is closed."""
    if (denied := guard(request)) is not None:
        return denied
    s = state(request).runtime.sessions.get(request.match_info["sid"])
    if s is None:
        return json_response({"error": "not_found", "message": "no such session"}, status=404)
    await s.end("operator_hangup")
    await s.sink.hang_up()
    return json_response({"ok": True, "session": state(request).runtime.ended_session(s.id)})


async def switch_session(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    s = state(request).runtime.sessions.get(request.match_info["sid"])
    if s is None:
        return json_response({"error": "not_found", "message": "no such session"}, status=404)
    try:
        body = await request.json()
    except ValueError:
        body = None
    target = body.get("provider") if isinstance(body, dict) else None
    if target not in PROVIDERS:
        return json_response({"error": "bad_message", "message": f"provider must be one of {', '.join(PROVIDERS)}"},
                            status=400)
    ok = await s.switch(target, "operator")
    audit("session.switch", "ok" if ok else "failed", remote=remote_addr(request),
          actor=bearer_id(request.headers.get("authorization")), session_id=s.id, target=target)
    if not ok:
        # reason: call_ended, circuit_open (the target's breaker), or the class of the target's failure
        return json_response({"error": "provider_unavailable", "message": f"could not open {target}",
                              "reason": s.switch_refusal, "session": s.snapshot()}, status=409)
    return json_response({"ok": True, "session": s.snapshot()})


async def list_circuits(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    rt = state(request).runtime
    chains = state(request).chains  # one-shot chain breakers (gateway/chains)
    return json_response({"circuits": [b.snapshot() for b in rt.breakers.all()]
                         + (chains.circuits() if chains is not None else [])})


async def reset_circuit(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    provider = request.match_info["provider"]
    chains = state(request).chains
    if provider not in PROVIDERS and chains is not None and (chain_breaker := chains.breaker(provider)):
        chain_breaker.reset()  # a chain breaker, addressed by its name (e.g. deepgram_transcription)
        return json_response({"ok": True, "circuit": chain_breaker.snapshot()})
    if provider not in PROVIDERS:
        return json_response({"error": "not_found", "message": "no such provider"}, status=404)
    b = state(request).runtime.breakers.get(provider)
    before = b.state.name
    b.reset()
    audit("circuit.reset", "ok", remote=remote_addr(request),
          actor=bearer_id(request.headers.get("authorization")), provider=provider, from_state=before)
    return json_response({"ok": True, "circuit": b.snapshot()})


async def costs(request: web.Request) -> web.Response:
    """The cost ledger (docs/costs.md): today and the last 7 days, the budget and its mode."""
    if (denied := guard(request)) is not None:
        return denied
    return json_response(state(request).runtime.costs.report())


async def reset_cost_mode(request: web.Request) -> web.Response:
    """End cost preservation mode for the rest of the UTC day."""
    if (denied := guard(request)) is not None:
        return denied
    ledger = state(request).runtime.costs
    was_on = ledger.reset_mode()
    return json_response({"ok": True, "was_cost_preservation": was_on, "budget": ledger.budget_dict()})


routes = [
    web.get("/admin/sessions", list_sessions),
    web.get("/admin/sessions/{sid}", session_detail),
    web.post("/admin/sessions/{sid}/switch", switch_session),
    web.post("/admin/sessions/{sid}/end", end_session),
    web.get("/admin/circuits", list_circuits),
    web.post("/admin/circuits/{provider}/reset", reset_circuit),
    web.get("/admin/costs", costs),
    web.post("/admin/costs/reset-mode", reset_cost_mode),
]
