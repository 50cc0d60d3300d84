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

from providers.registry import PROVIDER_NAMES as PROVIDERS
from providers.registry import PROVIDERS as _ENTRIES


def fake_class(provider: str) -> type[FakeServer]:
    """The fake server class of a registered provider (KeyError otherwise); where it lives is the
    provider's registry entry (providers/registry.py)."""
    module, name = _ENTRIES[provider].fake.split(":")
    cls: type[FakeServer] = getattr(importlib.import_module(module), name)
    return cls


def __getattr__(name: str) -> Any:
    if name == "FAKES":
        return {provider: fake_class(provider) for provider in PROVIDERS}
    raise AttributeError(name)
