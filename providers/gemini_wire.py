"""Gemini Live client messages (docs/providers/gemini.md §2.1, §3): the `setup` object, tool declarations,
history seeding and the small value parsers the adapter needs.

We always send lowerCamelCase (§1 "Field naming": the server accepts both, camel is canonical).
The server emits camelCase too; `field()` also accepts the snake_case spelling so a peer that
normalises differently still parses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from gateway.events import ConversationItem
from gateway.session_config import SessionConfig, ToolSpec
from providers import options
from providers.history import alternating_turns, history_lines

DEFAULT_MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
DEFAULT_VOICE = "Puck"
OUTPUT_RATE_DEFAULT_HZ = 24000  # §1 "Audio formats": assume 24 kHz when mimeType has no rate=
# The Gemini function-declaration schema is an OpenAPI 3.0 subset; unknown keys
# (additionalProperties, $schema, ...) make the server close with 1007 "invalid argument".
SCHEMA_KEYS = frozenset({
    "type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "propertyOrdering", "anyOf", "items", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "example", "default", "title", "minProperties", "maxProperties",
})
_RATE = re.compile(r"rate=(\d+)")
_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")


@lru_cache(maxsize=256)
def _snake(camel: str) -> str:
    return _CAMEL_HUMP.sub("_", camel).lower()


def field(obj: dict[str, Any], camel: str) -> Any:
    """obj[camel], falling back to its snake_case spelling; None when absent."""
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


def truthy(value: object) -> bool:
    """Protobuf-JSON bools may arrive as the string "true" (§1)."""
    return value is True or value == "true"


def parse_duration_s(value: object) -> float | None:
    """google.protobuf.Duration: "50s", "9.5s" (also a bare number, leniently)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
        return seconds if seconds == seconds and seconds >= 0 else None  # reject NaN / negative
    return None


@lru_cache(maxsize=64)  # per reply chunk, and a stream keeps one mime type
def output_rate_hz(mime_type: str) -> int:
    match = _RATE.search(mime_type)
    return int(match.group(1)) if match else OUTPUT_RATE_DEFAULT_HZ


def model_name(config: SessionConfig, endpoint_model: str | None) -> str:
    """`models/{id}` (§1 "Models": the full resource name is required)."""
    name = config.options_for("gemini").get("model") or endpoint_model or DEFAULT_MODEL
    name = str(name)
    return name if name.startswith("models/") else "models/" + name


def openapi_schema(schema: object) -> object:
    """JSON Schema → Gemini's OpenAPI subset: upper-case type names, ["x", "null"] → type X +
    nullable, unsupported keys dropped, recursively through properties/items/anyOf."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            concrete = [t for t in types if isinstance(t, str) and t != "null"]
            if concrete:
                out["type"] = concrete[0].upper()
            if "null" in types:
                out["nullable"] = True
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: openapi_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out["items"] = openapi_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [openapi_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def function_declaration(tool: ToolSpec) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    parameters = openapi_schema(tool.parameters)
    # An object schema without properties is rejected by the server; omit parameters then.
    if isinstance(parameters, dict) and parameters.get("properties"):
        declaration["parameters"] = parameters
    return declaration


def setup_message(config: SessionConfig, *, model: str, resume_handle: str | None,
                  seed_history: bool) -> dict[str, Any]:
    speech: dict[str, Any] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": config.voice_for("gemini") or DEFAULT_VOICE}}}
    if config.language:
        speech["languageCode"] = config.language
    setup: dict[str, Any] = {
        "model": model,
        "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": speech},
    }
    if instructions := config.instructions_for("gemini"):
        setup["systemInstruction"] = {"parts": [{"text": instructions}]}
    if config.tools:
        setup["tools"] = [{"functionDeclarations": [function_declaration(t) for t in config.tools]}]
    setup["realtimeInputConfig"] = {"automaticActivityDetection": {"disabled": False, "silenceDurationMs": 500}}
    setup["inputAudioTranscription"] = {}
    setup["outputAudioTranscription"] = {}
    setup["sessionResumption"] = {"handle": resume_handle} if resume_handle else {}
    # Sliding-window compression lifts the ~15 min audio session cap (§4 "Limits").
    setup["contextWindowCompression"] = {"slidingWindow": {}}
    if seed_history:
        # §2.1: with historyConfig the first clientContent batch is pure history, so seeding it
        # with turnComplete false does not make the model answer (or recap) before the caller speaks,
        # and the model keeps answering in audio afterwards (the pitfall pipecat works around).
        setup["historyConfig"] = {"initialHistoryInClientContent": True}
    options.gemini_setup(setup, config.options_for("gemini"))
    return {"setup": setup}


def history_content(history: Sequence[ConversationItem]) -> dict[str, Any] | None:
    """One clientContent of alternating user/model text turns ending with a user turn
    (§2.1: Gemini 2.5 wants seeded history to end on the user side), turnComplete false."""
    turns = alternating_turns(history_lines(history))
    if not turns:
        return None
    wire = [{"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]} for role, text in turns]
    if wire[-1]["role"] != "user":
        wire.append({"role": "user", "parts": [{"text": " "}]})  # as in §3 "Seeding history"
    return {"clientContent": {"turns": wire, "turnComplete": False}}


def user_text_content(text: str) -> dict[str, Any]:
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}
