"""Settings: the environment parsed once, at start-up, into frozen dataclasses (docs/configuration.md).

Nothing else reads os.environ. Every secret loaded here is registered with gateway.logs so it is
masked in all log output, and error messages name the variable, never its secret value.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from gateway.breaker import BreakerPolicy
from gateway.chains.settings import VARIABLES as CHAIN_VARIABLES
from gateway.chains.settings import ChainSettings, load_chain_settings
from gateway.errors import ConfigError
from gateway.logs import LEVELS, MASK, register_secret
from gateway.models import LEGACY_MODEL_SETTINGS, MODEL_SETTINGS, retirement_warnings
from gateway.retry import ReconnectPolicy
from providers.registry import PROVIDER_NAMES as PROVIDERS
from providers.registry import PROVIDERS as PROVIDER_ENTRIES

# Real endpoints, with the base-URL meaning of docs/configuration.md (Gemini/Deepgram: origin; OpenAI: + /v1).
OFFICIAL_BASE_URLS = {name: entry.live_base_url for name, entry in PROVIDER_ENTRIES.items()}
# The default VG_FALLBACK_CHAIN (GPT-Live is opt-in: it bills by duration).
DEFAULT_FALLBACK: tuple[str, ...] = ("gemini", "openai", "deepgram")
SECRET_FIELDS = frozenset({"api_key", "client_tokens", "client_token_secret", "admin_token",
                           "twilio_auth_token", "vonage_signature_secret"})
LOG_FORMATS = ("json", "console")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    name: str
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None  # ws(s)://, normalised; None = official endpoint (or simulated)
    model: str | None = None
    simulated: bool = True  # neither key nor base URL: the embedded fake server (docs/configuration.md)
    api_key_file: str | None = None  # *_API_KEY_FILE: watched, re-read on change or SIGHUP (rotation)

    def __repr__(self) -> str:
        key = MASK if self.api_key else None
        return (f"ProviderSettings(name={self.name!r}, api_key={key!r}, base_url={self.base_url!r}, "
                f"model={self.model!r}, simulated={self.simulated})")

    @property
    def mode(self) -> str:
        return "simulated" if self.simulated else "live"

    @property
    def key_source(self) -> str:
        """Where the key comes from, never the key: env | file:<path> | simulated | none."""
        if self.simulated:
            return "simulated"
        if self.api_key_file:
            return f"file:{self.api_key_file}"
        return "env" if self.api_key else "none"

    @property
    def live_base_url(self) -> str:
        """Where a live link goes: the configured base URL, else the provider's official one."""
        return self.base_url or OFFICIAL_BASE_URLS[self.name]


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    """Fleet mode (docs/fleet.md): on when `redis_url` is set; otherwise one process, no Redis."""
    redis_url: str | None = field(default=None, repr=False)  # may carry a password: a secret
    replica_id: str = ""  # "" = hostname-pid, filled at load time
    replica_url: str | None = None  # how other replicas reach this one; None = http://host:port
    ttl_s: float = 15.0  # call and replica keys expire this long after the last heartbeat
    heartbeat_s: float = 5.0
    forward_timeout_s: float = 5.0  # an owner that does not answer a forwarded command in time → 504
    shared_breaker_advisories: bool = False

    @property
    def enabled(self) -> bool:
        return self.redis_url is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    providers: dict[str, ProviderSettings] = field(
        default_factory=lambda: {name: ProviderSettings(name=name) for name in PROVIDERS})
    default_provider: str = "gemini"
    fallback_chain: tuple[str, ...] = DEFAULT_FALLBACK
    client_tokens: tuple[str, ...] = field(default=(), repr=False)
    client_token_secret: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    reconnect: ReconnectPolicy = ReconnectPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    replay_buffer_chunks: int = 100
    openai_rotate_after_s: float = 3300.0
    return_to_primary_after_s: float | None = None  # None: stay on the fallback provider
    drain_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    max_message_bytes: int = 65536
    max_frames_per_s: int = 200
    max_bytes_per_s: int = 0  # 0: derived from each call's audio format (8× its real-time rate)
    twilio_auth_token: str | None = field(default=None, repr=False)
    # The gateway's root as the vendors dial it, always ws:// or wss:// (https:// is read as wss://):
    # Twilio signs the <Stream> URL, which is this plus the endpoint path.
    public_url: str | None = None
    vonage_signature_secret: str | None = field(default=None, repr=False)  # Vonage signed-JWT key
    log_format: str = "json"  # "console": one readable line per record, for a terminal
    simulated_speech: bool = True  # simulated providers recognise and speak English (providers/fakes/speech.py)
    environment: str = "development"  # VG_ENV: development | staging | production
    key_watch_interval_s: float = 2.0  # how often *_API_KEY_FILE is checked for a rotated key
    fleet: FleetSettings = FleetSettings()
    chains: ChainSettings = field(default_factory=ChainSettings)  # one-shot provider chains (docs/chains.md)

    @property
    def client_auth_configured(self) -> bool:
        return bool(self.client_tokens or self.client_token_secret)

    def to_public_dict(self) -> dict[str, Any]:
        """Every setting, JSON-ready, secrets replaced by "***" (set) or null (unset)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                out[f.name] = MASK if value else None
            elif f.name == "providers":
                out[f.name] = {name: {"api_key": MASK if p.api_key else None, "base_url": p.base_url,
                                      "model": p.model, "mode": p.mode, "key_source": p.key_source}
                               for name, p in value.items()}
            elif f.name == "chains":
                out[f.name] = value.to_public_dict()
            elif f.name in ("reconnect", "breaker"):
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
            elif f.name == "fleet":
                out[f.name] = {g.name: (MASK if g.name == "redis_url" and value.redis_url else
                                        getattr(value, g.name)) for g in fields(value)}
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


# -- parsing helpers -----------------------------------------------------------------------------
class _Env:
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


def _ws_base_url(var: str, text: str | None) -> str | None:
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


def _provider_settings(env: _Env, name: str) -> ProviderSettings:
    # GPT-Live is reached with the OpenAI key and base URL (the SDK's `{websocket_base_url}/live/sessions`)
    upper = (PROVIDER_ENTRIES[name].credentials_of or name).upper()
    api_key = env.secret(f"{upper}_API_KEY")
    base_url = _ws_base_url(f"{upper}_BASE_URL", env.raw(f"{upper}_BASE_URL"))
    model_var = MODEL_SETTINGS.get(name, f"VG_{name.upper()}_MODEL")
    legacy = LEGACY_MODEL_SETTINGS.get(name)
    model = env.raw(model_var) or (env.raw(legacy) if legacy else None)
    return ProviderSettings(name=name, api_key=api_key, base_url=base_url, model=model,
                            simulated=api_key is None and base_url is None,
                            api_key_file=env.raw(f"{upper}_API_KEY_FILE"))


ENVIRONMENTS = ("development", "staging", "production")


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


def production_simulated(settings: Settings) -> list[str]:
    """Providers that are simulated while VG_ENV=production (each one makes /readyz fail)."""
    if settings.environment != "production":
        return []
    return [name for name, p in settings.providers.items() if p.simulated]


def _check_providers(var: str, names: tuple[str, ...], *, allow_auto: bool = False) -> None:
    allowed = PROVIDERS + (("auto",) if allow_auto else ())
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{var}: unknown provider {name!r}; expected one of {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{var} lists a provider twice")


def _origins(env: _Env) -> tuple[str, ...]:
    origins = tuple(o.rstrip("/") for o in env.names("VG_ALLOWED_ORIGINS", ()))
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path):
            raise ConfigError(f"VG_ALLOWED_ORIGINS: {origin!r} is not an origin like https://host[:port] or *")
    return origins


def _public_url(env: _Env) -> str | None:
    """The URL vendors dial, as ws(s)://: Twilio signs `wss://host[:port]/v1/twilio`, so an
    https:// value means wss:// (and http:// ws://), with any path prefix a proxy adds kept."""
    text = env.raw("VG_PUBLIC_URL")
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ConfigError("VG_PUBLIC_URL must be a wss://, ws://, https:// or http:// URL with a host, "
                          f"got {text!r}")
    return _ws_base_url("VG_PUBLIC_URL", text)


