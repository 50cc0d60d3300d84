"""Telephony as deployed: settings come from environment variables through the real parser
(`load_settings`), the gateway's auth sees a public bind (0.0.0.0, as in Docker) with client
tokens configured, and the vendors' own credentials are made by their official libraries:
Twilio's `RequestValidator` signs the `<Stream>` URL, PyJWT makes Vonage's HS256 signed JWT.

A valid vendor signature must admit the call on its own (Twilio's <Stream> cannot send a client
token); a wrong or missing one must be refused with 403 before the upgrade completes.
"""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
import websockets
from twilio.request_validator import RequestValidator

from audio.formats import PCM16_16K
from gateway.config import load_settings
from gateway.errors import ConfigError
from tests.harness import Gateway, dtmf_utterance
from tests.telephony_clients import FakeTelnyxCaller, FakeTwilioCaller, FakeVonageCaller

TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
VONAGE_SECRET = "vonage-signature-secret-0123456789"
CLIENT_TOKEN = "client-token-for-browsers-and-sdks"
PUBLIC_BIND = {"VG_HOST": "0.0.0.0", "VG_CLIENT_TOKENS": CLIENT_TOKEN}


def deployed(**env: str) -> Gateway:
    """A gateway whose settings are parsed from `env` exactly as `voice-gateway serve` parses them."""
    settings = load_settings({**PUBLIC_BIND, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, **env})
    assert settings.host == "0.0.0.0" and settings.client_auth_configured
    return Gateway(settings=settings)


def twilio_signature(url: str, token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, {})


async def refused(caller) -> int:  # noqa: ANN001
    with pytest.raises(websockets.InvalidStatus) as e:
        async with caller:
            pass
    return e.value.response.status_code


async def carries_a_call(gw: Gateway, caller, provider: str = "deepgram") -> None:  # noqa: ANN001
    """The admitted stream is a working call: DTMF audio reaches the provider."""
    fake = gw.fakes[provider]
    async with caller:
        await caller.send_audio(dtmf_utterance("47", caller.input_format))
        deadline = asyncio.get_running_loop().time() + 10
        while not (fake.connections and fake.connections[0].digits == "47"):
            assert asyncio.get_running_loop().time() < deadline, "the call's audio never reached the provider"
            await caller.send_silence(100)  # keep stream time moving so the utterance ends


@pytest.mark.parametrize(("public_url", "signed_url", "dialled_path"), [
    # Twilio signs the wss:// <Stream> URL it dials, port and query string included
    ("wss://voice.example.com:8443", "wss://voice.example.com:8443/v1/twilio?tenant=acme",
     "/v1/twilio?tenant=acme"),
    # an https:// setting means the wss:// URL on the same host (the README's promise)
    ("https://voice.example.com", "wss://voice.example.com/v1/twilio", "/v1/twilio"),
    # proxies add or strip the default port; Twilio's own validators accept both
    ("wss://voice.example.com", "wss://voice.example.com:443/v1/twilio", "/v1/twilio"),
    # a proxy that serves the gateway under a path prefix and strips it on the way in
    ("wss://edge.example.com/voice/", "wss://edge.example.com/voice/v1/twilio", "/v1/twilio"),
])
async def test_twilio_signature_over_the_wss_url_admits_without_a_client_token(
        public_url: str, signed_url: str, dialled_path: str) -> None:
    # The proxy rewrote Host: the gateway sees Host 127.0.0.1:<port>, Twilio signed the public URL.
    async with deployed(VG_PUBLIC_URL=public_url) as gw:
        caller = FakeTwilioCaller(gw.url + dialled_path, {"provider": "deepgram"},
                                  headers={"X-Twilio-Signature": twilio_signature(signed_url)})
        await carries_a_call(gw, caller)


async def test_without_a_public_url_the_host_header_names_the_signed_url() -> None:
    async with deployed() as gw:
        signed = twilio_signature(f"wss://127.0.0.1:{gw.port}/v1/twilio")
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "deepgram"},
                                  headers={"X-Twilio-Signature": signed})
        await carries_a_call(gw, caller)


