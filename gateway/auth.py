"""Who may use the gateway: client tokens, browser origins, Twilio signatures, the admin token.

Invariants: a token never appears in an exception message, a log line or a repr; every secret
comparison is constant-time (`hmac.compare_digest`). Wall-clock time (`time.time`) is used only for
token expiry, because `exp` must mean the same instant to the process that minted the token and
the one that checks it; nothing protocol- or audio-related depends on it.

Signed client tokens (docs/protocol.md, `voice-gateway token`):
    base64url(JSON {"sub": str, "exp": int unix seconds, "sw": bool}) "." base64url(HMAC-SHA256)
with the MAC taken over the ASCII of the first part and no base64 padding, so a token is made only
of RFC 7230 `tchar`s and fits in a `Sec-WebSocket-Protocol` value.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

from gateway.errors import Unauthorized

SUBPROTOCOL = "voice-gateway.v1"
TOKEN_SUBPROTOCOL_PREFIX = "token."
SECRET_ENV = "VG_CLIENT_TOKEN_SECRET"
_MAX_TOKEN_CHARS = 4096  # a signed token is ~120 chars; anything this long is not ours


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenClaims:
    """What a verified client may do. `kind` says how it was admitted."""

    subject: str
    kind: Literal["signed", "static", "anonymous"]
    allow_switch: bool
    expires_at: float | None = None  # unix seconds; None for static tokens and open access


def _unauthorized(reason: Literal["missing", "bad", "expired", "origin"], message: str,
                  *, status: int = 401) -> Unauthorized:
    return Unauthorized(message, reason=reason, status=status)


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: binds only this machine can reach."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClientAuth:
    """Client-endpoint authentication (`/v1/voice`, `/v1/twilio`, `/v1/telnyx`, `/v1/vonage`).

    `required` is True when static tokens or a signing secret are configured, and always when the
    gateway is bound to a non-loopback address (docs/protocol.md). When not required, `verify` admits
    everyone as `anonymous` (with provider switching allowed: a local development setup).
    Static tokens (`VG_CLIENT_TOKENS`) are operator-issued and may switch providers; signed tokens
    may switch only when minted with `allow_switch`.
    """

    def __init__(self, static_tokens: frozenset[str] = frozenset(), secret: str | None = None, *,
                 bind_host: str = "127.0.0.1", clock: Callable[[], float] = time.time) -> None:
        self._static = tuple(t.encode() for t in static_tokens if t)
        self._key = secret.encode() if secret else None
        self._clock = clock
        self.public_bind = not is_loopback_host(bind_host)

    def __repr__(self) -> str:
        return (f"ClientAuth(static_tokens={len(self._static)}, signing={self._key is not None}, "
                f"public_bind={self.public_bind})")

    @property
    def required(self) -> bool:
        return bool(self._static) or self._key is not None or self.public_bind

    def mint(self, subject: str, ttl_s: int, *, allow_switch: bool = False, now: float | None = None) -> str:
        if self._key is None:
            raise ValueError(f"no signing secret configured ({SECRET_ENV})")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        issued = self._clock() if now is None else now
        payload = _b64url_encode(orjson.dumps({"sub": subject, "exp": int(issued) + ttl_s, "sw": allow_switch}))
        return f"{payload}.{_b64url_encode(self._sign(payload))}"

    def verify(self, token: str | None) -> TokenClaims:
        """Admit or raise `Unauthorized` (attribute `reason`: missing/bad/expired; never the token)."""
        if not self.required:
            return TokenClaims(subject="anonymous", kind="anonymous", allow_switch=True)
        if not token:
            raise _unauthorized("missing", "a client token is required")
        if len(token) > _MAX_TOKEN_CHARS:
            raise _unauthorized("bad", "the client token is not valid")
        encoded = token.encode("utf-8", "surrogatepass")
        # Check every static token so the time taken does not say which one nearly matched.
        static_match = False
        for candidate in self._static:
            static_match |= hmac.compare_digest(candidate, encoded)
        if static_match:
            return TokenClaims(subject="static", kind="static", allow_switch=True)
        if self._key is not None:
            return self._verify_signed(token)
        raise _unauthorized("bad", "the client token is not valid")

    def _sign(self, payload_b64: str) -> bytes:
        assert self._key is not None
        return hmac.new(self._key, payload_b64.encode("ascii"), hashlib.sha256).digest()

    def _verify_signed(self, token: str) -> TokenClaims:
        bad = _unauthorized("bad", "the client token is not valid")
        payload_b64, dot, sig_b64 = token.partition(".")
        if not dot or not payload_b64.isascii():
            raise bad
        try:
            sig = _b64url_decode(sig_b64)
        except (ValueError, binascii.Error):
            raise bad from None
        if not hmac.compare_digest(sig, self._sign(payload_b64)):
            raise bad
        try:
            claims = orjson.loads(_b64url_decode(payload_b64))
        except (ValueError, binascii.Error):
            raise bad from None
        if not isinstance(claims, dict):
            raise bad
        sub, exp, sw = claims.get("sub"), claims.get("exp"), claims.get("sw", False)
        if not isinstance(sub, str) or not isinstance(exp, int) or isinstance(exp, bool) or not isinstance(sw, bool):
            raise bad
        if exp <= self._clock():
            raise _unauthorized("expired", "the client token has expired")
        return TokenClaims(subject=sub, kind="signed", allow_switch=sw, expires_at=float(exp))


# -- where a client puts its token -------------------------------------------------------------
Headers = Iterable[tuple[bytes, bytes]] | Mapping[str, str]


def _header_values(headers: Headers, name: str) -> list[str]:
    if isinstance(headers, Mapping):
        getall = getattr(headers, "getall", None)  # aiohttp's (multidict) headers keep repeated fields
        if getall is not None:
            return list(getall(name, ()))
        return [v for k, v in headers.items() if k.lower() == name]
    return [v.decode("latin-1") for k, v in headers if k.decode("latin-1").lower() == name]


def token_from_scope(headers: Headers, query_string: bytes | str) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo) from an upgrade request.

    Looked up in order: `Authorization: Bearer <t>` (SDK clients), a `Sec-WebSocket-Protocol` offer
    `token.<t>` (browsers cannot set headers, so the demo page offers
    `["voice-gateway.v1", "token.<t>"]`), then `?token=<t>`. The subprotocol to echo is
    `voice-gateway.v1` when offered, else None; the `token.` entry is never echoed. A browser that
    offers subprotocols fails the connection unless one is echoed, so clients using the
    `token.` form must offer `voice-gateway.v1` too.
    """
    token: str | None = None
    for value in _header_values(headers, "authorization"):
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            token = credentials.strip()
            break
    offered = [p.strip() for v in _header_values(headers, "sec-websocket-protocol") for p in v.split(",")]
    if token is None:
        token = next((p[len(TOKEN_SUBPROTOCOL_PREFIX):] for p in offered
                      if p.startswith(TOKEN_SUBPROTOCOL_PREFIX) and len(p) > len(TOKEN_SUBPROTOCOL_PREFIX)), None)
    if token is None:
        qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        token = next((v for k, v in parse_qsl(qs, keep_blank_values=False) if k == "token"), None)
    return token, (SUBPROTOCOL if SUBPROTOCOL in offered else None)


