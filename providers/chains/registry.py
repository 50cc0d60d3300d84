"""Chain provider name → translator class, per chain, and the fake that stands in for it: the one list.

Fakes import lazily (importing a translator never loads a server).
"""

from __future__ import annotations

import importlib
from typing import Any

from gateway.errors import ConfigError
from providers.chains.base import ChainEndpoint, ChainProvider, HttpRequest
from providers.chains.deepgram_batch import DeepgramBatch
from providers.chains.spec import ChainSpec
from providers.chains.transcription import TRANSCRIPTION
from providers.chains.whisper import GroqWhisper, OpenAIWhisper

CHAINS: dict[str, ChainSpec] = {TRANSCRIPTION.name: TRANSCRIPTION}
TRANSLATORS: dict[str, dict[str, type[ChainProvider[Any, Any]]]] = {
    TRANSCRIPTION.name: {"deepgram": DeepgramBatch, "groq": GroqWhisper, "openai": OpenAIWhisper},
}
_FAKES = {"deepgram": ("providers.fakes.deepgram_rest", "FakeDeepgramRest"),
          "groq": ("providers.fakes.whisper_rest", "FakeGroq"),
          "openai": ("providers.fakes.whisper_rest", "FakeOpenAIRest")}


def translator_for(chain: str, provider: str) -> type[ChainProvider[Any, Any]]:
    try:
        return TRANSLATORS[chain][provider]
    except KeyError:
        raise ConfigError(f"no {provider!r} provider in the {chain!r} chain") from None


def rest_fake_class(provider: str) -> Any:
    module, name = _FAKES[provider]
    return getattr(importlib.import_module(module), name)


def breaker_name(chain: str, provider: str) -> str:
    """`deepgram_transcription`, `groq_transcription`, ... (one breaker per provider per chain)."""
    return f"{provider}_{chain}"


def gemini_health_request(endpoint: ChainEndpoint) -> HttpRequest:
    """The models list of the Gemini Developer API: a cheap authenticated GET."""
    return HttpRequest(method="GET", url=f"{endpoint.base_url}/v1beta/models?pageSize=1",
                       headers=(("x-goog-api-key", endpoint.api_key),))