WRONG_TWILIO = {  # case → (headers, path dialled); the gateway's VG_PUBLIC_URL is wss://voice.example.com
    "signed-over-https": ({"X-Twilio-Signature": twilio_signature("https://voice.example.com/v1/twilio")},
                          "/v1/twilio"),
    "wrong-auth-token": ({"X-Twilio-Signature": twilio_signature("wss://voice.example.com/v1/twilio",
                                                                 "another-token")}, "/v1/twilio"),
    "query-added": ({"X-Twilio-Signature": twilio_signature("wss://voice.example.com/v1/twilio")},
                    "/v1/twilio?tenant=x"),
    "other-path": ({"X-Twilio-Signature": twilio_signature("wss://voice.example.com/v1/telnyx")}, "/v1/twilio"),
    "other-host": ({"X-Twilio-Signature": twilio_signature("wss://other.example.com/v1/twilio")}, "/v1/twilio"),
    "unsigned": ({}, "/v1/twilio"),
    # a valid client token does not replace Twilio's signature once TWILIO_AUTH_TOKEN is set
    "client-token-only": ({"Authorization": f"Bearer {CLIENT_TOKEN}"}, "/v1/twilio"),
}


async def test_wrong_twilio_signatures_are_refused() -> None:
    async with deployed(VG_PUBLIC_URL="wss://voice.example.com") as gw:
        statuses = {case: await refused(FakeTwilioCaller(gw.url + path, headers=headers))
                    for case, (headers, path) in WRONG_TWILIO.items()}
        assert statuses == dict.fromkeys(WRONG_TWILIO, 403)
        assert not gw.runtime.sessions and not any(f.connections for f in gw.fakes.values())


def vonage_jwt(secret: str = VONAGE_SECRET, *, age_s: float = 0.0, **claims: object) -> str:
    """Shaped like Vonage's signed-webhook JWT (iat, jti, iss, application_id, api_key), HS256."""
    body = {"iat": int(time.time() - age_s), "jti": "0b8f1c6e-1111-4a2b-9c3d-4e5f60718293",
            "iss": "Vonage", "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            "api_key": "abcd1234", **claims}
    return jwt.encode(body, secret, algorithm="HS256")


async def test_vonage_signed_jwt_admits_without_a_client_token() -> None:
    async with deployed(VONAGE_SIGNATURE_SECRET=VONAGE_SECRET) as gw:
        caller = FakeVonageCaller(gw.url + "/v1/vonage", {"provider": "deepgram"},
                                  headers={"Authorization": f"Bearer {vonage_jwt()}"})
        assert caller.input_format == PCM16_16K
        await carries_a_call(gw, caller)


def wrong_vonage_authorizations() -> dict[str, str]:
    return {
        "wrong-secret": f"Bearer {vonage_jwt('a-different-vonage-signature-secret-0123')}",
        "too-old": f"Bearer {vonage_jwt(age_s=3600)}",  # a replayed old token
        "expired": f"Bearer {vonage_jwt(exp=int(time.time()) - 5)}",
        "alg-none": f"Bearer {jwt.encode({'iat': int(time.time())}, key=None, algorithm='none')}",
        "no-iat": f"Bearer {jwt.encode({'jti': 'x'}, VONAGE_SECRET, algorithm='HS256')}",
        # a client token does not replace Vonage's JWT once the secret is set
        "client-token": f"Bearer {CLIENT_TOKEN}",
        "missing": "",
    }


async def test_wrong_vonage_jwts_are_refused() -> None:
    cases = wrong_vonage_authorizations()
    async with deployed(VONAGE_SIGNATURE_SECRET=VONAGE_SECRET) as gw:
        statuses = {case: await refused(FakeVonageCaller(gw.url + "/v1/vonage",
                                                         headers={"Authorization": value} if value else {}))
                    for case, value in cases.items()}
        assert statuses == dict.fromkeys(cases, 403)
        assert not gw.runtime.sessions


@pytest.mark.parametrize(("path", "headers"), [
    ("/v1/telnyx", {"Authorization": f"Bearer {CLIENT_TOKEN}"}),  # Call Control stream_auth_token
    (f"/v1/telnyx?token={CLIENT_TOKEN}", {}),  # a token in stream_url's query string
], ids=["stream-auth-token", "query-token"])
async def test_telnyx_streams_authenticate_with_a_client_token(path: str, headers: dict[str, str]) -> None:
    # Telnyx signs its webhooks (Ed25519), not the media WebSocket: a client token is the credential.
    async with deployed() as gw:
        await carries_a_call(gw, FakeTelnyxCaller(gw.url + path, {"provider": "deepgram"}, headers=headers))
        assert await refused(FakeTelnyxCaller(gw.url + "/v1/telnyx")) == 403


async def test_vonage_without_a_signature_secret_takes_a_client_token() -> None:
    # NCCO `authorization: {"type": "custom", "value": "Bearer <client token>"}`
    async with deployed() as gw:
        await carries_a_call(gw, FakeVonageCaller(gw.url + "/v1/vonage", {"provider": "deepgram"},
                                                  headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}))
        assert await refused(FakeVonageCaller(gw.url + "/v1/vonage")) == 403