_SECRET_QUERY_KEYS = r"token|key|api_key|apikey|access_token|signature"


def redact_query(qs: str) -> str:
    """`a=1&token=abc` → `a=1&token=***`, for logging request targets."""
    return re.sub(rf"(?i)(^|[?&;])({_SECRET_QUERY_KEYS})=[^&;#]*", r"\1\2=***", qs)


# -- browser origins ----------------------------------------------------------------------------
def _normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def check_origin(origin: str | None, allowed: frozenset[str], *, host: str | None = None,
                 public_bind: bool = False) -> None:
    """Refuse cross-site browser upgrades (raises `Unauthorized` with `status` 403).

    - No `Origin` header: not a browser (SDKs, telephony vendors); allowed; tokens still apply.
    - The origin is listed in `allowed` (`VG_ALLOWED_ORIGINS`, `scheme://host[:port]`; `*` = any).
    - The origin is this gateway itself (its host[:port] equals the request `Host`): the demo page.
    - `allowed` is empty and the bind is loopback: any origin (local development).
    Anything else, in particular a cross-origin page on a public bind with an empty list, is refused.
    """
    if origin is None:
        return
    norm = _normalize_origin(origin)
    listed = {_normalize_origin(o) for o in allowed}
    if "*" in listed or norm in listed:
        return
    if host and urlsplit(norm).netloc == host.strip().lower():
        return
    if not listed and not public_bind:
        return
    raise _unauthorized("origin", "this origin is not allowed", status=403)