def _log_format(env: _Env) -> str:
    value = (env.raw("VG_LOG_FORMAT") or "json").lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"VG_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


def _return_to_primary(env: _Env) -> float | None:
    text = env.raw("VG_RETURN_TO_PRIMARY_AFTER_S")
    if text is None or text.lower() in ("off", "none", "0"):
        return None
    return env.seconds("VG_RETURN_TO_PRIMARY_AFTER_S", 0.0)


def _reconnect(env: _Env) -> ReconnectPolicy:
    initial = env.seconds("VG_RECONNECT_INITIAL_BACKOFF_S", 1.0, allow_zero=True)
    max_backoff = env.seconds("VG_RECONNECT_MAX_BACKOFF_S", max(16.0, initial))
    if max_backoff < initial:
        raise ConfigError("VG_RECONNECT_MAX_BACKOFF_S must be >= VG_RECONNECT_INITIAL_BACKOFF_S")
    return ReconnectPolicy(
        max_attempts=env.integer("VG_RECONNECT_MAX_ATTEMPTS", 5),
        initial_backoff_s=initial, max_backoff_s=max_backoff,
        jitter_s=env.seconds("VG_RECONNECT_JITTER", 0.0, allow_zero=True),
        connect_timeout_s=env.seconds("VG_CONNECT_TIMEOUT_S", 10.0))


