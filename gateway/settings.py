"""The gateway's settings as frozen dataclasses (docs/configuration.md): what `load_settings`
(gateway/config.py) produces from the environment, and how a setting is shown with secrets masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from gateway.breaker import BreakerPolicy
from gateway.chains.settings import ChainSettings
from gateway.logs import MASK
from gateway.retry import ReconnectPolicy
from providers.registry import PROVIDER_NAMES as PROVIDERS
from providers.registry import PROVIDERS as PROVIDER_ENTRIES

# Real endpoints, with the base-URL meaning of docs/configuration.md (Gemini/Deepgram: origin; OpenAI: + /v1).
OFFICIAL_BASE_URLS = {name: entry.live_base_url for name, entry in PROVIDER_ENTRIES.items()}
# The default VG_FALLBACK_CHAIN (GPT-Live is opt-in: it bills by duration; `deepgram` there is the
# Voice Agent unless a call asks to transcribe).
DEFAULT_FALLBACK: tuple[str, ...] = ("gemini", "openai", "deepgram")
SECRET_FIELDS = frozenset({"api_key", "client_tokens", "client_token_secret", "admin_token",
                           "twilio_auth_token", "vonage_signature_secret", "deepgram_think_gateway_token"})
LOG_FORMATS = ("json", "console")


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
    # Deepgram Voice Agent thinking (docs/providers/deepgram-agent.md): think providers in the API's own
    # fallback order (`type` or `type:model`), the Gemini model for `google`, and optionally the
    # gateway's own OpenAI-compatible chat endpoint (issue #15) as the first think provider.
    deepgram_think_providers: tuple[str, ...] = ("google",)
    deepgram_think_model: str = "gemini-2.5-flash"
    deepgram_think_gateway_url: str | None = None
    deepgram_think_gateway_token: str | None = field(default=None, repr=False)
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


def production_simulated(settings: Settings) -> list[str]:
    """Providers that are simulated while VG_ENV=production (each one makes /readyz fail)."""
    if settings.environment != "production":
        return []
    return [name for name, p in settings.providers.items() if p.simulated]
