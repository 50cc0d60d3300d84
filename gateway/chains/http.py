"""The HTTP side of the chain runner: one aiohttp ClientSession per process, one exchange per attempt.

An exchange sends an `HttpRequest` and returns the whole `HttpResponse`, or raises `TimeoutError`
(our per-attempt timeout) or `ExchangeFailed` (connect/reset/TLS). Streaming chains will get a second
method that returns once the status line and headers are in (the commit point: no fallback after it).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import aiohttp

from providers.chains.base import HttpRequest, HttpResponse


class ExchangeFailed(Exception):
    """The request did not get an HTTP answer (refused, reset, TLS). The message names no URL or key."""


class OpenResponse(Protocol):
    """A response whose status line and headers are in and whose body is still to come."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class HttpExchange(Protocol):
    async def __call__(self, request: HttpRequest, timeout_s: float) -> HttpResponse: ...

    async def open(self, request: HttpRequest, timeout_s: float) -> OpenResponse: ...


class AiohttpExchange:
    """Owns the process's ClientSession (created on first use, closed by `close()`)."""

    def __init__(self, *, connections: int = 100, ssl_context: ssl.SSLContext | None = None) -> None:
        self._connections = connections
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl if self._ssl else True)
            # our own timeouts only (per attempt, below); no cookies; aiohttp's default UA
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def __call__(self, request: HttpRequest, timeout_s: float) -> HttpResponse:
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session.request(request.method, request.url, headers=list(request.headers),
                                                data=request.body or None, allow_redirects=False) as resp:
                    body = await resp.read()
                    return HttpResponse(status=resp.status, headers=resp.headers, body=body)
        except TimeoutError:
            raise
        except aiohttp.ClientError as err:
            raise ExchangeFailed(err.__class__.__name__) from None
        except OSError as err:
            raise ExchangeFailed(err.__class__.__name__) from None

    async def open(self, request: HttpRequest, timeout_s: float) -> OpenResponse:
        """Send and return once the status line and headers are in (the streaming commit point).
        `timeout_s` bounds the head, each later body read (idle), and `read()` as a whole."""
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self.session.request(request.method, request.url, headers=list(request.headers),
                                                  data=request.body or None, allow_redirects=False)
        except TimeoutError:
            raise
        except (aiohttp.ClientError, OSError) as err:
            raise ExchangeFailed(err.__class__.__name__) from None
        return _AiohttpOpen(resp, timeout_s)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpOpen:
    def __init__(self, resp: aiohttp.ClientResponse, idle_timeout_s: float) -> None:
        self._resp = resp
        self._idle_s = idle_timeout_s
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout(self._idle_s):
                return await self._resp.read()
        except (aiohttp.ClientError, OSError) as err:
            raise ExchangeFailed(err.__class__.__name__) from None
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; TimeoutError when none come for the idle timeout."""
        try:
            while True:
                async with asyncio.timeout(self._idle_s):
                    data = await self._resp.content.readany()
                if not data:
                    return
                yield data
        except (aiohttp.ClientError, OSError) as err:
            raise ExchangeFailed(err.__class__.__name__) from None
        finally:
            self._resp.close()

    def close(self) -> None:
        self._resp.close()
