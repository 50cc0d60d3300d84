"""Provider name → adapter class: the one place that knows which adapters exist."""

from __future__ import annotations

from gateway.errors import ConfigError
from providers.base import ProviderAdapter
from providers.deepgram import DeepgramAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter
from providers.openai_live import OpenAILiveAdapter

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    GeminiAdapter.name: GeminiAdapter,
    OpenAIAdapter.name: OpenAIAdapter,
    DeepgramAdapter.name: DeepgramAdapter,
    OpenAILiveAdapter.name: OpenAILiveAdapter,
}


def adapter_for(name: str) -> type[ProviderAdapter]:
    """The adapter class for a provider name; ConfigError for a name we do not know."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider; expected one of {', '.join(ADAPTERS)}") from None
