"""A call's configuration, kept for the whole call and re-applied after every reconnect or switch."""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from audio.compressed import COMPRESSED_ENCODINGS  # decoded at the client edge (PyAV)
from audio.formats import ENCODINGS, SAMPLE_RATES_HZ, AudioFormat
from gateway.errors import BadMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    provider: str = "gemini"
    fallback: tuple[str, ...] = ()  # the edges fill it from the request or the configured chain
    input_format: AudioFormat = AudioFormat(encoding="pcm16", sample_rate_hz=16000)
    output_format: AudioFormat = AudioFormat(encoding="pcm16", sample_rate_hz=24000)
    instructions: str = ""
    voice: str | None = None
    language: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    json_audio: bool = False  # reply audio as `audio.delta` events instead of binary frames
    # "opus" / "webm": the client sends compressed audio, decoded at the edge into `input_format` (PCM16)
    input_codec: str | None = None

    def input_wire(self) -> dict[str, object]:
        """`audio.input` as the client declared it (its compressed encoding, when it sent one)."""
        wire = self.input_format.to_wire()
        return {**wire, "encoding": self.input_codec} if self.input_codec else wire
    ignored_options: tuple[str, ...] = ()  # unknown provider_options (`provider.name`), told to the client

    def with_provider(self, provider: str) -> SessionConfig:
        return replace(self, provider=provider)

    def options_for(self, provider: str) -> dict[str, Any]:
        return dict(self.provider_options.get(provider, {}))

    # `provider_options.<provider>.voice` / `.instructions` override the call-wide values for that
    # provider: voice names differ per provider, so a call that switches keeps a valid voice.
    def voice_for(self, provider: str) -> str | None:
        voice = self.provider_options.get(provider, {}).get("voice")
        return voice if isinstance(voice, str) and voice else self.voice

    def instructions_for(self, provider: str) -> str:
        text = self.provider_options.get(provider, {}).get("instructions")
        return text if isinstance(text, str) and text else self.instructions


def parse_audio_format(raw: object, default: AudioFormat) -> AudioFormat:
    if raw is None:
        return default
    if not isinstance(raw, dict):
        raise BadMessage("audio format must be an object with encoding and sample_rate")
    encoding = raw.get("encoding", default.encoding)
    rate = raw.get("sample_rate", default.sample_rate_hz if encoding == "pcm16" else 8000)
    if encoding not in ENCODINGS:
        raise BadMessage(f"unsupported audio encoding; expected one of {', '.join(ENCODINGS + COMPRESSED_ENCODINGS)}")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate not in SAMPLE_RATES_HZ:
        raise BadMessage(f"unsupported sample_rate; expected one of {SAMPLE_RATES_HZ}")
    if encoding in ("mulaw", "alaw") and rate != 8000:
        raise BadMessage("G.711 audio (mulaw/alaw) must be 8000 Hz")
    return AudioFormat(encoding=encoding, sample_rate_hz=rate)


def parse_input_audio(raw: object, default: AudioFormat) -> tuple[AudioFormat, str | None]:
    """`audio.input`: a PCM/G.711 format, or a compressed encoding (opus, webm) with the PCM16 rate it
    is decoded to (default 48000, Opus's own rate)."""
    if isinstance(raw, dict) and raw.get("encoding") in COMPRESSED_ENCODINGS:
        rate = raw.get("sample_rate", 48000)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate not in SAMPLE_RATES_HZ:
            raise BadMessage(f"unsupported sample_rate; expected one of {SAMPLE_RATES_HZ}")
        if importlib.util.find_spec("av") is None:
            raise BadMessage("opus/webm input is not available on this gateway (PyAV is not installed)")
        return AudioFormat(encoding="pcm16", sample_rate_hz=rate), str(raw["encoding"])
    return parse_audio_format(raw, default), None


def parse_tools(raw: object) -> tuple[ToolSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadMessage("tools must be a list")
    out = []
    for t in raw:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise BadMessage("each tool needs a name")
        params = t.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise BadMessage("tool parameters must be a JSON schema object")
        out.append(ToolSpec(name=t["name"], description=str(t.get("description", "")), parameters=params))
    return tuple(out)


def parse_provider_list(raw: object, *, field_name: str, known: Collection[str]) -> tuple[str, ...]:
    """A list (or comma-separated string) of provider names, each one of `known` (the registry's)."""
    if isinstance(raw, str):
        raw = [p.strip() for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise BadMessage(f"{field_name} must be a list of provider names")
    bad = [p for p in raw if p not in known]
    if bad:
        raise BadMessage(f"unknown provider in {field_name}; expected one of {', '.join(known)}")
    return tuple(raw)
