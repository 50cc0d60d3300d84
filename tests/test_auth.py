"""Client tokens, origins, Twilio signatures, the admin token and `voice-gateway token`."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.auth import (
    SUBPROTOCOL,
    AdminAuth,
    ClientAuth,
    check_origin,
    redact_query,
    token_from_scope,
    verify_twilio_signature,
)
from gateway.cli import main as cli_main
from gateway.errors import ClientError, Unauthorized

SECRET = "s3cret-signing-key"
NOW = 1_700_000_000.0


class WallClock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def signed_auth(clock: WallClock | None = None, **kw) -> ClientAuth:
    return ClientAuth(frozenset(), SECRET, clock=clock or WallClock(), **kw)


# -- signed tokens ------------------------------------------------------------------------------
def test_minted_token_verifies_with_its_claims() -> None:
    auth = signed_auth()
    token = auth.mint("alice", 600, allow_switch=True)
    claims = auth.verify(token)
    assert (claims.subject, claims.kind, claims.allow_switch, claims.expires_at) == ("alice", "signed", True, NOW + 600)
    assert auth.verify(auth.mint("bob", 60)).allow_switch is False


def test_token_is_usable_as_a_subprotocol_value() -> None:
    token = signed_auth().mint("a subject with spaces/and+symbols", 60)
    # RFC 7230 tchar subset we emit: base64url alphabet and the separating dot.
    assert all(c.isalnum() or c in "-_." for c in token)


def test_token_expires_exactly_at_exp() -> None:
    clock = WallClock()
    auth = signed_auth(clock)
    token = auth.mint("alice", 30)
    clock.t = NOW + 29.9
    auth.verify(token)
    clock.t = NOW + 30
    with pytest.raises(Unauthorized) as exc:
        auth.verify(token)
    assert exc.value.reason == "expired"
    assert token not in str(exc.value)


def test_token_signed_with_another_secret_is_bad() -> None:
    other = ClientAuth(frozenset(), "another-secret", clock=WallClock()).mint("mallory", 600, allow_switch=True)
    with pytest.raises(Unauthorized) as exc:
        signed_auth().verify(other)
    assert exc.value.reason == "bad"


def test_tampered_payload_is_rejected() -> None:
    auth = signed_auth()
    payload, sig = auth.mint("alice", 600).split(".")
    forged = base64.urlsafe_b64encode(orjson.dumps({"sub": "alice", "exp": int(NOW) + 600, "sw": True}))
    with pytest.raises(Unauthorized):
        auth.verify(forged.rstrip(b"=").decode() + "." + sig)


@pytest.mark.parametrize("token", [
    "", "no-dot", ".", "a.b", "x" * 10_000, "é.é", "\ud800.x", "AAAA.!!!!", "e30.AAAA", "abc.def.ghi",
])
def test_garbage_tokens_are_typed_errors_without_the_token(token: str) -> None:
    with pytest.raises(Unauthorized) as exc:
        signed_auth().verify(token)
    assert exc.value.reason in ("missing", "bad")
    if len(token) > 3:
        assert token not in str(exc.value) and token not in exc.value.message


def test_validly_signed_but_wrongly_typed_claims_are_bad() -> None:
    import hashlib
    import hmac

    auth = signed_auth()
    for claims in ([1, 2], {"sub": "a"}, {"sub": 1, "exp": 2**40}, {"sub": "a", "exp": True},
                   {"sub": "a", "exp": 2**40, "sw": "yes"}):
        payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
        sig = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()).rstrip(b"=")
        with pytest.raises(Unauthorized):
            auth.verify(f"{payload.decode()}.{sig.decode()}")


def test_missing_token_when_required() -> None:
    with pytest.raises(Unauthorized) as exc:
        signed_auth().verify(None)
    assert exc.value.reason == "missing"
    assert exc.value.close_code == 1008 and exc.value.code == "unauthorized"


def test_mint_needs_a_secret_and_a_positive_ttl() -> None:
    with pytest.raises(ValueError):
        ClientAuth(frozenset({"t"}), None).mint("a", 60)
    with pytest.raises(ValueError):
        signed_auth().mint("a", 0)


# -- static tokens and when auth is required ----------------------------------------------------
def test_static_tokens() -> None:
    auth = ClientAuth(frozenset({"tok-one", "tok-two"}), None)
    assert auth.verify("tok-two").kind == "static"
    with pytest.raises(Unauthorized):
        auth.verify("tok-three")
    with pytest.raises(Unauthorized):
        auth.verify("tok-one ")


def test_static_and_signed_tokens_together() -> None:
    auth = ClientAuth(frozenset({"ops"}), SECRET, clock=WallClock())
    assert auth.verify("ops").kind == "static"
    assert auth.verify(auth.mint("a", 60)).kind == "signed"


@pytest.mark.parametrize(("tokens", "secret", "host", "required"), [
    (frozenset(), None, "127.0.0.1", False),
    (frozenset(), None, "localhost", False),
    (frozenset(), None, "::1", False),
    (frozenset(), None, "127.0.0.2", False),
    (frozenset(), None, "0.0.0.0", True),
    (frozenset(), None, "192.168.1.5", True),
    (frozenset(), None, "gateway.example.com", True),
    (frozenset({"t"}), None, "127.0.0.1", True),
    (frozenset(), SECRET, "127.0.0.1", True),
])
def test_required_when_configured_or_publicly_bound(tokens, secret, host, required) -> None:
    auth = ClientAuth(tokens, secret, bind_host=host)
    assert auth.required is required
    if not required:
        assert auth.verify(None).kind == "anonymous"
    else:
        with pytest.raises(Unauthorized):
            auth.verify(None)


def test_public_bind_without_any_token_refuses_everyone() -> None:
    auth = ClientAuth(frozenset(), None, bind_host="0.0.0.0")
    with pytest.raises(Unauthorized):
        auth.verify("anything")


def test_repr_holds_no_secret() -> None:
    auth = ClientAuth(frozenset({"tok-one"}), SECRET)
    assert "tok-one" not in repr(auth) and SECRET not in repr(auth)
    assert "adm1n" not in repr(AdminAuth("adm1n"))


# -- finding the token in an upgrade request ----------------------------------------------------
def test_token_from_subprotocol_offer_echoes_only_the_protocol_name() -> None:
    headers = [(b"host", b"x"), (b"sec-websocket-protocol", b"voice-gateway.v1, token.abc.def")]
    assert token_from_scope(headers, b"") == ("abc.def", SUBPROTOCOL)


def test_token_from_repeated_subprotocol_headers_and_mapping_headers() -> None:
    headers = [(b"Sec-WebSocket-Protocol", b"voice-gateway.v1"), (b"Sec-WebSocket-Protocol", b"token.T1")]
    assert token_from_scope(headers, b"") == ("T1", SUBPROTOCOL)
    assert token_from_scope({"Sec-WebSocket-Protocol": "token.T2"}, "") == ("T2", None)


def test_token_from_query_and_bearer_header() -> None:
    assert token_from_scope([], b"provider=openai&token=Q1") == ("Q1", None)
    assert token_from_scope([(b"authorization", b"Bearer H1")], b"token=Q1") == ("H1", None)
    assert token_from_scope([], b"") == (None, None)
    assert token_from_scope([(b"sec-websocket-protocol", b"voice-gateway.v1, token.")], b"") == (None, SUBPROTOCOL)


def test_aiohttp_headers_with_repeated_fields_are_accepted() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    h = CIMultiDictProxy(CIMultiDict([("Sec-WebSocket-Protocol", "voice-gateway.v1"),
                                      ("sec-websocket-protocol", "token.S")]))
    assert token_from_scope(h, "") == ("S", SUBPROTOCOL)


def test_redact_query() -> None:
    assert redact_query("provider=openai&token=abc.def&x=1") == "provider=openai&token=***&x=1"
    assert redact_query("TOKEN=abc") == "TOKEN=***"
    assert redact_query("?api_key=k&signature=s") == "?api_key=***&signature=***"
    assert redact_query("tokens=keep") == "tokens=keep"


# -- origins ------------------------------------------------------------------------------------
def test_origin_rules() -> None:
    listed = frozenset({"https://app.example.com"})
    check_origin(None, frozenset(), public_bind=True)  # not a browser
    check_origin("https://app.example.com/", listed, public_bind=True)
    check_origin("https://gw.example.com", frozenset(), host="gw.example.com", public_bind=True)  # our demo page
    check_origin("http://evil.test", frozenset(), public_bind=False)  # loopback, nothing configured
    check_origin("http://evil.test", frozenset({"*"}), public_bind=True)
    for origin, allowed, public in [("http://evil.test", frozenset(), True),
                                    ("http://evil.test", listed, False),
                                    ("null", frozenset(), True),
                                    ("https://gw.example.com.evil.test", frozenset(), True)]:
        with pytest.raises(Unauthorized) as exc:
            check_origin(origin, allowed, host="gw.example.com", public_bind=public)
        assert exc.value.status == 403


# -- Twilio request signing ---------------------------------------------------------------------
def test_twilio_signature_known_vectors() -> None:
    # Vectors computed independently with `openssl dgst -sha1 -hmac <token> -binary | base64`;
    # the first is also the example in Twilio's webhook security docs.
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert verify_twilio_signature("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    ws_url = "https://example.com/v1/twilio?tenant=acme"
    assert verify_twilio_signature("secret-auth-token", ws_url, {}, "vOC4bXBVHCfhVKyhMbS1laUcEhI=")


def test_twilio_signature_rejects_changes() -> None:
    good = "vOC4bXBVHCfhVKyhMbS1laUcEhI="
    url = "https://example.com/v1/twilio?tenant=acme"
    assert not verify_twilio_signature("other-token", url, {}, good)
    assert not verify_twilio_signature("secret-auth-token", url + "x", {}, good)
    assert not verify_twilio_signature("secret-auth-token", url, {"a": "b"}, good)
    assert not verify_twilio_signature("secret-auth-token", url, {}, "")
    assert not verify_twilio_signature("", url, {}, good)


def test_twilio_signature_tolerates_the_default_port() -> None:
    assert verify_twilio_signature("secret-auth-token", "https://example.com:443/v1/twilio?tenant=acme", {},
                                   "vOC4bXBVHCfhVKyhMbS1laUcEhI=")


# -- admin --------------------------------------------------------------------------------------
def test_admin_auth_statuses() -> None:
    admin = AdminAuth("adm1n-token", bind_host="0.0.0.0")
    admin.check("Bearer adm1n-token")
    admin.check("bearer   adm1n-token ")
    for header, status in [(None, 401), ("", 401), ("Basic abc", 401), ("Bearer", 401),
                           ("Bearer wrong", 403), ("Bearer adm1n-token2", 403)]:
        with pytest.raises(Unauthorized) as exc:
            admin.check(header)
        assert exc.value.status == status
        assert "adm1n-token" not in str(exc.value)


def test_admin_without_token_is_open_on_loopback_and_disabled_in_public() -> None:
    AdminAuth(None).check(None)
    closed = AdminAuth("", bind_host="0.0.0.0")
    assert not closed.enabled
    with pytest.raises(ClientError) as exc:
        closed.check("Bearer anything")
    assert exc.value.status == 403


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_token_mints_a_verifiable_token(monkeypatch, capsys) -> None:
    monkeypatch.setenv("VG_CLIENT_TOKEN_SECRET", SECRET)
    assert cli_main(["token", "--ttl", "120", "--subject", "kiosk", "--allow-switch"]) == 0
    token = capsys.readouterr().out.strip()
    claims = ClientAuth(frozenset(), SECRET).verify(token)
    assert claims.subject == "kiosk" and claims.allow_switch


def test_cli_token_without_secret_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.delenv("VG_CLIENT_TOKEN_SECRET", raising=False)
    assert cli_main(["token"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "VG_CLIENT_TOKEN_SECRET" in captured.err
