"""The audit trail: one structured log line per security-relevant action (logger `gateway.audit`,
event `audit`).

Every line carries `action`, `outcome`, `remote_addr` and `actor`. The actor is a token *id* (a
short SHA-256 prefix of the credential, stable across lines so an operator can follow one token),
never the token itself; `anonymous` when no credential was offered, `system` for the gateway's
own actions (a provider refusing a key, a key file reload).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aiohttp import web

from gateway.logs import log_event

log = logging.getLogger("gateway.audit")
SYSTEM = "system"
ANONYMOUS = "anonymous"


def token_id(token: str | None) -> str:
    """`tok-<12 hex>` for a credential, `anonymous` for none. Not reversible, not a secret."""
    if not token:
        return ANONYMOUS
    return "tok-" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def bearer_id(authorization_header: str | None) -> str:
    scheme, _, credentials = (authorization_header or "").strip().partition(" ")
    return token_id(credentials.strip() if scheme.lower() == "bearer" else None)


def remote_addr(request: web.BaseRequest) -> str:
    """`host:port` of the peer as the socket saw it (no proxy headers trusted)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return "unknown"
    if isinstance(peer, tuple | list):
        return f"{peer[0]}:{peer[1]}" if len(peer) > 1 else str(peer[0])
    return str(peer)


def audit(action: str, outcome: str, *, remote: str, actor: str, level: int = logging.INFO,
          **fields: Any) -> None:
    """One audit line. `outcome`: ok | denied | refused | failed | unchanged."""
    log_event(log, level, "audit", f"{action}: {outcome}", action=action, outcome=outcome,
              remote_addr=remote, actor=actor, **fields)
