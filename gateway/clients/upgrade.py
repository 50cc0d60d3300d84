"""What every client endpoint checks before accepting a WebSocket: draining, Origin, token.

Refusal happens before `accept()`, so the client sees HTTP 403 (503 while draining) on the upgrade.
"""

from __future__ import annotations

import logging

from starlette.responses import Response
from starlette.websockets import WebSocket

from gateway import metrics
from gateway.audit import ANONYMOUS, audit, remote_addr, token_id
from gateway.auth import TokenClaims, check_origin, token_from_scope
from gateway.errors import Unauthorized
from gateway.logs import log_event

log = logging.getLogger("gateway.clients")


async def refuse(ws: WebSocket, status: int) -> None:
    try:
        await ws.send_denial_response(Response(status_code=status))
    except RuntimeError:  # the server lacks the denial extension: close before accept = 403
        await ws.close(code=Unauthorized.close_code)


async def admit(ws: WebSocket, *, client: str, browser: bool) -> tuple[TokenClaims, str | None] | None:
    """Checks the upgrade; returns (claims, subprotocol to echo) or None after refusing it."""
    state = ws.app.state
    remote = remote_addr(ws.scope)
    if state.runtime.draining:
        audit(f"{client}.upgrade", "refused", remote=remote, actor=ANONYMOUS, status=503, reason="draining")
        await refuse(ws, 503)
        return None
    token: str | None = None
    try:
        if browser:
            check_origin(ws.headers.get("origin"), frozenset(state.runtime.settings.allowed_origins),
                         host=ws.headers.get("host"), public_bind=state.client_auth.public_bind)
        token, subprotocol = token_from_scope(ws.headers, ws.scope.get("query_string", b""))
        claims = state.client_auth.verify(token)
    except Unauthorized as e:
        metrics.voice_gateway_client_errors.labels(client, e.code).inc()
        log_event(log, logging.WARNING, "client.refused", f"{client} upgrade refused: {e.message}",
                  client=client, reason=e.reason)
        audit(f"{client}.upgrade", "refused", remote=remote, actor=token_id(token), level=logging.WARNING,
              status=403, reason=e.reason)
        await refuse(ws, 403)
        return None
    return claims, subprotocol