# -- Twilio -------------------------------------------------------------------------------------
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def _with_and_without_port(url: str) -> list[str]:
    """Twilio signs the URL as it dialled it; its own validators try it with and without the
    scheme's default port, because proxies add or strip `:443`."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or parts.hostname is None:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    if port is None:
        alt = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))
    elif port == default:
        alt = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    else:
        return [url]
    return [url, alt]


def verify_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Twilio request signing (`X-Twilio-Signature`): base64(HMAC-SHA1(auth token, URL + every POST
    parameter as key+value, sorted by key)). For a Media Streams upgrade `params` is empty and `url`
    is the public `wss://` URL including its query string (docs/telephony.md §1)."""
    if not auth_token or not signature:
        return False
    body = "".join(k + params[k] for k in sorted(params))
    given = signature.strip().encode()
    ok = False
    for candidate in _with_and_without_port(url):
        mac = hmac.new(auth_token.encode(), (candidate + body).encode(), hashlib.sha1).digest()
        ok |= hmac.compare_digest(base64.b64encode(mac), given)
    return ok


def twilio_stream_url(public_url: str | None, host: str | None, path: str, query_string: str) -> str:
    """The URL Twilio signed for a `<Stream>` upgrade: the public root (`VG_PUBLIC_URL`, already
    ws(s)://) or, without one, `wss://` + the Host header, then the request path and query. Behind a
    proxy that rewrites Host, only VG_PUBLIC_URL gives the URL Twilio dialled."""
    base = public_url.rstrip("/") if public_url else f"wss://{(host or '').strip()}"
    return base + path + (f"?{query_string}" if query_string else "")


# -- Vonage -------------------------------------------------------------------------------------
VONAGE_JWT_MAX_AGE_S = 300.0  # a signed upgrade is made at once; an older token is a replay


def verify_vonage_jwt(signature_secret: str, authorization_header: str | None, *,
                      now: float | None = None, max_age_s: float = VONAGE_JWT_MAX_AGE_S) -> bool:
    """Vonage's `authorization: {"type": "vonage"}` on a websocket endpoint: `Authorization: Bearer
    <JWT>`, the same token as its signed webhooks: HS256 keyed with the account's signature secret.
    Accepted when the MAC verifies, `iat` is present and no older than `max_age_s` (nor more than
    60 s in the future), and `exp`, when present, has not passed."""
    import jwt  # PyJWT; imported here so the rest of the gateway does not pay for it

    scheme, _, token = (authorization_header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > _MAX_TOKEN_CHARS:
        return False
    at = time.time() if now is None else now
    try:
        claims = jwt.decode(token.strip(), signature_secret, algorithms=["HS256"],
                            options={"require": ["iat"], "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError:
        return False
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not at - max_age_s <= iat <= at + 60:
        return False
    return not (isinstance(exp, int | float) and exp <= at)


# -- operator API -------------------------------------------------------------------------------
class AdminAuth:
    """`Authorization: Bearer $VG_ADMIN_TOKEN` for /admin/*.

    Raises `Unauthorized` whose `status` is 401 (no or malformed credentials) or 403 (wrong token,
    or the admin API is disabled). With no admin token configured the API is open on a loopback
    bind (local development, like `make run`) and disabled on a public bind.
    """

    def __init__(self, admin_token: str | None, *, bind_host: str = "127.0.0.1") -> None:
        self._token = admin_token.encode() if admin_token else None
        self._public_bind = not is_loopback_host(bind_host)

    def __repr__(self) -> str:
        return f"AdminAuth(configured={self._token is not None}, public_bind={self._public_bind})"

    @property
    def enabled(self) -> bool:
        return self._token is not None or not self._public_bind

    def check(self, authorization_header: str | None) -> None:
        if self._token is None:
            if self._public_bind:
                raise _unauthorized("bad", "the admin API is disabled: set VG_ADMIN_TOKEN", status=403)
            return
        scheme, _, credentials = (authorization_header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("missing", "admin endpoints need Authorization: Bearer <token>", status=401)
        if not hmac.compare_digest(credentials.strip().encode("utf-8", "surrogatepass"), self._token):
            raise _unauthorized("bad", "the admin token is not valid", status=403)


# -- `voice-gateway token` ----------------------------------------------------------------------
def run_token(args: argparse.Namespace) -> int:
    """Print one signed client token (args: ttl, subject, allow_switch)."""
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        print(f"voice-gateway token: set {SECRET_ENV} to the gateway's client token signing secret",
              file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("voice-gateway token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    auth = ClientAuth(frozenset(), secret)
    print(auth.mint(args.subject, args.ttl, allow_switch=args.allow_switch))
    return 0
