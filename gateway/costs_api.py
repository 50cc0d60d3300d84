"""Operator API of the cost ledger (docs/costs.md): `GET /admin/costs` and
`POST /admin/costs/reset-mode`, behind the admin token like the rest of /admin."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.admin import _guard


async def costs(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    return JSONResponse(request.app.state.runtime.costs.report())


async def reset_mode(request: Request) -> JSONResponse:
    if (denied := _guard(request)) is not None:
        return denied
    ledger = request.app.state.runtime.costs
    was_on = ledger.reset_mode()
    return JSONResponse({"ok": True, "was_cost_preservation": was_on, "budget": ledger.budget_dict()})


routes = [
    Route("/admin/costs", costs),
    Route("/admin/costs/reset-mode", reset_mode, methods=["POST"]),
]
