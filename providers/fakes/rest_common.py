"""Base of the REST fake providers (one-shot transcription APIs): an aiohttp server on loopback with
request numbering, recording and fault injection by request number.

Invariants: requests are numbered from 1 per server instance (every path, models list included); nothing
secret (Authorization, keys) is recorded; a fault answers in the provider's own error shape.

HTTP fault SPEC (tests and `voice-gateway fake-provider --faults`): rules separated by `;`, each
    <request>:<kind>[,key=value ...]      request: a number (1-based), a range `2-4`, or `*`
  kind: status (key status=400..599, retry_after=S; 429 without retry_after sends no Retry-After) |
        delay (key ms=, added before the answer) | stall (never answer) |
        malformed (200 with a body that is not JSON) | reset (TCP abort, no answer)
Example: "1:status,status=429,retry_after=2;2-4:status,status=503;*:delay,ms=20"
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from gateway.errors import ConfigError

log = logging.getLogger("providers.fakes.rest")

HttpFaultKind = Literal["status", "delay", "stall", "malformed", "reset"]
HTTP_FAULT_KINDS = ("status", "delay", "stall", "malformed", "reset")
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie"})
Handler = Callable[[web.Request, "RequestRecord"], Awaitable[web.StreamResponse]]


@dataclass(slots=True, kw_only=True)
class HttpFault:
    kind: HttpFaultKind
    status: int | None = None
    retry_after: float | None = None
    ms: float = 0.0


@dataclass(slots=True)
class HttpFaultScript:
    rules: list[tuple[tuple[int, int] | None, HttpFault]] = field(default_factory=list)

    @classmethod
    def parse(cls, spec: str | None) -> HttpFaultScript:
        script = cls()
        for rule in (spec or "").split(";"):
            if rule.strip():
                script.rules.append(_parse_rule(rule.strip()))
        return script

    def add(self, request: int | str, fault: HttpFault) -> HttpFaultScript:
        self.rules.append((_parse_range(str(request)), fault))
        return self

    def for_request(self, number: int) -> list[HttpFault]:
        return [f for rng, f in self.rules if rng is None or rng[0] <= number <= rng[1]]


def _parse_range(text: str) -> tuple[int, int] | None:
    text = text.strip()
    if text == "*":
        return None
    try:
        lo, _, hi = text.partition("-")
        bounds = (int(lo), int(hi or lo))
    except ValueError:
        raise ConfigError(f"fault rule: bad request selector {text!r}") from None
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise ConfigError(f"fault rule: bad request range {text!r}")
    return bounds


def _parse_rule(rule: str) -> tuple[tuple[int, int] | None, HttpFault]:
    selector, sep, rest = rule.partition(":")
    kind, *pairs = [p.strip() for p in rest.split(",")]
    if not sep or kind not in HTTP_FAULT_KINDS:
        raise ConfigError(f"fault rule {rule!r}: expected <request>:<{'|'.join(HTTP_FAULT_KINDS)}>[,key=value]")
    values: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = (x.strip() for x in pair.partition("="))
        try:
            if key == "status":
                values[key] = int(value)
            elif key in ("retry_after", "ms") and eq:
                values[key] = float(value)
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(f"fault rule {rule!r}: bad option {pair!r}") from None
    fault = HttpFault(kind=kind, **values)  # type: ignore[arg-type]
    if fault.kind == "status" and not (fault.status and 400 <= fault.status <= 599):
        raise ConfigError(f"fault rule {rule!r}: status needs status=400..599")
    return _parse_range(selector), fault


@dataclass(slots=True)
class RequestRecord:
    number: int
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, secrets removed
    fields: dict[str, str] = field(default_factory=dict)  # multipart form fields except the file
    body_bytes: int = 0
    status: int | None = None  # what we answered (None: reset or stalled)
    fault: str | None = None  # the fault kind that fired
    transcript: str | None = None


class RestFake:
    """Subclasses set `provider`, `max_body_bytes`, `routes()` and `error_response()`.

    `await fake.start()` → `fake.url` ("http://127.0.0.1:PORT", the origin); `fake.requests` lists every
    request; `fake.hits(path)` counts requests to a path. `api_key=None` accepts any non-empty key.
    """

    provider = ""
    max_body_bytes = 64 * 1024 * 1024
    stall_max_s = 60.0

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 faults: HttpFaultScript | None = None, seed: int = 0, ssl_context: Any = None,
                 keep_requests: int | None = None, max_concurrent: int | None = None) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.faults = faults or HttpFaultScript()
        self.seed = seed
        self.ssl_context = ssl_context
        self.keep_requests = keep_requests  # long-lived embedded use: bounded recording
        self.max_concurrent = max_concurrent  # more requests in flight than this get 429 (Deepgram: 100)
        self._in_flight = 0
        self.requests: list[RequestRecord] = []
        self._numbered = 0
        self._runner: web.AppRunner | None = None
        self._stop = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("fake server not started")
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    async def start(self) -> RestFake:
        app = web.Application(client_max_size=self.max_body_bytes + 1024 * 1024)
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._wrap(handler))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RestFake:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    # -- subclass API -------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Handler]]:
        raise NotImplementedError

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        raise NotImplementedError

    def credential(self, request: web.Request) -> str | None:
        """The key the request carries (Bearer by default)."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def key_ok(self, key: str | None) -> bool:
        if not key:
            return False
        if self.api_key is None:
            return True
        return hmac.compare_digest(key.encode(), self.api_key.encode())

    async def read_body(self, request: web.Request) -> bytes | web.Response:
        """The raw body, or the provider's 413 when it exceeds `max_body_bytes`."""
        if (request.content_length or 0) > self.max_body_bytes:
            return self.too_large()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self.too_large()
        return self.too_large() if len(body) > self.max_body_bytes else body

    def too_large(self) -> web.Response:
        return self.error_response(413, "Request Entity Too Large", "request_too_large")

    # -- plumbing -----------------------------------------------------------------------------------
    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            self._numbered += 1
            record = RequestRecord(
                number=self._numbered, method=request.method, path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS})
            self.requests.append(record)
            if self.keep_requests is not None and len(self.requests) > self.keep_requests:
                del self.requests[: len(self.requests) - self.keep_requests]
            self._in_flight += 1
            try:
                response = await self._apply_faults(request, record)
                if response is None:
                    if not self.key_ok(self.credential(request)):
                        response = self.error_response(401, "Invalid API Key", "invalid_api_key")
                    elif self.max_concurrent is not None and self._in_flight > self.max_concurrent:
                        response = self.error_response(429, "Too many requests. Please try again later.",
                                                       "rate_limit_exceeded")
                    else:
                        response = await handler(request, record)
            finally:
                self._in_flight -= 1
            record.status = response.status
            return response

        return run

    async def _apply_faults(self, request: web.Request, record: RequestRecord) -> web.StreamResponse | None:
        for fault in self.faults.for_request(record.number):
            if fault.kind == "delay":
                await asyncio.sleep(fault.ms / 1000.0)
                continue
            record.fault = fault.kind
            if fault.kind == "status":
                status = fault.status or 500
                response = self.error_response(status, _FAULT_MESSAGES.get(status, "Fault injected"),
                                               _FAULT_CODES.get(status))
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
                return response
            if fault.kind == "malformed":
                return web.Response(status=200, body=b'{"text": "trunc', content_type="application/json")
            if fault.kind == "reset":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError  # aiohttp ends the handler quietly on a lost client
            if fault.kind == "stall":
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.stall_max_s)
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
        return None


_FAULT_MESSAGES = {400: "Bad Request", 401: "Invalid API Key", 402: "Payment Required",
                   403: "Insufficient permissions", 408: "Request Timeout", 413: "Request Entity Too Large",
                   422: "Unprocessable Entity", 429: "Rate limit reached", 500: "Internal server error",
                   502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout"}
_FAULT_CODES = {401: "invalid_api_key", 413: "request_too_large", 429: "rate_limit_exceeded",
                500: "server_error", 503: "server_error"}
