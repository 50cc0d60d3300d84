"""Client authentication on the upgrade, over real sockets: refused with HTTP 403 before accept."""

from __future__ import annotations

import time
from typing import Any

import pytest
import websockets

from gateway.auth import ClientAuth
from gateway.logs import JsonFormatter
from tests.harness import Gateway, VoiceClient

pytestmark = pytest.mark.timeout(30)
STATIC = "static-client-token-4f9a8b7c"
SECRET = "signing-secret-for-tests-0123456789"


async def refused(url: str, **kw: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(url, **kw):
            pass
    return e.value.response.status_code


async def test_tokens_origin_and_subprotocol(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    auth = ClientAuth(secret=SECRET)
    expired = auth.mint("caller", 60, now=time.time() - 3600)
    valid = auth.mint("caller", 600)
    async with Gateway(client_tokens=(STATIC,), client_token_secret=SECRET,
                       allowed_origins=("https://app.example.com",)) as gw:
        url = gw.url + "/v1/voice"
        assert await refused(url) == 403  # no token
        assert await refused(url + "?token=not-a-token") == 403
        assert await refused(url, additional_headers={"Authorization": f"Bearer {expired}"}) == 403
        assert await refused(url + f"?token={STATIC}", origin="https://evil.example.com") == 403
        # the static token in the query string, from an allowed origin
        async with websockets.connect(url + f"?token={STATIC}", origin="https://app.example.com"):
            pass
        # a signed token as a subprotocol (what browsers do); the app subprotocol is echoed
        async with VoiceClient(url, subprotocols=["voice-gateway.v1", f"token.{valid}"]) as c:
            assert c.ws.subprotocol == "voice-gateway.v1"
            started = await c.start("deepgram")
            assert started["provider"] == "deepgram"
    fmt = JsonFormatter()  # what the gateway writes: every record, whoever logged it, redacted
    logged = "\n".join(fmt.format(r) for r in caplog.records)
    for secret in (STATIC, SECRET, valid, expired):
        assert secret not in logged


async def test_signed_token_without_switch_right_cannot_switch() -> None:
    auth = ClientAuth(secret=SECRET)
    token = auth.mint("caller", 600, allow_switch=False)
    async with Gateway(client_token_secret=SECRET) as gw, \
            VoiceClient(gw.url + "/v1/voice", headers={"Authorization": f"Bearer {token}"}) as c:
        await c.start("deepgram")
        await c.send({"type": "provider.switch", "provider": "openai"})
        err = await c.wait_for("error")
        assert err["code"] == "forbidden"
        assert not c.of_type("provider.switched")
