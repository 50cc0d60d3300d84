"""The fake OpenAI Realtime server's session object: the GA default session and `session.update`
validation (formats, turn detection, tools, modalities, scalars), refused with the real server's
errors (docs/providers/openai.md §2.1). Pure functions, no I/O; every dict validates against the
openai SDK's models (tests/fakes/test_sdk_openai.py).
"""

from __future__ import annotations

import copy
from typing import Any

from providers.fakes.openai_wire import (
    DEFAULT_INSTRUCTIONS,
    GA_SESSION_FIELDS,
    PCM_24K_WIRE,
    SEMANTIC_VAD_DEFAULTS,
    SERVER_VAD_DEFAULTS,
    WireError,
    as_object,
    check_keys,
    invalid_type,
    invalid_value,
    json_type,
    missing_parameter,
    unknown_parameter,
)


def parse_format(value: Any, param: str) -> dict[str, Any]:
    """Validate a GA format object; strings are the beta spelling and GA rejects them (`invalid_type`)."""
    obj = as_object(value, param)
    check_keys(obj, {"type", "rate"}, param)
    kind = obj.get("type")
    if kind not in ("audio/pcm", "audio/pcmu", "audio/pcma"):
        raise invalid_value(f"{param}.type", kind, ("audio/pcm", "audio/pcmu", "audio/pcma"))
    if kind == "audio/pcm":
        rate = obj.get("rate", 24000)
        if rate != 24000:  # reference §1: PCM is 24 kHz only
            raise WireError("invalid_value", f"Invalid value: {rate}. Supported values are: 24000.", f"{param}.rate")
        return dict(PCM_24K_WIRE)
    return {"type": kind}


def _parse_turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    obj = as_object(value, param)
    kind = obj.get("type")
    if kind == "server_vad":
        defaults = SERVER_VAD_DEFAULTS
    elif kind == "semantic_vad":
        defaults = SEMANTIC_VAD_DEFAULTS
    else:
        raise invalid_value(f"{param}.type", kind, ("server_vad", "semantic_vad"))
    check_keys(obj, set(defaults), param)
    for key, value in obj.items():
        _check_vad_field(key, value, f"{param}.{key}")
    return {**defaults, **obj}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_vad_field(key: str, value: Any, param: str) -> None:
    if key in ("create_response", "interrupt_response") and not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    if key in ("prefix_padding_ms", "silence_duration_ms") and not (_is_int(value) and 0 <= value <= 10_000):
        raise WireError("invalid_value", f"Invalid '{param}': expected an integer between 0 and 10000.", param)
    if key == "idle_timeout_ms" and value is not None and not (_is_int(value) and value > 0):
        raise WireError("invalid_value", f"Invalid '{param}': expected a positive integer or null.", param)
    if key == "threshold" and not (isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1):
        raise WireError("invalid_value", f"Invalid '{param}': expected a number between 0 and 1.", param)
    if key == "eagerness" and value not in ("low", "medium", "high", "auto"):
        raise invalid_value(param, value, ("low", "medium", "high", "auto"))


def _parse_audio_input(obj: dict[str, Any], current: dict[str, Any], param: str) -> dict[str, Any]:
    check_keys(obj, {"format", "transcription", "noise_reduction", "turn_detection"}, param)
    merged = dict(current)
    if "format" in obj:
        merged["format"] = parse_format(obj["format"], f"{param}.format")
    if "transcription" in obj:
        value = obj["transcription"]
        if value is not None:
            check_keys(as_object(value, f"{param}.transcription"),
                        {"model", "language", "prompt", "languages", "keywords", "delay"}, f"{param}.transcription")
        merged["transcription"] = copy.deepcopy(value)
    if "noise_reduction" in obj:
        value = obj["noise_reduction"]
        if value is not None:
            kind = as_object(value, f"{param}.noise_reduction").get("type")
            if kind not in ("near_field", "far_field"):
                raise invalid_value(f"{param}.noise_reduction.type", kind, ("near_field", "far_field"))
        merged["noise_reduction"] = copy.deepcopy(value)
    if "turn_detection" in obj:
        merged["turn_detection"] = _parse_turn_detection(obj["turn_detection"], f"{param}.turn_detection")
    return merged


