"""Provider name → adapter class: the one place that knows which adapters exist."""

from __future__ import annotations

from gateway.errors import ConfigError
from providers.base import ProviderAdapter
from providers.deepgram import DeepgramAdapter
from providers.deepgram_agent import DeepgramAgentAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    GeminiAdapter.name: GeminiAdapter,
    OpenAIAdapter.name: OpenAIAdapter,
    DeepgramAdapter.name: DeepgramAdapter,
    DeepgramAgentAdapter.name: DeepgramAgentAdapter,
}


def adapter_for(name: str) -> type[ProviderAdapter]:
    """The adapter class for a provider name; ConfigError for a name we do not know."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ConfigError(f"unknown provider; expected one of {', '.join(ADAPTERS)}") from None


def resolve(name: str, options: dict[str, dict[str, object]], available: object) -> str:
    """The provider a call's `name` means. `deepgram` is the Voice Agent (it talks back) unless
    `provider_options.deepgram.mode` is "transcribe" (the listen-only STT link), or the agent is not
    among the `available` providers (a deployment that configures only the STT)."""
    if name == "deepgram" and options.get("deepgram", {}).get("mode") != "transcribe":
        agent = DeepgramAgentAdapter.name
        if agent in available:  # type: ignore[operator]
            return agent
    return name
