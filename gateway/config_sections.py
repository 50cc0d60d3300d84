"""One parser per group of settings (providers, origins, URLs, reconnect, breaker, fleet, the
Deepgram agent's thinking, ...): each reads its variables through `Env` and refuses bad values
with a ConfigError naming the variable.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from gateway.breaker import BreakerPolicy
from gateway.config_env import Env, ws_base_url
from gateway.errors import ConfigError
from gateway.logs import register_secret
from gateway.models import LEGACY_MODEL_SETTINGS, MODEL_SETTINGS
from gateway.retry import ReconnectPolicy
from gateway.settings import LOG_FORMATS, FleetSettings, ProviderSettings
from providers.registry import PROVIDER_NAMES as PROVIDERS
from providers.registry import PROVIDERS as PROVIDER_ENTRIES


def provider_settings(env: Env, name: str) -> ProviderSettings:
    # GPT-Live is reached with the OpenAI key and base URL (the SDK's `{websocket_base_url}/live/sessions`)
    upper = (PROVIDER_ENTRIES[name].credentials_of or name).upper()
    api_key = env.secret(PROVIDER_ENTRIES[name].key_setting)
    base_url = ws_base_url(f"{upper}_BASE_URL", env.raw(f"{upper}_BASE_URL"))
    model_var = MODEL_SETTINGS.get(name, f"VG_{name.upper()}_MODEL")
    legacy = LEGACY_MODEL_SETTINGS.get(name)
    model = env.raw(model_var) or (env.raw(legacy) if legacy else None)
    return ProviderSettings(name=name, api_key=api_key, base_url=base_url, model=model,
                            simulated=api_key is None and base_url is None,
                            api_key_file=env.raw(f"{PROVIDER_ENTRIES[name].key_setting}_FILE"))


ENVIRONMENTS = ("development", "staging", "production")


def check_providers(var: str, names: tuple[str, ...], *, allow_auto: bool = False) -> None:
    allowed = PROVIDERS + (("auto",) if allow_auto else ())
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{var}: unknown provider {name!r}; expected one of {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{var} lists a provider twice")


def allowed_origins(env: Env) -> tuple[str, ...]:
    origins = tuple(o.rstrip("/") for o in env.names("VG_ALLOWED_ORIGINS", ()))
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
            raise ConfigError(f"VG_ALLOWED_ORIGINS: {origin!r} is not an origin like https://host[:port] or *")
    return origins


def public_url(env: Env) -> str | None:
    """The URL vendors dial, as ws(s)://: Twilio signs `wss://host[:port]/v1/twilio`, so an
    https:// value means wss:// (and http:// ws://), with any path prefix a proxy adds kept."""
    text = env.raw("VG_PUBLIC_URL")
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ConfigError("VG_PUBLIC_URL must be a wss://, ws://, https:// or http:// URL with a host, "
                          f"got {text!r}")
    return ws_base_url("VG_PUBLIC_URL", text)


def log_format(env: Env) -> str:
    value = (env.raw("VG_LOG_FORMAT") or "json").lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"VG_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


def return_to_primary(env: Env) -> float | None:
    text = env.raw("VG_RETURN_TO_PRIMARY_AFTER_S")
    if text is None or text.lower() in ("off", "none", "0"):
        return None
    return env.seconds("VG_RETURN_TO_PRIMARY_AFTER_S", 0.0)


def reconnect(env: Env) -> ReconnectPolicy:
    initial = env.seconds("VG_RECONNECT_INITIAL_BACKOFF_S", 1.0, allow_zero=True)
    max_backoff = env.seconds("VG_RECONNECT_MAX_BACKOFF_S", max(16.0, initial))
    if max_backoff < initial:
        raise ConfigError("VG_RECONNECT_MAX_BACKOFF_S must be >= VG_RECONNECT_INITIAL_BACKOFF_S")
    return ReconnectPolicy(
        max_attempts=env.integer("VG_RECONNECT_MAX_ATTEMPTS", 5),
        initial_backoff_s=initial, max_backoff_s=max_backoff,
        jitter_s=env.seconds("VG_RECONNECT_JITTER", 0.0, allow_zero=True),
        connect_timeout_s=env.seconds("VG_CONNECT_TIMEOUT_S", 10.0))


def breaker(env: Env) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=env.integer("VG_BREAKER_FAILURE_THRESHOLD", 5),
        open_timeout_s=env.seconds("VG_BREAKER_OPEN_TIMEOUT_S", 60.0),
        half_open_max_calls=env.integer("VG_BREAKER_HALF_OPEN_MAX_CALLS", 3),
        success_threshold=env.integer("VG_BREAKER_SUCCESS_THRESHOLD", 2))


def deepgram_think(env: Env) -> dict[str, Any]:
    from providers.deepgram_agent_wire import parse_think_entry  # validation lives beside the wire shape

    model = env.raw("VG_DEEPGRAM_THINK_MODEL") or "gemini-2.5-flash"
    entries = env.names("VG_DEEPGRAM_THINK_PROVIDERS", ("google",))
    for entry in entries:
        parse_think_entry(entry, default_model=model)
    url = env.raw("VG_DEEPGRAM_THINK_GATEWAY_URL")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("VG_DEEPGRAM_THINK_GATEWAY_URL must be an http(s):// URL of /v1/chat/completions")
    return {"deepgram_think_providers": entries, "deepgram_think_model": model,
            "deepgram_think_gateway_url": url,
            "deepgram_think_gateway_token": env.secret("VG_DEEPGRAM_THINK_GATEWAY_TOKEN")}


def fleet(env: Env) -> FleetSettings:
    redis_url = env.secret("VG_REDIS_URL")
    if redis_url is not None:
        parts = urlsplit(redis_url)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ConfigError("VG_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if parts.password:
            register_secret(parts.password)
    replica_url = env.raw("VG_REPLICA_URL")
    if replica_url is not None:
        parts = urlsplit(replica_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("VG_REPLICA_URL must be an http:// or https:// URL other replicas can reach")
        replica_url = replica_url.rstrip("/")
    ttl_s = env.seconds("VG_FLEET_TTL_S", 15.0)
    heartbeat_s = env.seconds("VG_FLEET_HEARTBEAT_S", ttl_s / 3)
    if heartbeat_s >= ttl_s:
        raise ConfigError("VG_FLEET_HEARTBEAT_S must be shorter than VG_FLEET_TTL_S")
    flag = (env.raw("VG_SHARED_BREAKER_ADVISORIES") or "0").lower()
    if flag not in ("0", "1", "true", "false", "on", "off", "yes", "no"):
        raise ConfigError(f"VG_SHARED_BREAKER_ADVISORIES must be 0 or 1, got {flag!r}")
    return FleetSettings(
        redis_url=redis_url, replica_id=env.raw("VG_REPLICA_ID") or f"{socket.gethostname()}-{os.getpid()}",
        replica_url=replica_url, ttl_s=ttl_s, heartbeat_s=heartbeat_s,
        forward_timeout_s=env.seconds("VG_FLEET_FORWARD_TIMEOUT_S", 5.0),
        shared_breaker_advisories=flag in ("1", "true", "on", "yes"))


def environment(env: Env) -> str:
    name = (env.raw("VG_ENV") or "development").lower()
    if name not in ENVIRONMENTS:
        raise ConfigError(f"VG_ENV must be one of {', '.join(ENVIRONMENTS)}, got {name!r}")
    return name
