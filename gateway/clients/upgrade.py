"""What every client endpoint checks before accepting a WebSocket (draining, Origin, token), and the
one place a client socket is opened.

Refusal happens before the upgrade completes, so the client sees HTTP 403 (503 while draining).
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway import metrics
from gateway.app_state import AppState, state
from gateway.audit import ANONYMOUS, audit, remote_addr, token_id
from gateway.auth import TokenClaims, check_origin, token_from_scope
from gateway.errors import Unauthorized
from gateway.logs import log_event
from gateway.ws_direct import TappedWebSocketResponse

log = logging.getLogger("gateway.clients")
# aiohttp warns with the offered subprotocols when none is ours; a `token.<t>` offer is a credential
logging.getLogger("aiohttp.websocket").setLevel(logging.ERROR)


def refuse(status: int) -> web.Response:
    """The answer to an upgrade we do not accept: a plain HTTP status, empty body."""
    return web.Response(status=status)


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("upgrade", "").lower().strip() == "websocket"


def admit(request: web.Request, *, client: str, browser: bool) -> tuple[TokenClaims, str | None] | web.Response:
    """Checks the upgrade; returns (claims, subprotocol to echo) or the refusal to answer with."""
    st = state(request)
    if not is_upgrade(request):  # a plain GET on a WebSocket path
        return web.Response(status=404, text="Not Found")
    if st.runtime.draining:
        audit(f"{client}.upgrade", "refused", remote=remote_addr(request), actor=ANONYMOUS, status=503,
              reason="draining")
        return refuse(503)
    token: str | None = None
    try:
        if browser:
            check_origin(request.headers.get("origin"), frozenset(st.runtime.settings.allowed_origins),
                         host=request.headers.get("host"), public_bind=st.client_auth.public_bind)
        token, subprotocol = token_from_scope(request.headers, request.query_string)
        claims = st.client_auth.verify(token)
    except Unauthorized as e:
        metrics.voice_gateway_client_errors.labels(client, e.code).inc()
        log_event(log, logging.WARNING, "client.refused", f"{client} upgrade refused: {e.message}",
                  client=client, reason=e.reason)
        audit(f"{client}.upgrade", "refused", remote=remote_addr(request), actor=token_id(token),
              level=logging.WARNING, status=403, reason=e.reason)
        return refuse(403)
    return claims, subprotocol


async def open_socket(request: web.Request, subprotocol: str | None = None) -> web.WebSocketResponse:
    """Complete the upgrade: the configured message limit (one byte over closes with 1009), no
    per-message compression, `subprotocol` echoed when given. The socket is tracked until it closes,
    so a stopping server can close what is left with 1012."""
    st: AppState = state(request)
    # aiohttp refuses a message of exactly max_msg_size; ours is the largest one taken (docs/protocol.md)
    ws = TappedWebSocketResponse(max_msg_size=st.settings.max_message_bytes + 1, compress=False,
                               protocols=(subprotocol,) if subprotocol else ())
    await ws.prepare(request)
    st.sockets.add(ws)
    return ws


def forget_socket(request: web.Request, ws: web.WebSocketResponse) -> None:
    state(request).sockets.discard(ws)
