"""Wire helpers shared by the three adapters: JSON frames, base64, secret scrubbing, and the one
table that turns a refused WebSocket upgrade (HTTP status) into the error tree.

Invariants: nothing here raises on provider input except where the docstring says so, and no text
that came from a provider leaves this module without passing through `scrub()`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import Any

import orjson
import pybase64

from gateway.errors import ProviderError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import ProviderFailed

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
# Key-like tokens a provider might echo back in an error text (OpenAI "Incorrect API key provided:
# sk-...", Google "AIza...", OpenAI ephemeral "ek_..."): masked even when they are not our key.
_KEYLIKE = re.compile(r"\b(?:sk-|ek_|AIza)[-\w*.]{6,}")
DETAIL_MAX_CHARS = 200


def dumps(obj: Any) -> str:
    """One JSON text frame (orjson emits compact UTF-8)."""
    return orjson.dumps(obj).decode()


def decode_object(frame: str | bytes) -> dict[str, Any] | None:
    """A received frame as a JSON object, or None when it is not one (bad UTF-8, bad JSON, a list)."""
    try:
        obj = orjson.loads(frame)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


# Standard alphabet with padding: what every provider accepts (pybase64: SIMD). pybase64's own
# function, not a wrapper: every uplink frame calls it, and a Python frame around it costs ~50 ns.
b64encode: Callable[[bytes], str] = pybase64.b64encode_as_string


def b64decode_any(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not. Raises ValueError on anything else
    (docs/providers/gemini.md §1: the server accepts both alphabets, so a faithful peer may send either)."""
    try:  # standard and padded, what every provider sends per audio frame: one strict pass
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    if "-" in text or "_" in text:
        text = text.translate(_URLSAFE_TO_STANDARD)
    missing = -len(text) % 4
    if missing:
        text += "=" * missing
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


def scrub(text: object, secret: str = "", *, limit: int = DETAIL_MAX_CHARS) -> str:
    """Provider-supplied text made safe for logs and error messages: our key and key-like tokens
    masked, control characters flattened, length capped."""
    out = str(text) if text is not None else ""
    if secret:
        out = out.replace(secret, "***")
    out = _KEYLIKE.sub("***", out)
    out = "".join(ch if ch.isprintable() else " " for ch in out)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def number(value: object) -> float | None:
    """A JSON number as float (bools are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def protocol_failure(provider: str, message: str) -> ProviderFailed:
    """A frame we cannot use: reported, never raised; not a breaker failure by itself."""
    error = ProviderProtocolError(message, provider=provider, error_type="protocol", breaker_failure=False)
    return ProviderFailed(error=error, fatal_for_link=False)


def classify_handshake_status(provider: str, status: int, body: str, secret: str) -> ProviderError:
    """HTTP status instead of 101 → the error tree (docs/architecture.md: 401/403 are fatal auth problems;
    429 and 5xx are retryable breaker failures; any other 4xx is our configuration)."""
    detail = scrub(body.strip(), secret) if body else ""
    message = f"{provider} refused the WebSocket upgrade with HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 403):
        return ProviderRejected(message, provider=provider, error_type="auth", status=status)
    if status == 408:
        return ProviderUnavailable(message, provider=provider, error_type="timeout", status=status)
    if status == 429:
        return ProviderUnavailable(message, provider=provider, error_type="rate_limit", status=status)
    if 500 <= status <= 599:
        return ProviderUnavailable(message, provider=provider, error_type="server", status=status)
    if 400 <= status <= 499:
        return ProviderRejected(message, provider=provider, error_type="protocol", status=status)
    return ProviderUnavailable(message, provider=provider, error_type="protocol", status=status)


def close_message(provider: str, code: int | None, reason: str, secret: str) -> str:
    """'gemini closed the connection (1008): models/x is not found ...' — names the config problem
    for the operator's error log, with the provider's reason scrubbed."""
    shown = "no close frame" if code is None else str(code)
    detail = scrub(reason, secret)
    return f"{provider} closed the connection ({shown})" + (f": {detail}" if detail else "")
