"""`voice-gateway check-config`: every configuration error at once, non-fatal warnings (unknown
variables, plaintext links, simulated providers in production) and the effective settings as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

import orjson

from gateway.chains.settings import VARIABLES as CHAIN_VARIABLES
from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.models import retirement_warnings
from gateway.settings import Settings, production_simulated


def config_warnings(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Non-fatal findings for check-config: unknown variables, plaintext links off this host,
    simulated providers in production."""
    from gateway.auth import is_loopback_host

    out = [f"{name} is not a known setting" for name in unknown_variables(environ)]
    for name, p in settings.providers.items():
        host = urlsplit(p.base_url).hostname if p.base_url else None
        if p.base_url and p.base_url.startswith("ws://") and host and not is_loopback_host(host):
            out.append(f"{name.upper()}_BASE_URL uses plaintext ws:// to the non-loopback host {host}: "
                       "the API key and the call audio would cross the network unencrypted; use wss://")
    simulated = production_simulated(settings)
    if simulated:
        out.append(f"VG_ENV=production but {', '.join(simulated)} would be simulated (no API key): "
                   "/readyz will fail")
    return out


KNOWN_VARIABLES = frozenset({
    "VG_HOST", "VG_PORT", "VG_DEFAULT_PROVIDER", "VG_FALLBACK_CHAIN", "VG_CLIENT_TOKENS",
    "VG_CLIENT_TOKEN_SECRET", "VG_CLIENT_TOKEN_SECRET_FILE", "VG_ADMIN_TOKEN", "VG_ADMIN_TOKEN_FILE",
    "VG_ALLOWED_ORIGINS", "VG_LOG_LEVEL", "VG_RECONNECT_MAX_ATTEMPTS", "VG_RECONNECT_INITIAL_BACKOFF_S",
    "VG_RECONNECT_MAX_BACKOFF_S", "VG_RECONNECT_JITTER", "VG_CONNECT_TIMEOUT_S",
    "VG_BREAKER_FAILURE_THRESHOLD", "VG_BREAKER_OPEN_TIMEOUT_S", "VG_BREAKER_HALF_OPEN_MAX_CALLS",
    "VG_BREAKER_SUCCESS_THRESHOLD", "VG_REPLAY_BUFFER_CHUNKS", "VG_OPENAI_ROTATE_AFTER_S",
    "VG_RETURN_TO_PRIMARY_AFTER_S", "VG_DRAIN_TIMEOUT_S", "VG_IDLE_TIMEOUT_S", "VG_MAX_FRAMES_PER_S",
    "VG_MAX_BYTES_PER_S", "VG_PUBLIC_URL", "VG_GEMINI_MODEL", "VG_OPENAI_MODEL", "VG_DEEPGRAM_MODEL",
    "VG_OPENAI_REALTIME_MODEL", "VG_OPENAI_LIVE_MODEL",
    # fleet mode (docs/fleet.md)
    "VG_REDIS_URL", "VG_REDIS_URL_FILE", "VG_REPLICA_ID", "VG_REPLICA_URL", "VG_FLEET_TTL_S",
    "VG_FLEET_HEARTBEAT_S", "VG_FLEET_FORWARD_TIMEOUT_S", "VG_SHARED_BREAKER_ADVISORIES",
    "VG_LOG_FORMAT", "VG_SIMULATED_SPEECH",
    "VG_ENV", "VG_KEY_WATCH_INTERVAL_S",
    "VG_DEEPGRAM_AGENT_MODEL", "VG_DEEPGRAM_THINK_MODEL", "VG_DEEPGRAM_THINK_PROVIDERS",
    "VG_DEEPGRAM_THINK_GATEWAY_URL", "VG_DEEPGRAM_THINK_GATEWAY_TOKEN", "VG_DEEPGRAM_THINK_GATEWAY_TOKEN_FILE",
}) | CHAIN_VARIABLES


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`VG_*` names we do not read: most likely typos (reported by check-config, not fatal)."""
    return sorted(name for name in environ if name.startswith("VG_") and name not in KNOWN_VARIABLES)


class _ReadRecorder(Mapping[str, str]):
    """An environment that remembers the last variable read: the parser raises right after reading
    the variable it refuses (cross-field checks read the later one last), so that is the culprit."""

    def __init__(self, environ: Mapping[str, str], unset: set[str]) -> None:
        self._environ, self._unset = environ, unset
        self.last: str | None = None

    def __getitem__(self, name: str) -> str:
        self.last = name
        if name in self._unset:
            raise KeyError(name)
        return self._environ[name]

    def __iter__(self):  # noqa: ANN204
        return (k for k in self._environ if k not in self._unset)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def config_errors(environ: Mapping[str, str]) -> list[str]:
    """Every configuration error, not only the first: parse, and after each error parse again with
    the refused variable unset (its default), until the rest parses. [] when the config is valid."""
    errors: list[str] = []
    unset: set[str] = set()
    for _ in range(len(environ) + 1):
        env = _ReadRecorder(environ, unset)
        try:
            load_settings(env)
            return errors
        except ConfigError as exc:
            if env.last is None or env.last in unset:
                return [*errors, exc.message]
            errors.append(exc.message)
            unset.add(env.last)
    return errors


def run_check_config(args: argparse.Namespace | None = None) -> int:
    """`voice-gateway check-config`: print the effective settings as JSON, secrets masked.
    Exit 0 when valid, 2 (error on stderr and in the JSON) when not."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        errors = config_errors(os.environ) or [exc.message]
        sys.stdout.write(orjson.dumps({"ok": False, "error": errors[0], "errors": errors}).decode() + "\n")
        for message in errors:
            print(f"voice-gateway check-config: {message}", file=sys.stderr)
        return 2
    report = {"ok": True,
              "environment": settings.environment,
              "providers": {name: p.mode for name, p in settings.providers.items()},
              "chain_providers": {name: p.mode for name, p in settings.chains.providers.items()},
              "key_sources": {name: p.key_source for name, p in settings.providers.items()},
              "warnings": config_warnings(settings, os.environ)
              + retirement_warnings({name: p.model for name, p in settings.providers.items()}),
              "settings": settings.to_public_dict()}
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
