"""Fake provider servers speaking each real wire protocol on loopback, with fault injection.

They power the tests, the benchmarks and the embedded default. Fidelity is checked by the
providers' official SDKs connecting to them (tests/fakes/test_sdk_*.py).

`fake_class(name)` and `FAKES` (name → server class) import the fakes lazily: importing one fake, or
the gateway with live keys, does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from providers.fakes.common import FakeServer

_MODULES = {"gemini": ("providers.fakes.gemini", "FakeGemini"),
            "openai": ("providers.fakes.openai", "FakeOpenAI"),
            "deepgram": ("providers.fakes.deepgram", "FakeDeepgram"),
            "deepgram_agent": ("providers.fakes.deepgram_agent", "FakeDeepgramAgent")}
PROVIDERS: tuple[str, ...] = tuple(_MODULES)


def fake_class(provider: str) -> type[FakeServer]:
    """The fake server class for "gemini", "openai" or "deepgram" (KeyError otherwise)."""
    module, name = _MODULES[provider]
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> Any:
    if name == "FAKES":
        return {provider: fake_class(provider) for provider in _MODULES}
    raise AttributeError(name)
