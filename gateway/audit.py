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
from collections.abc import Mapping
from typing import Any

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


def remote_addr(scope: Mapping[str, Any]) -> str:
    """`host:port` of the peer from an ASGI scope (what uvicorn saw; no proxy headers trusted)."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client[0], client[1] if len(client) > 1 else None
    return f"{host}:{port}" if port is not None else str(host)


def audit(action: str, outcome: str, *, remote: str, actor: str, level: int = logging.INFO,
          **fields: Any) -> None:
    """One audit line. `outcome`: ok | denied | refused | failed | unchanged."""
    log_event(log, level, "audit", f"{action}: {outcome}", action=action, outcome=outcome,
              remote_addr=remote, actor=actor, **fields)
