"""The one list of live providers and their facts: everything else asks this module.

Adding a provider is one `ProviderEntry` in `ENTRIES` (beside its adapter in providers/<name>.py and
its fake in providers/fakes/<name>.py): the config, the metrics, the breakers, the client protocols,
the admin API, the CLI and the embedded default all read their names and facts from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from gateway.errors import ConfigError
from providers.base import Capabilities, ProviderAdapter
from providers.chains.base import ChainProvider
from providers.chains.deepgram_batch import DeepgramBatch
from providers.chains.spec import ChainSpec
from providers.chains.transcription import TRANSCRIPTION
from providers.chains.whisper import GroqWhisper, OpenAIWhisper
from providers.deepgram import DeepgramAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter
from providers.openai_live import OpenAILiveAdapter


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderEntry:
    """One provider's facts. `adapter` carries the protocol facts (name, breaker name, capabilities,
    keepalive); the entry adds where it lives and how long a connection may last."""

    adapter: type[ProviderAdapter]
    title: str  # the provider's product name, for docs and messages
    live_base_url: str  # the official endpoint, with the base-URL meaning of the adapter (docs/configuration.md)
    base_url_meaning: str  # what a configured <NAME>_BASE_URL must contain (docs/configuration.md)
    base_path: str = ""  # appended to a server's origin to make a base URL (OpenAI's URLs include /v1)
    max_session_s: float | None = None  # the provider ends a connection after this long (None: no cap)
    credentials_of: str | None = None  # another provider whose key and base URL this one uses
    url_suffix: str = ""  # for docs: what the adapter appends to the base URL
    fake: str  # "module:Class" of the fake server, imported only when a fake is wanted

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def breaker_name(self) -> str:
        return self.adapter.breaker_name

    @property
    def capabilities(self) -> Capabilities:
        return self.adapter.capabilities

    @property
    def key_setting(self) -> str:
        """The environment variable holding this provider's key (GPT-Live: OPENAI_API_KEY)."""
        return f"{(self.credentials_of or self.name).upper()}_API_KEY"

    @property
    def rotate_after_s(self) -> float | None:
        """When a link hands over to a fresh connection (make before break), ahead of the cap:
        five minutes early, so a handover waiting for a turn boundary still lands in time."""
        return None if self.max_session_s is None else self.max_session_s - ROTATE_MARGIN_S


ROTATE_MARGIN_S = 300.0

ENTRIES: tuple[ProviderEntry, ...] = (
    ProviderEntry(adapter=GeminiAdapter, title="Gemini Live", live_base_url="wss://generativelanguage.googleapis.com",
                  base_url_meaning="the origin (as the google-genai SDK's base URL)",
                  fake="providers.fakes.gemini:FakeGemini"),
    # a Realtime session ends after 60 minutes (session_expired): rotate before that
    ProviderEntry(adapter=OpenAIAdapter, title="OpenAI Realtime", live_base_url="wss://api.openai.com/v1",
                  base_url_meaning="including `/v1` (as the openai SDK's base URL)", base_path="/v1",
                  max_session_s=3600.0, fake="providers.fakes.openai:FakeOpenAI"),
    ProviderEntry(adapter=DeepgramAdapter, title="Deepgram streaming STT", live_base_url="wss://api.deepgram.com",
                  base_url_meaning="the origin (as the deepgram SDK's base URL)",
                  fake="providers.fakes.deepgram:FakeDeepgram"),
    # GPT-Live: {OPENAI_BASE_URL}/live/sessions with the OpenAI key (credentials_of); an expiring
    # session announces itself (session.closed reason expired) and is handed over then
    ProviderEntry(adapter=OpenAILiveAdapter, title="OpenAI GPT-Live", live_base_url="wss://api.openai.com/v1",
                  base_url_meaning="including `/v1` (as the openai SDK's base URL)", base_path="/v1",
                  credentials_of="openai", url_suffix=" + `/live/sessions`",
                  fake="providers.fakes.openai_live:FakeOpenAILive"),
)

PROVIDERS: dict[str, ProviderEntry] = {e.name: e for e in ENTRIES}
PROVIDER_NAMES: tuple[str, ...] = tuple(PROVIDERS)
ADAPTERS: dict[str, type[ProviderAdapter]] = {e.name: e.adapter for e in ENTRIES}
BREAKER_NAMES: dict[str, str] = {e.name: e.breaker_name for e in ENTRIES}


def provider_entry(name: str) -> ProviderEntry:
    """The entry for a provider name; ConfigError for a name we do not know."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider; expected one of {', '.join(PROVIDERS)}") from None


def adapter_for(name: str) -> type[ProviderAdapter]:
    """The adapter class for a provider name; ConfigError for a name we do not know."""
    return provider_entry(name).adapter


# -- one-shot chain providers (docs/chains.md) -----------------------------------------------------------
# Providers of one-shot request chains (transcription now; vision and reasoning next). A chain is data
# (providers/chains/spec.py); which translator serves a provider in a chain is CHAIN_TRANSLATORS.


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainProviderEntry:
    name: str
    key_env: str  # where its key comes from (named in auth errors, never the key)
    rest_base_url: str  # official, with the SDK's base-URL meaning (Deepgram/Groq: origin; OpenAI: + /v1)
    base_path: str = ""  # appended to a fake server's origin to make a base URL
    fake: str  # "module:Class" of its REST fake, imported only when a fake is wanted


CHAIN_ENTRIES: tuple[ChainProviderEntry, ...] = (
    ChainProviderEntry(name="deepgram", key_env="DEEPGRAM_API_KEY", rest_base_url="https://api.deepgram.com",
                       fake="providers.fakes.deepgram_rest:FakeDeepgramRest"),
    ChainProviderEntry(name="groq", key_env="GROQ_API_KEY", rest_base_url="https://api.groq.com",
                       fake="providers.fakes.whisper_rest:FakeGroq"),
    ChainProviderEntry(name="openai", key_env="OPENAI_API_KEY", rest_base_url="https://api.openai.com/v1",
                       base_path="/v1", fake="providers.fakes.whisper_rest:FakeOpenAIRest"),
)
CHAIN_PROVIDERS: dict[str, ChainProviderEntry] = {e.name: e for e in CHAIN_ENTRIES}
CHAIN_PROVIDER_NAMES: tuple[str, ...] = tuple(CHAIN_PROVIDERS)
CHAINS: dict[str, ChainSpec] = {TRANSCRIPTION.name: TRANSCRIPTION}
CHAIN_TRANSLATORS: dict[str, dict[str, type[ChainProvider]]] = {  # type: ignore[type-arg]
    TRANSCRIPTION.name: {"deepgram": DeepgramBatch, "groq": GroqWhisper, "openai": OpenAIWhisper},
}


def chain_translator(chain: str, provider: str) -> type[ChainProvider]:  # type: ignore[type-arg]
    try:
        return CHAIN_TRANSLATORS[chain][provider]
    except KeyError:
        raise ConfigError(f"no {provider!r} provider in the {chain!r} chain") from None


def chain_breaker_name(chain: str, provider: str) -> str:
    """`deepgram_transcription`, `groq_transcription`, ...: one breaker per provider per chain."""
    return f"{provider}_{chain}"


def chain_fake_class(provider: str) -> type:
    module, name = CHAIN_PROVIDERS[provider].fake.split(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls
