"""The price table: what each provider charges, as data (defaults here, overridable by VG_PRICES_FILE).

Keys are `provider/model` (chat models, token-priced transcription models), `provider/<chain>` (the
price of a provider in a chain whatever the model, e.g. `deepgram/transcription`) and `provider/live`
(live calls, per provider minute). A chain attempt is priced by `provider/model`, else
`provider/<chain>`; no entry: not priced (cost 0, listed as unpriced in /admin/costs).

Defaults are the prompt-router design's figures: chat per million input/output tokens (USD); the
transcription figures are given there in cents per minute (Deepgram 0.65, Groq 0.10, OpenAI Whisper
0.60), i.e. USD 0.0065, 0.0010 and 0.0060 per minute. Real prices change: override them with a file.

File format (YAML or JSON), merged over the defaults; `null` removes an entry:
    deepgram/transcription: {per_minute_usd: 0.0043}
    minimax/minimax-m2.1-lightning: {input_per_million_usd: 0.15, output_per_million_usd: 0.60}
    gemini/live: {per_minute_usd: 0.02}
    groq/transcription: {per_minute_usd: 0.001, minimum_billed_s: 10}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from providers.chains.base import Price


def _tokens(inp: float, out: float) -> Price:
    return Price(per_million_input_tokens_usd=inp, per_million_output_tokens_usd=out)


DEFAULT_PRICES: dict[str, Price] = {
    # reasoning and vision (USD per million input / output tokens)
    "minimax/minimax-m2.1": _tokens(0.30, 1.12),
    "minimax/minimax-m2.1-lightning": _tokens(0.15, 0.60),
    "openrouter/minimax/minimax-m2.1-lightning": _tokens(0.15, 0.60),
    "openrouter/qwen3-vision-30b": _tokens(0.50, 1.50),
    "openai/gpt-4o": _tokens(5.00, 15.00),  # the GPT-4V slot of the vision chain
    "anthropic/claude-3-haiku-20240307": _tokens(0.25, 1.25),
    # by chain, whatever the model the operator configured
    "minimax/vision": _tokens(0.30, 1.12),
    "minimax/reasoning": _tokens(0.15, 0.60),
    "openrouter/reasoning": _tokens(0.15, 0.60),
    "openrouter/vision": _tokens(0.50, 1.50),
    "openai/vision": _tokens(5.00, 15.00),
    "anthropic/reasoning": _tokens(0.25, 1.25),
    # transcription (USD per minute of audio, as the provider bills it)
    "deepgram/transcription": Price(per_minute_usd=0.0065),
    "groq/transcription": Price(per_minute_usd=0.0010, minimum_billed_s=10.0),
    "openai/transcription": Price(per_minute_usd=0.0060),
    "openai/gpt-4o-transcribe": _tokens(2.50, 10.00),
    "openai/gpt-4o-mini-transcribe": _tokens(1.25, 5.00),
    # live calls (USD per provider minute); Deepgram streaming at its transcription figure
    "deepgram/live": Price(per_minute_usd=0.0065),
}

FIELDS = {"per_minute_usd": "per_minute_usd", "minimum_billed_s": "minimum_billed_s",
          "input_per_million_usd": "per_million_input_tokens_usd",
          "output_per_million_usd": "per_million_output_tokens_usd"}


class PriceTable:
    def __init__(self, entries: Mapping[str, Price] | None = None, *, source: str = "defaults") -> None:
        self.entries: dict[str, Price] = dict(DEFAULT_PRICES if entries is None else entries)
        self.source = source

    def for_attempt(self, chain: str, provider: str, model: str) -> Price | None:
        return self.entries.get(f"{provider}/{model}") or self.entries.get(f"{provider}/{chain}")

    def for_live(self, provider: str) -> Price | None:
        return self.entries.get(f"{provider}/live")

    def to_public_dict(self) -> dict[str, dict[str, float]]:
        out = {}
        for key, p in sorted(self.entries.items()):
            out[key] = {name: getattr(p, attr) for name, attr in FIELDS.items() if getattr(p, attr)}
        return out


def load_prices(path: str | None) -> PriceTable:
    """The defaults, with the file at `path` merged over them; ConfigError naming VG_PRICES_FILE."""
    if not path:
        return PriceTable()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"VG_PRICES_FILE: cannot read {path}: {err.strerror}") from None
    data = _parse(text, path)
    if not isinstance(data, dict):
        raise ConfigError("VG_PRICES_FILE must hold a mapping of 'provider/model' to prices")
    entries = dict(DEFAULT_PRICES)
    for key, value in data.items():
        if not isinstance(key, str) or key.count("/") < 1:
            raise ConfigError(f"VG_PRICES_FILE: key {key!r} must look like provider/model or provider/chain")
        if value is None:
            entries.pop(key, None)
            continue
        entries[key] = _price(key, value)
    return PriceTable(entries, source=path)


def _parse(text: str, path: str) -> Any:
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as err:
            raise ConfigError(f"VG_PRICES_FILE: not valid JSON ({err})") from None
    try:
        import yaml  # YAML is optional: JSON files need nothing extra
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise ConfigError("VG_PRICES_FILE: YAML needs the pyyaml package (or use a .json file)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"VG_PRICES_FILE: not valid YAML ({str(err).splitlines()[0]})") from None


def _price(key: str, value: Any) -> Price:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"VG_PRICES_FILE: {key} needs a mapping such as {{per_minute_usd: 0.006}}")
    kwargs: dict[str, float] = {}
    for name, amount in value.items():
        if name not in FIELDS:
            raise ConfigError(f"VG_PRICES_FILE: {key}: unknown field {name!r}; expected {', '.join(FIELDS)}")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount < 1e6:
            raise ConfigError(f"VG_PRICES_FILE: {key}: {name} must be a number >= 0")
        kwargs[FIELDS[name]] = float(amount)
    return Price(**kwargs)
