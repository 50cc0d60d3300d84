"""The contract of a chain provider: a sans-I/O request/response translator for one-shot requests.

A translator turns (options, endpoint) into an `HttpRequest` (method, URL, headers, body) and an
`HttpResponse` into a result or an `AttemptError` carrying its `ErrorClass`. It never awaits, never
touches a socket or a clock: the chain runner (gateway/chains/runner.py) owns all of that, for every
chain. Status → class is one table (`STATUS_CLASSES`); a translator may refine it (Deepgram's 504).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson

Options = TypeVar("Options")
Result = TypeVar("Result")


class ErrorClass(StrEnum):
    """Why one attempt failed. The runner's retry policy and the breaker accounting key on this."""

    RATE_LIMIT = "rate_limit"  # 429 (and Groq's 498): fall back at once
    AUTH = "auth"  # 401/403/402, quota: fall back at once, breaker forced OPEN
    TIMEOUT = "timeout"  # our per-attempt timeout or 408: one retry with a longer timeout
    SERVER = "server"  # 5xx: retries with backoff
    PROCESSING_CAP = "processing_cap"  # Deepgram 504 (its 10-minute cap): no retry, fall back
    BAD_INPUT = "bad_input"  # 400/413/422: the input's fault, never a breaker failure
    NETWORK = "network"  # connection refused/reset: the provider is down, fall back at once
    PROTOCOL = "protocol"  # a 2xx we cannot parse: like SERVER


# Metric `error_type` of ai_provider_errors_total (design.md §6 vocabulary).
METRIC_ERROR_TYPES: dict[ErrorClass, str] = {
    ErrorClass.RATE_LIMIT: "rate_limit", ErrorClass.AUTH: "auth", ErrorClass.TIMEOUT: "timeout",
    ErrorClass.SERVER: "server", ErrorClass.PROCESSING_CAP: "server", ErrorClass.BAD_INPUT: "protocol",
    ErrorClass.NETWORK: "network", ErrorClass.PROTOCOL: "protocol",
}

STATUS_CLASSES: dict[int, ErrorClass] = {
    400: ErrorClass.BAD_INPUT, 401: ErrorClass.AUTH, 402: ErrorClass.AUTH, 403: ErrorClass.AUTH,
    404: ErrorClass.BAD_INPUT, 408: ErrorClass.TIMEOUT, 409: ErrorClass.SERVER, 413: ErrorClass.BAD_INPUT,
    415: ErrorClass.BAD_INPUT, 422: ErrorClass.BAD_INPUT, 429: ErrorClass.RATE_LIMIT,
    498: ErrorClass.RATE_LIMIT,
}


