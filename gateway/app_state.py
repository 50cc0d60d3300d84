"""The aiohttp application's typed state: one `AppState` under one `AppKey`, and the JSON response
every HTTP route answers with.

`settings`, the two auth checkers and the set of open client sockets exist from `create_app`; the
runtime, chain service, operator controls and fleet node are set by the app's startup (gateway/app.py)
and read only by handlers, which run after it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.auth import AdminAuth, ClientAuth
from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.chains.service import ChainService
    from gateway.fleet.controls import OperatorControls
    from gateway.fleet.node import FleetNode
    from gateway.runtime import Runtime


@dataclasses.dataclass(eq=False)
class AppState:
    settings: Settings
    client_auth: ClientAuth
    admin_auth: AdminAuth
    runtime: Runtime = dataclasses.field(init=False)
    chains: ChainService = dataclasses.field(init=False)
    controls: OperatorControls = dataclasses.field(init=False)
    fleet: FleetNode | None = None
    # open client WebSockets: closed with 1012 when the server stops with calls still open
    sockets: set[web.WebSocketResponse] = dataclasses.field(default_factory=set)


STATE = web.AppKey("voice_gateway_state", AppState)


def state(request: web.Request) -> AppState:
    return request.app[STATE]


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """`application/json`, compact, UTF-8 as is (what the routes answered under starlette)."""
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return web.Response(body=text.encode(), status=status, headers=headers, content_type="application/json")