def _breaker(env: _Env) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=env.integer("VG_BREAKER_FAILURE_THRESHOLD", 5),
        open_timeout_s=env.seconds("VG_BREAKER_OPEN_TIMEOUT_S", 60.0),
        half_open_max_calls=env.integer("VG_BREAKER_HALF_OPEN_MAX_CALLS", 3),
        success_threshold=env.integer("VG_BREAKER_SUCCESS_THRESHOLD", 2))


def _fleet(env: _Env) -> FleetSettings:
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


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse `environ` (default os.environ) once. Raises ConfigError naming the bad variable."""
    env = _Env(os.environ if environ is None else environ)
    providers = {name: _provider_settings(env, name) for name in PROVIDERS}
    default_provider = env.raw("VG_DEFAULT_PROVIDER") or "gemini"
    _check_providers("VG_DEFAULT_PROVIDER", (default_provider,), allow_auto=True)
    fallback_chain = env.names("VG_FALLBACK_CHAIN", DEFAULT_FALLBACK)
    if not fallback_chain:
        raise ConfigError("VG_FALLBACK_CHAIN must name at least one provider")
    _check_providers("VG_FALLBACK_CHAIN", fallback_chain)
    client_tokens = env.names("VG_CLIENT_TOKENS", ())
    for token in client_tokens:
        register_secret(token)
    log_level = (env.raw("VG_LOG_LEVEL") or "INFO").upper()
    if log_level not in LEVELS:
        raise ConfigError(f"VG_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {log_level!r}")
    return Settings(
        host=env.raw("VG_HOST") or "127.0.0.1",
        port=env.parsed("VG_PORT", 8080, int, "a TCP port 0..65535", lambda v: 0 <= v <= 65535),
        providers=providers, default_provider=default_provider, fallback_chain=fallback_chain,
        client_tokens=client_tokens, client_token_secret=env.secret("VG_CLIENT_TOKEN_SECRET"),
        admin_token=env.secret("VG_ADMIN_TOKEN"), allowed_origins=_origins(env), log_level=log_level,
        reconnect=_reconnect(env), breaker=_breaker(env),
        replay_buffer_chunks=env.integer("VG_REPLAY_BUFFER_CHUNKS", 100),
        openai_rotate_after_s=env.seconds("VG_OPENAI_ROTATE_AFTER_S", 3300.0),
        return_to_primary_after_s=_return_to_primary(env),
        drain_timeout_s=env.seconds("VG_DRAIN_TIMEOUT_S", 30.0, allow_zero=True),
        idle_timeout_s=env.seconds("VG_IDLE_TIMEOUT_S", 60.0),
        max_frames_per_s=env.integer("VG_MAX_FRAMES_PER_S", 200),
        max_bytes_per_s=env.integer("VG_MAX_BYTES_PER_S", 0, minimum=0),
        twilio_auth_token=env.secret("TWILIO_AUTH_TOKEN"), public_url=_public_url(env),
        vonage_signature_secret=env.secret("VONAGE_SIGNATURE_SECRET"), log_format=_log_format(env),
        simulated_speech=env.parsed("VG_SIMULATED_SPEECH", True, _on_off, "on or off"),
        environment=_environment(env),
        key_watch_interval_s=env.seconds("VG_KEY_WATCH_INTERVAL_S", 2.0),
        fleet=_fleet(env),
        chains=load_chain_settings(env, providers))


def _on_off(text: str) -> bool:
    value = text.lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(text)


def _environment(env: _Env) -> str:
    name = (env.raw("VG_ENV") or "development").lower()
    if name not in ENVIRONMENTS:
        raise ConfigError(f"VG_ENV must be one of {', '.join(ENVIRONMENTS)}, got {name!r}")
    return name


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
