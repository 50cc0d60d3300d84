"""Chain settings (one-shot provider chains), parsed once at start-up with the rest of Settings.

Keys are shared with live calls where the provider is the same (DEEPGRAM_API_KEY, OPENAI_API_KEY);
Groq is chain-only. Base URLs keep each SDK's meaning (Deepgram/Groq: an origin; OpenAI: with `/v1`);
`ws(s)://` is read as `http(s)://`. A provider with neither key nor base URL is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from providers.chains.prices import PriceTable, load_prices
from providers.registry import CHAIN_PROVIDER_NAMES as CHAIN_PROVIDERS
from providers.registry import CHAIN_PROVIDERS as _ENTRIES
from providers.registry import CHAIN_TRANSLATORS, CHAINS

# the chat chains' model per (chain, provider), from these variables (defaults: the translators')
CHAT_MODEL_VARIABLES = {("reasoning", "minimax"): "MINIMAX_LIGHTNING_MODEL",
                        ("vision", "minimax"): "MINIMAX_VISION_MODEL",
                        ("reasoning", "openrouter"): "OPENROUTER_MINIMAX_MODEL",
                        ("vision", "openrouter"): "OPENROUTER_QWEN_MODEL",
                        ("vision", "openai"): "OPENAI_GPT4V_MODEL",
                        ("reasoning", "anthropic"): "ANTHROPIC_HAIKU_MODEL"}

OFFICIAL_REST_URLS = {name: e.rest_base_url for name, e in _ENTRIES.items()}
KEY_ENV = {name: e.key_env for name, e in _ENTRIES.items()}
UPLOAD_LIMIT_BYTES = 25 * 1024 * 1024  # the gateway's own body limit (413 above it)
VARIABLES = frozenset({"VG_TRANSCRIPTION_CHAIN", "VG_VISION_CHAIN", "VG_REASONING_CHAIN",
                       "MINIMAX_LIGHTNING_MODEL", "MINIMAX_VISION_MODEL", "OPENROUTER_MINIMAX_MODEL",
                       "OPENROUTER_QWEN_MODEL", "OPENAI_GPT4V_MODEL", "ANTHROPIC_HAIKU_MODEL", "VG_CHAIN_ATTEMPT_TIMEOUT_S", "VG_CHAIN_DEADLINE_S",
                       "VG_CHAIN_RETRY_BACKOFF_S", "VG_CHAIN_RETRY_AFTER_MAX_S", "VG_DEEPGRAM_STT_MODEL",
                       "VG_GROQ_STT_MODEL", "VG_PRICES_FILE"})


class _EnvReader(Protocol):  # gateway.config_env.Env, without importing it (config imports us)
    def raw(self, name: str) -> str | None: ...

    def secret(self, name: str) -> str | None: ...

    def seconds(self, name: str, default: float, *, allow_zero: bool = False) -> float: ...

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]: ...

    def integer(self, name: str, default: int, minimum: int = 1) -> int: ...

    def parsed(self, name: str, default: Any, parse: Any, expected: str, ok: Any = ...) -> Any: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainProviderSettings:
    name: str
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None  # http(s)://, normalised; None = official (or simulated)
    model: str | None = None
    max_upload_bytes: int | None = None  # None: the provider's documented cap
    simulated: bool = True

    @property
    def key_env(self) -> str:
        return KEY_ENV[self.name]

    @property
    def mode(self) -> str:
        return "simulated" if self.simulated else "live"

    @property
    def live_base_url(self) -> str:
        return self.base_url or OFFICIAL_REST_URLS[self.name]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainSettings:
    providers: dict[str, ChainProviderSettings] = field(
        default_factory=lambda: {n: ChainProviderSettings(name=n) for n in CHAIN_PROVIDERS})
    transcription_chain: tuple[str, ...] = CHAINS["transcription"].order
    vision_chain: tuple[str, ...] = CHAINS["vision"].order
    reasoning_chain: tuple[str, ...] = CHAINS["reasoning"].order
    chat_models: dict[tuple[str, str], str] = field(default_factory=dict)  # (chain, provider) → model
    prices: PriceTable = field(default_factory=PriceTable)  # defaults, or VG_PRICES_FILE over them
    daily_budget_usd: float | None = None  # DAILY_BUDGET_USD: 80 % warns, 100 % cost preservation mode
    attempt_timeout_s: float = 30.0  # one HTTP attempt; a timeout retry gets twice this
    deadline_s: float = 120.0  # the whole chain, every attempt and backoff included
    retry_backoff_s: float = 0.5  # 5xx retries wait this, then twice this
    retry_after_max_s: float = 10.0  # the longest Retry-After honoured (last provider only)
    upload_limit_bytes: int = UPLOAD_LIMIT_BYTES

    def to_public_dict(self) -> dict[str, Any]:
        return {"providers": {n: {"api_key": "***" if p.api_key else None, "base_url": p.base_url,
                                  "model": p.model, "mode": p.mode} for n, p in self.providers.items()},
                "transcription_chain": list(self.transcription_chain),
                "vision_chain": list(self.vision_chain), "reasoning_chain": list(self.reasoning_chain),
                "chat_models": {f"{c}/{p}": m for (c, p), m in self.chat_models.items()},
                "prices_file": None if self.prices.source == "defaults" else self.prices.source,
                "daily_budget_usd": self.daily_budget_usd,
                "attempt_timeout_s": self.attempt_timeout_s, "deadline_s": self.deadline_s,
                "retry_backoff_s": self.retry_backoff_s, "retry_after_max_s": self.retry_after_max_s}


def rest_base_url(var: str, text: str | None) -> str | None:
    """http(s):// as given, ws(s):// read as http(s)://; one trailing slash dropped."""
    if text is None:
        return None
    parts = urlsplit(text)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{var} must be an http://, https://, ws:// or wss:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{var} must not carry credentials, a query or a fragment")
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def load_chain_settings(env: _EnvReader, live: dict[str, Any]) -> ChainSettings:
    """`live`: the live ProviderSettings by name (their keys and base URLs are shared)."""
    providers: dict[str, ChainProviderSettings] = {}
    for name in CHAIN_PROVIDERS:
        if name in live:
            key, base = live[name].api_key, rest_base_url(f"{name.upper()}_BASE_URL", live[name].base_url)
        else:
            key, base = env.secret(KEY_ENV[name]), rest_base_url(f"{name.upper()}_BASE_URL",
                                                                 env.raw(f"{name.upper()}_BASE_URL"))
        cap, model = None, None
        if name in CHAIN_TRANSLATORS["transcription"]:  # uploads and models of the transcription chain
            cap_var = f"{name.upper()}_MAX_UPLOAD_MB"
            cap_mb = env.parsed(cap_var, 0.0, float, "a number of megabytes > 0", lambda v: v > 0) \
                if env.raw(cap_var) else None
            cap = int(cap_mb * 1000**2) if cap_mb else None
            model = env.raw("OPENAI_WHISPER_MODEL") if name == "openai" else env.raw(f"VG_{name.upper()}_STT_MODEL")
        providers[name] = ChainProviderSettings(name=name, api_key=key, base_url=base, model=model,
                                                max_upload_bytes=cap, simulated=key is None and base is None)
    orders = {c: _order(env, c) for c in ("transcription", "vision", "reasoning")}
    chat_models = {key: model for key, var in CHAT_MODEL_VARIABLES.items() if (model := env.raw(var))}
    return ChainSettings(
        providers=providers, transcription_chain=orders["transcription"], vision_chain=orders["vision"],
        reasoning_chain=orders["reasoning"], chat_models=chat_models,
        prices=load_prices(env.raw("VG_PRICES_FILE")),
        daily_budget_usd=env.parsed("DAILY_BUDGET_USD", None, float, "a number of USD > 0", lambda v: v > 0)
        if env.raw("DAILY_BUDGET_USD") else None,
        attempt_timeout_s=env.seconds("VG_CHAIN_ATTEMPT_TIMEOUT_S", 30.0),
        deadline_s=env.seconds("VG_CHAIN_DEADLINE_S", 120.0),
        retry_backoff_s=env.seconds("VG_CHAIN_RETRY_BACKOFF_S", 0.5, allow_zero=True),
        retry_after_max_s=env.seconds("VG_CHAIN_RETRY_AFTER_MAX_S", 10.0, allow_zero=True))


def _order(env: _EnvReader, chain: str) -> tuple[str, ...]:
    """VG_<CHAIN>_CHAIN: a reordering or shortening of the chain's providers."""
    var, allowed = f"VG_{chain.upper()}_CHAIN", tuple(CHAIN_TRANSLATORS[chain])
    order = env.names(var, CHAINS[chain].order)
    if not order:
        raise ConfigError(f"{var} must name at least one provider")
    for name in order:
        if name not in allowed:
            raise ConfigError(f"{var}: unknown provider {name!r}; expected one of {', '.join(allowed)}")
    if len(set(order)) != len(order):
        raise ConfigError(f"{var} lists a provider twice")
    return order