@pytest.mark.parametrize(("value", "parsed"), [
    ("wss://voice.example.com", "wss://voice.example.com"),
    ("https://voice.example.com:8443/", "wss://voice.example.com:8443"),
    ("http://10.0.0.5:8080", "ws://10.0.0.5:8080"),
    ("WSS://Voice.example.com/edge/", "wss://Voice.example.com/edge"),
])
def test_public_url_accepts_wss_and_maps_https(value: str, parsed: str) -> None:
    assert load_settings({"VG_PUBLIC_URL": value}).public_url == parsed


@pytest.mark.parametrize("value", ["ftp://voice.example.com", "voice.example.com", "wss://",
                                   "wss://voice.example.com/?tenant=a", "wss://voice.example.com:99999"])
def test_bad_public_urls_are_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="VG_PUBLIC_URL"):
        load_settings({"VG_PUBLIC_URL": value})



async def test_the_real_server_on_a_public_bind_takes_a_signed_twilio_call() -> None:
    """`voice-gateway serve` as in Docker: VG_HOST=0.0.0.0, settings only from the environment,
    client tokens configured, no provider keys (simulated providers answer). Twilio's signature over
    the public wss URL admits the call; the caller hears the digits spoken back."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import aiohttp

    from audio.dtmf import detect_dtmf
    from audio.formats import MULAW_8K
    from audio.g711 import ulaw_decode
    from tests.e2e.test_serve_process import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VG_") and not k.endswith(("_API_KEY", "_API_KEY_FILE", "_BASE_URL"))}
    env.update({**PUBLIC_BIND, "VG_PORT": str(port), "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "VG_PUBLIC_URL": "https://voice.example.com"})
    proc = subprocess.Popen([str(Path(sys.executable).parent / "voice-gateway"), "serve"], env=env,  # noqa: ASYNC220
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                await asyncio.sleep(0.05)
        url = f"ws://127.0.0.1:{port}/v1/twilio"
        assert await refused(FakeTwilioCaller(url, headers={"X-Twilio-Signature": "bad"})) == 403
        signed = twilio_signature("wss://voice.example.com/v1/twilio")
        async with FakeTwilioCaller(url, {"provider": "gemini"}, instant_playout=True,
                                    headers={"X-Twilio-Signature": signed}) as caller:
            await caller.send_audio(dtmf_utterance("38", MULAW_8K), realtime=True)  # the real rate ceilings apply
            deadline = asyncio.get_running_loop().time() + 20
            heard = ""
            while heard != "38":
                assert asyncio.get_running_loop().time() < deadline, f"heard {heard!r}"
                await caller.send_silence(100)
                await asyncio.sleep(0.1)
                heard = "".join(d.digit for d in detect_dtmf(ulaw_decode(bytes(caller.received_audio)), 8000))
            await caller.hangup()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert '"reason":"signature"' in out and TWILIO_TOKEN not in out
