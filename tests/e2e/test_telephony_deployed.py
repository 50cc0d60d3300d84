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


@pytest.mark.parametrize(("headers", "path"), [
    ({"X-Twilio-Signature": twilio_signature("https://voice.example.com/v1/twilio")}, "/v1/twilio"),
    ({"X-Twilio-Signature": twilio_signature("wss://voice.example.com/v1/twilio", "another-token")},
     "/v1/twilio"),
    ({"X-Twilio-Signature": twilio_signature("wss://voice.example.com/v1/twilio")}, "/v1/twilio?tenant=x"),
    ({"X-Twilio-Signature": twilio_signature("wss://voice.example.com/v1/telnyx")}, "/v1/twilio"),
    ({"X-Twilio-Signature": twilio_signature("wss://other.example.com/v1/twilio")}, "/v1/twilio"),
    ({}, "/v1/twilio"),
    # a valid client token does not replace Twilio's signature once TWILIO_AUTH_TOKEN is set
    ({"Authorization": f"Bearer {CLIENT_TOKEN}"}, "/v1/twilio"),
], ids=["signed-over-https", "wrong-auth-token", "query-added", "other-path", "other-host", "unsigned",
        "client-token-only"])
async def test_wrong_twilio_signatures_are_refused(headers: dict[str, str], path: str) -> None:
    async with deployed(VG_PUBLIC_URL="wss://voice.example.com") as gw:
        assert await refused(FakeTwilioCaller(gw.url + path, headers=headers)) == 403
        assert not gw.runtime.sessions and not gw.fakes["gemini"].connections


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


@pytest.mark.parametrize("authorization", [
    f"Bearer {vonage_jwt('a-different-vonage-signature-secret-0123')}",
    f"Bearer {vonage_jwt(age_s=3600)}",  # a replayed old token
    f"Bearer {vonage_jwt(exp=int(time.time()) - 5)}",
    f"Bearer {jwt.encode({'iat': int(time.time())}, key=None, algorithm='none')}",
    f"Bearer {jwt.encode({'jti': 'x'}, VONAGE_SECRET, algorithm='HS256')}",  # no iat
    f"Bearer {CLIENT_TOKEN}",  # a client token does not replace Vonage's JWT once the secret is set
    "",
], ids=["wrong-secret", "too-old", "expired", "alg-none", "no-iat", "client-token", "missing"])
async def test_wrong_vonage_jwts_are_refused(authorization: str) -> None:
    async with deployed(VONAGE_SIGNATURE_SECRET=VONAGE_SECRET) as gw:
        headers = {"Authorization": authorization} if authorization else {}
        assert await refused(FakeVonageCaller(gw.url + "/v1/vonage", headers=headers)) == 403
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

