"""The one error tree of the gateway.

    GatewayError
    ├── ClientError              the caller's fault; the call survives where it can
    │   ├── BadAudio             bad_audio            close 1003
    │   ├── BadMessage           bad_message          close 1003
    │   ├── Unauthorized         unauthorized         close 1008 (refused with 403 before accept)
    │   ├── RateLimited          rate_limited         close 1008
    │   └── MessageTooBig        message_too_big      close 1009
    ├── ProviderError            the provider's side
    │   ├── ProviderRejected     fatal for the link: auth/config; no retry loop   (error_type auth)
    │   ├── ProviderUnavailable  retryable: network, timeout, 5xx, 429, 1006/1011 (error_type varies)
    │   └── ProviderProtocolError the provider said something we cannot parse     (error_type protocol)
    ├── CircuitOpen              a breaker refused the call (carries retry_after_s)
    └── ConfigError              invalid settings at start-up

Each class maps to exactly one client `error.code`, one WebSocket close code and one metric
`error_type` label, here and nowhere else. Messages never carry payloads, audio or secrets.
Structured facts (provider, retry_after_s, reason, status, stale_handle) are constructor arguments.
"""

from __future__ import annotations


class GatewayError(Exception):
    code: str = "internal_error"
    close_code: int = 1011
    error_type: str = "internal"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        if code is not None:  # a more specific stable code within the class (e.g. session_not_started)
            self.code = code
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()

    @property
    def fields(self) -> dict[str, object]:
        """The structured facts of this error (constructor arguments), for logs; never secrets."""
        return {}


# -- the caller's fault -------------------------------------------------------------------------
class ClientError(GatewayError):
    """The client sent something we cannot use."""

    code = "bad_message"
    close_code = 1003
    error_type = "client"


class BadAudio(ClientError):
    """Audio that does not fit the declared format."""

    code = "bad_audio"


class BadMessage(ClientError):
    """A message that is not valid for the protocol in this state."""

    code = "bad_message"


class Unauthorized(ClientError):
    """Missing, bad or expired credentials."""

    code = "unauthorized"
    close_code = 1008

    def __init__(self, message: str = "", *, reason: str = "bad", status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason  # missing | bad | expired | origin: a log field
        self.status = status  # the HTTP status an HTTP endpoint answers with

    @property
    def fields(self) -> dict[str, object]:
        return {"reason": self.reason, "status": self.status}


class RateLimited(ClientError):
    """The connection exceeded its frame or byte rate ceiling."""

    code = "rate_limited"
    close_code = 1008


class MessageTooBig(ClientError):
    """A message over the size limit."""

    code = "message_too_big"
    close_code = 1009


# -- the provider's side ------------------------------------------------------------------------
class ProviderError(GatewayError):
    """The provider link failed."""

    code = "provider_error"
    retryable: bool = True

    def __init__(self, message: str = "", *, provider: str = "", error_type: str | None = None,
                 breaker_failure: bool = True, stale_handle: bool = False, provider_close_code: int | None = None,
                 status: int | None = None, provider_code: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.provider_close_code = provider_close_code  # the provider's WebSocket close code, if it closed
        self.status = status  # the HTTP status of a refused upgrade
        self.provider_code = provider_code  # the provider's own error code (scrubbed)
        # Gemini: the resumption handle we offered is unknown; reconnect without it
        self.stale_handle = stale_handle
        if error_type is not None:
            self.error_type = error_type
        # Some unexpected closes need a reconnect but are not breaker failures (an unexpected 1000,
        # Deepgram's idle close that we caused). error_type labels metrics:
        # timeout/auth/rate_limit/server/protocol/network.
        self.breaker_failure = breaker_failure
        # a refused upgrade's Retry-After (seconds): the next attempt waits at least this long
        self.retry_after_s: float | None = None

    @property
    def fields(self) -> dict[str, object]:
        facts = {"close_code": self.provider_close_code, "status": self.status,
                 "provider_code": self.provider_code, "stale_handle": self.stale_handle or None,
                 "retry_after_s": self.retry_after_s}
        return {k: v for k, v in facts.items() if v is not None}


class ProviderRejected(ProviderError):
    """The provider refused our credentials or configuration; retrying cannot help."""

    code = "provider_rejected"
    error_type = "auth"
    retryable = False


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or failed; a retry may succeed."""

    code = "provider_unavailable"
    error_type = "network"
    retryable = True


class ProviderProtocolError(ProviderError):
    """The provider sent something that does not follow its protocol."""

    code = "provider_protocol_error"
    error_type = "protocol"
    retryable = True


class CircuitOpen(GatewayError):
    """A circuit breaker refused the call."""

    code = "provider_unavailable"
    error_type = "circuit_open"

    def __init__(self, message: str, *, retry_after_s: float, breaker: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.breaker = breaker


class ConfigError(GatewayError):
    """Invalid configuration."""

    code = "config_error"
    error_type = "config"