def _parse_audio_output(obj: dict[str, Any], current: dict[str, Any], param: str, *,
                        audio_sent: bool) -> dict[str, Any]:
    check_keys(obj, {"format", "voice", "speed"}, param)
    merged = dict(current)
    if "format" in obj:
        merged["format"] = parse_format(obj["format"], f"{param}.format")
    if "voice" in obj:
        voice = obj["voice"]
        if not isinstance(voice, str):
            raise invalid_type(f"{param}.voice", "a string", voice)
        if audio_sent and voice != current.get("voice"):
            # reference §2.1: the voice can only change before the first audio output
            raise WireError("cannot_update_voice",
                            "Cannot update a conversation's voice if assistant audio is present.", f"{param}.voice")
        merged["voice"] = voice
    if "speed" in obj:
        speed = obj["speed"]
        if not isinstance(speed, int | float) or isinstance(speed, bool) or not 0.25 <= speed <= 1.5:
            raise WireError("invalid_value", "Invalid 'session.audio.output.speed': expected a number between "
                            "0.25 and 1.5.", f"{param}.speed")
        merged["speed"] = float(speed)
    return merged


def parse_tools(value: Any, where: str = "session.tools") -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise invalid_type(where, "an array", value)
    for index, tool in enumerate(value):
        param = f"{where}[{index}]"
        tool = as_object(tool, param)
        if tool.get("type") not in ("function", "mcp"):
            raise invalid_value(f"{param}.type", tool.get("type"), ("function", "mcp"))
        if tool["type"] == "function" and not isinstance(tool.get("name"), str):
            raise missing_parameter(f"{param}.name")
    return copy.deepcopy(value)


def parse_modalities(value: Any, param: str) -> list[str]:
    if value not in (["audio"], ["text"]):
        raise WireError("invalid_value", f"Invalid '{param}': supported values are ['audio'] and ['text'].", param)
    return list(value)


def parse_tool_choice(value: Any, param: str) -> Any:
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return dict(value)
    if isinstance(value, dict) and value.get("type") == "mcp":
        return copy.deepcopy(value)
    raise invalid_value(param, value if isinstance(value, str) else json_type(value), ("auto", "none", "required"))


def _parse_scalars(update: dict[str, Any], merged: dict[str, Any], current: dict[str, Any]) -> None:
    if "model" in update and update["model"] != current.get("model"):
        raise WireError("invalid_value", "Cannot update a realtime session's model.", "session.model")
    if "instructions" in update:
        if not isinstance(update["instructions"], str):
            raise invalid_type("session.instructions", "a string", update["instructions"])
        merged["instructions"] = update["instructions"]
    if "output_modalities" in update:
        merged["output_modalities"] = parse_modalities(update["output_modalities"], "session.output_modalities")
    if "max_output_tokens" in update:
        value = update["max_output_tokens"]
        if value != "inf" and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096):
            raise WireError("invalid_value", "Invalid 'session.max_output_tokens': expected an integer between 1 "
                            "and 4096, or 'inf'.", "session.max_output_tokens")
        merged["max_output_tokens"] = value
    if "tool_choice" in update:
        merged["tool_choice"] = parse_tool_choice(update["tool_choice"], "session.tool_choice")
    for key in ("tracing", "truncation", "prompt", "include", "parallel_tool_calls", "reasoning"):
        if key in update:
            merged[key] = copy.deepcopy(update[key])


def default_session(*, session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """The GA session object of `session.created` (reference §2.2): transcription off, server VAD on."""
    return {
        "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
        "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf",
        "tracing": None, "truncation": "auto", "prompt": None, "include": None, "expires_at": expires_at,
        "audio": {
            "input": {"format": dict(PCM_24K_WIRE), "transcription": None, "noise_reduction": None,
                      "turn_detection": dict(SERVER_VAD_DEFAULTS)},
            "output": {"format": dict(PCM_24K_WIRE), "voice": "alloy", "speed": 1.0},
        },
    }


def apply_session_update(current: dict[str, Any], update: Any, *, audio_sent: bool) -> dict[str, Any]:
    """The effective session after a GA `session.update` (only present fields change). Raises WireError with
    the real server's code (`missing_required_parameter`, `unknown_parameter`, `invalid_type`,
    `invalid_value`); on error nothing changes."""
    update = as_object(update, "session")
    if "type" not in update:
        raise missing_parameter("session.type")
    if update["type"] != "realtime":
        raise invalid_value("session.type", update["type"], ("realtime",))
    for key in update:
        if key not in GA_SESSION_FIELDS:  # includes the beta-era flat fields
            raise unknown_parameter(f"session.{key}")
    merged = copy.deepcopy(current)
    _parse_scalars(update, merged, current)
    if "tools" in update:
        merged["tools"] = parse_tools(update["tools"])
    if "audio" in update:
        audio = as_object(update["audio"], "session.audio")
        check_keys(audio, {"input", "output"}, "session.audio")
        if "input" in audio:
            merged["audio"]["input"] = _parse_audio_input(
                as_object(audio["input"], "session.audio.input"), current["audio"]["input"], "session.audio.input")
        if "output" in audio:
            merged["audio"]["output"] = _parse_audio_output(
                as_object(audio["output"], "session.audio.output"), current["audio"]["output"],
                "session.audio.output", audio_sent=audio_sent)
    return merged

