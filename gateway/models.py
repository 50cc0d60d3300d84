"""Live model names: the one setting per live provider, and the one list of announced retirements.

Live models are renamed and retired on a schedule. `voice-gateway check-config` warns when a
configured model is on `ANNOUNCED_RETIREMENTS`; keep this list current when a provider announces
a shutdown (the provider's deprecation page is the source; the date is its announced shutdown day).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# provider → the environment variable holding its model (unset: the adapter's default model).
MODEL_SETTINGS: dict[str, str] = {
    "gemini": "VG_GEMINI_MODEL",
    "openai": "VG_OPENAI_REALTIME_MODEL",
    "openai_live": "VG_OPENAI_LIVE_MODEL",
    "deepgram": "VG_DEEPGRAM_MODEL",
    "deepgram_agent": "VG_DEEPGRAM_AGENT_MODEL",  # the agent's listen model (think/speak have their own)
}
# Read as well, for configurations written before the Realtime/GPT-Live split.
LEGACY_MODEL_SETTINGS: dict[str, str] = {"openai": "VG_OPENAI_MODEL"}


@dataclass(frozen=True, slots=True)
class Retirement:
    shutdown: str  # YYYY-MM-DD, as announced
    replacement: str


# model name → its announced retirement (OpenAI and Gemini API deprecations pages).
ANNOUNCED_RETIREMENTS: dict[str, Retirement] = {
    "gemini-2.0-flash-live-001": Retirement("2025-12-09", "gemini-2.5-flash-native-audio-preview-12-2025"),
    "gemini-live-2.5-flash-preview": Retirement("2025-12-09", "gemini-2.5-flash-native-audio-preview-12-2025"),
    "gpt-4o-realtime-preview": Retirement("2026-05-07", "gpt-realtime-1.5"),
    "gpt-4o-realtime-preview-2024-10-01": Retirement("2025-10-16", "gpt-realtime"),
    "gpt-4o-realtime-preview-2024-12-17": Retirement("2026-05-07", "gpt-realtime-1.5"),
    "gpt-4o-realtime-preview-2025-06-03": Retirement("2026-05-07", "gpt-realtime-1.5"),
    "gpt-4o-mini-realtime-preview": Retirement("2026-05-07", "gpt-realtime-mini"),
    "gpt-4o-mini-realtime-preview-2024-12-17": Retirement("2026-07-23", "gpt-realtime-mini"),
    "gpt-realtime-mini-2025-10-06": Retirement("2026-07-23", "gpt-realtime-mini"),
}


def retirement_warnings(models: Mapping[str, str | None]) -> list[str]:
    """One sentence per configured model (provider → model) with an announced retirement."""
    warnings = []
    for provider, model in models.items():
        retired = ANNOUNCED_RETIREMENTS.get((model or "").removeprefix("models/"))  # Gemini's resource form
        if retired is not None:
            setting = MODEL_SETTINGS.get(provider, "the model setting")
            warnings.append(f"{setting}={model}: announced to be shut down on {retired.shutdown}; "
                            f"use {retired.replacement}")
    return warnings