def classify_status(status: int) -> ErrorClass:
    """The default class of a non-2xx status (design: the prompt-router error matrix)."""
    if status in STATUS_CLASSES:
        return STATUS_CLASSES[status]
    if status >= 500:
        return ErrorClass.SERVER
    return ErrorClass.BAD_INPUT


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEndpoint:
    """Where a chain provider is reached. `base_url` is http(s); its meaning is the provider SDK's
    (Deepgram/Groq: an origin; OpenAI: includes the API prefix `/v1`)."""

    base_url: str
    api_key: str = field(repr=False)
    key_env: str = ""  # the variable the key came from, named in auth errors (never the key)
    simulated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def __repr__(self) -> str:  # headers hold credentials
        return f"HttpRequest({self.method} {urlsplit(self.url).path}, {len(self.body)} bytes)"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive mapping (the runner passes aiohttp's CIMultiDict)
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptError:
    """One failed attempt, as the translator reads it. `message` is for logs and the attempts list:
    short, no payload echo, no secrets."""

    error_class: ErrorClass
    status: int | None = None
    message: str = ""
    provider_code: str | None = None  # e.g. Deepgram err_code, OpenAI error.code
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What the provider says it billed, fed to the cost hook."""

    audio_seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    per_minute_usd: float = 0.0
    minimum_billed_s: float = 0.0
    per_million_input_tokens_usd: float = 0.0
    per_million_output_tokens_usd: float = 0.0

    def cost_usd(self, usage: Usage) -> float:
        """Tokens when the provider reports them (gpt-4o-*), else billed audio seconds."""
        if usage.input_tokens is not None or usage.output_tokens is not None:
            return ((usage.input_tokens or 0) * self.per_million_input_tokens_usd
                    + (usage.output_tokens or 0) * self.per_million_output_tokens_usd) / 1e6
        if usage.audio_seconds is None:
            return 0.0
        return max(usage.audio_seconds, self.minimum_billed_s) / 60.0 * self.per_minute_usd


class StreamDecoder(Protocol):
    """Sans-I/O decoder of one streaming answer: body bytes in, the chain's events out. `usage` is what
    the provider reported by the end (its final event), for the cost hook."""

    usage: Usage

    def feed(self, data: bytes) -> list[Any]: ...

    def finish(self) -> list[Any]: ...


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (only the delta-seconds form; an HTTP date is ignored)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


class ChainProvider(Generic[Options, Result]):
    """One provider of one chain. Subclasses set the class facts and implement build/parse.

    `max_upload_bytes` is checked by the runner before sending (a file over it is skipped, counted
    `skipped`, without contacting the provider). `price` feeds the cost hook from `Usage`.
    """

    name: ClassVar[str] = ""
    key_env: ClassVar[str] = ""
    max_upload_bytes: ClassVar[int] = 2**31
    price: ClassVar[Price] = Price()

    def __init__(self, *, model: str | None = None, max_upload_bytes: int | None = None) -> None:
        self.model = model or self.default_model()
        if max_upload_bytes is not None:
            self.max_upload_bytes = max_upload_bytes  # type: ignore[misc]

    def default_model(self) -> str:
        return ""

    def build(self, options: Options, endpoint: ChainEndpoint) -> HttpRequest:
        raise NotImplementedError

    def parse(self, response: HttpResponse) -> Result | AttemptError:
        raise NotImplementedError

    def usage(self, result: Result) -> Usage:
        return Usage()

    def health_request(self, endpoint: ChainEndpoint) -> HttpRequest:
        """A cheap authenticated request (the models list or equivalent)."""
        raise NotImplementedError

    def upload_size(self, options: Options) -> int:
        return 0

    # -- streaming answers (SSE): the runner commits at a 2xx status line, then feeds the body here --
    streams: ClassVar[bool] = False

    def stream_decoder(self) -> StreamDecoder:
        """A fresh decoder for one committed 2xx streaming body."""
        raise NotImplementedError

    def classify(self, response: HttpResponse) -> ErrorClass:
        return classify_status(response.status)


# -- multipart/form-data, sans-I/O (RFC 7578) -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    content_type: str
    data: bytes


def encode_multipart(fields: list[tuple[str, str | FilePart]],
                     boundary: str | None = None) -> tuple[str, bytes]:
    """(content-type header value, body). Field names and filenames are ours or sanitised by the
    caller; quotes and line breaks are dropped so they cannot break the framing."""
    boundary = boundary or "vgw" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, FilePart):
            out += (f'Content-Disposition: form-data; name="{_token(name)}"; '
                    f'filename="{_token(value.filename)}"\r\n'
                    f"Content-Type: {value.content_type}\r\n\r\n").encode()
            out += value.data
        else:
            out += f'Content-Disposition: form-data; name="{_token(name)}"\r\n\r\n'.encode()
            out += value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def _token(text: str) -> str:
    return "".join(ch for ch in text if ch not in '"\r\n\\')[:200]


def error_message(body: bytes, *keys: str) -> tuple[str, str | None]:
    """(message, provider code) out of a JSON error body: OpenAI/Groq `{"error": {...}}` or Deepgram's
    flat `{err_code, err_msg}`. Never the raw body: at most 200 characters of the provider's message."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    error = data.get("error")
    inner: dict[str, Any] = error if isinstance(error, dict) else data
    message = next((str(inner[k]) for k in ("message", "err_msg", *keys) if isinstance(inner.get(k), str)), "")
    code = next((str(inner[k]) for k in ("code", "err_code", "error_code", "category")
                 if isinstance(inner.get(k), str)), None)
    return message[:200], code
