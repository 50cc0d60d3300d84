"""Reading one environment variable: blank means unset, values parsed or refused with a
ConfigError that names the variable (never a secret's value), secrets registered for redaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.logs import register_secret

T = TypeVar("T")


class Env:
    """Reads one environment mapping; blank values count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return value.strip() if value is not None and value.strip() else None

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str,
               ok: Callable[[T], bool] = lambda _: True) -> T:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = parse(text)
        except ValueError:
            raise ConfigError(f"{name} must be {expected}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise ConfigError(f"{name} must be {expected}, got {text!r}")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        return self.parsed(name, default, int, f"an integer >= {minimum}", lambda v: v >= minimum)

    def seconds(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        expected = "a number of seconds >= 0" if allow_zero else "a number of seconds > 0"
        return self.parsed(name, default, float, expected, lambda v: v >= 0 if allow_zero else v > 0)

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        text = self.raw(name)
        if text is None:
            return default
        return tuple(part.strip() for part in text.split(",") if part.strip())

    def secret(self, name: str) -> str | None:
        """`NAME`, or the contents of the file named by `NAME_FILE` (Docker/K8s secrets)."""
        value, path = self.raw(name), self.raw(f"{name}_FILE")
        if value is not None and path is not None:
            raise ConfigError(f"set either {name} or {name}_FILE, not both")
        if path is not None:
            value = read_key_file(f"{name}_FILE", path)
        if value is not None:
            register_secret(value)
        return value


def ws_base_url(var: str, text: str | None) -> str | None:
    """docs/configuration.md: ws(s):// as given, http(s):// read as ws(s)://; one trailing slash dropped."""
    if text is None:
        return None
    parts = urlsplit(text)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"{var} must be a ws://, wss://, http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{var} must not carry credentials, a query or a fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{var} has an invalid port") from None
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def read_key_file(var: str, path: str) -> str:
    """The key in `path` (stripped), registered for redaction. ConfigError names the variable."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{var}: cannot read {path!r} ({exc.__class__.__name__})") from None
    if not value:
        raise ConfigError(f"{var}: {path!r} is empty")
    register_secret(value)
    return value


def on_off(text: str) -> bool:
    value = text.lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(text)
