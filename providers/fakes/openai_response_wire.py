"""The fake OpenAI Realtime server's conversation items and responses: `response.create` options,
client item validation, the response object, usage and rate limits (docs/providers/openai.md).
Pure functions, no I/O; every dict validates against the openai SDK's models.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from providers.fakes.openai_session_wire import parse_format, parse_modalities, parse_tool_choice, parse_tools
from providers.fakes.openai_wire import (
    WireError,
    as_object,
    check_keys,
    invalid_type,
    invalid_value,
    missing_parameter,
)


@dataclass(frozen=True, slots=True)
class ResponseOptions:
    """`response.create` overrides (reference §2.1), validated; None = the session's value."""

    modalities: list[str] | None = None
    out_format: dict[str, Any] | None = None
    voice: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    in_conversation: bool = True
    metadata: dict[str, str] | None = None


RESPONSE_FIELDS = frozenset({"instructions", "output_modalities", "audio", "tools", "tool_choice",
                             "max_output_tokens", "conversation", "input", "metadata", "prompt"})


def parse_response_options(value: Any) -> ResponseOptions:
    if value is None:
        return ResponseOptions()
    options = as_object(value, "response")
    check_keys(options, RESPONSE_FIELDS, "response")
    out_format = voice = None
    if "audio" in options:
        audio = as_object(options["audio"], "response.audio")
        check_keys(audio, {"output"}, "response.audio")
        output = as_object(audio.get("output", {}), "response.audio.output")
        check_keys(output, {"format", "voice"}, "response.audio.output")
        if "format" in output:
            out_format = parse_format(output["format"], "response.audio.output.format")
        if "voice" in output:
            if not isinstance(output["voice"], str):
                raise invalid_type("response.audio.output.voice", "a string", output["voice"])
            voice = output["voice"]
    conversation = options.get("conversation", "auto")
    if conversation not in ("auto", "none"):
        raise invalid_value("response.conversation", conversation, ("auto", "none"))
    metadata = options.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise invalid_type("response.metadata", "an object of strings", metadata)
    return ResponseOptions(
        modalities=parse_modalities(options["output_modalities"], "response.output_modalities")
        if "output_modalities" in options else None,
        out_format=out_format, voice=voice,
        tools=parse_tools(options["tools"], "response.tools") if "tools" in options else None,
        tool_choice=parse_tool_choice(options["tool_choice"], "response.tool_choice")
        if "tool_choice" in options else None,
        in_conversation=conversation == "auto", metadata=metadata)


ITEM_TYPES = ("message", "function_call", "function_call_output")
ROLES = ("user", "assistant", "system")


def validate_client_item(item: Any) -> dict[str, Any]:
    """A `conversation.item.create` item, checked for what the fake relies on (reference §2.1 item shapes)."""
    item = as_object(item, "item")
    if "id" in item and not isinstance(item["id"], str):
        raise invalid_type("item.id", "a string", item["id"])
    kind = item.get("type")
    if kind is None:
        raise missing_parameter("item.type")
    if kind not in ITEM_TYPES:
        raise invalid_value("item.type", kind, ITEM_TYPES)
    if kind == "message":
        if item.get("role") not in ROLES:
            raise invalid_value("item.role", item.get("role"), ROLES)
        content = item.get("content")
        if not isinstance(content, list):
            raise invalid_type("item.content", "an array", content)
        for index, part in enumerate(content):
            part = as_object(part, f"item.content[{index}]")
            for key in ("text", "transcript", "audio"):
                if part.get(key) is not None and not isinstance(part[key], str):
                    raise invalid_type(f"item.content[{index}].{key}", "a string", part[key])
            if item["role"] == "assistant" and part.get("type") == "output_audio":
                # reference §2.1: assistant audio cannot be created by the client
                raise WireError("invalid_value", "Assistant audio content cannot be created by the client.",
                                f"item.content[{index}].type")
    elif kind == "function_call":
        for key in ("name", "arguments"):
            if not isinstance(item.get(key), str):
                raise missing_parameter(f"item.{key}")
    else:
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                raise missing_parameter(f"item.{key}")
    return copy.deepcopy(item)


def response_object(*, response_id: str, status: str, output: list[dict[str, Any]], conversation_id: str | None,
                    modalities: list[str], out_format: dict[str, Any], voice: str,
                    status_details: dict[str, Any] | None = None, usage: dict[str, Any] | None = None,
                    metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "object": "realtime.response", "id": response_id, "status": status, "status_details": status_details,
        "output": output, "conversation_id": conversation_id, "output_modalities": list(modalities),
        "max_output_tokens": "inf", "audio": {"output": {"format": dict(out_format), "voice": voice}},
        "usage": usage, "metadata": metadata,
    }


def usage(input_tokens: int, text_tokens: int, audio_tokens: int) -> dict[str, Any]:
    """Token usage in the GA shape; the numbers are deterministic stand-ins (digits and audio length)."""
    output_tokens = text_tokens + audio_tokens
    return {
        "total_tokens": input_tokens + output_tokens, "input_tokens": input_tokens, "output_tokens": output_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": input_tokens, "image_tokens": 0,
                                "cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                                                              "image_tokens": 0}},
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }


def transcription_usage(model: str | None, duration_s: float, text: str) -> dict[str, Any]:
    """whisper-1 bills by duration, the gpt-4o transcribe models by tokens."""
    if model == "whisper-1":
        return {"type": "duration", "seconds": round(duration_s, 3)}
    audio_tokens = max(1, round(duration_s * 10))
    return {"type": "tokens", "input_tokens": audio_tokens, "output_tokens": len(text),
            "total_tokens": audio_tokens + len(text),
            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}}


RATE_LIMITS: list[dict[str, Any]] = [
    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
    {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.5},
]

