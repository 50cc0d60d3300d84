"""Gemini Live wire details for the fake server: lenient parsing of client JSON, strict camelCase output.

Invariants (docs/providers/gemini.md §1 "Field naming and encoding"): input keys may be camelCase or
snake_case at any depth and are normalised to snake_case here; bytes may use either base64 alphabet,
with or without padding; output is lowerCamelCase, standard base64, Duration strings like "5s", and is
sent as UTF-8 JSON in *binary* frames. No I/O in this module.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from audio.formats import SAMPLE_RATES_HZ

PATH_RE = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(?P<version>[A-Za-z0-9]+)\.GenerativeService\."
    r"(?P<method>BidiGenerateContent|BidiGenerateContentConstrained)$")

OUTPUT_RATE_HZ = 24000
INPUT_NATIVE_RATE_HZ = 16000
AUDIO_TOKENS_PER_S = 25  # Gemini counts 25 tokens per second of audio

# Close reasons (docs/providers/gemini.md §4), code first.
INVALID_ARGUMENT = (1007, "Request contains an invalid argument.")
BAD_KEY = (1007, "API key not valid. Please pass a valid API key.")
SESSION_NOT_FOUND = (1008, "BidiGenerateContent session not found")
INVALID_JSON = (1007, "Invalid JSON payload received. Unexpected token.")
MISSING_KEY_BODY = ("Method doesn't allow unregistered callers (callers without established identity). "
                    "Please use API Key or other form of API consumer identity to call this API.")

# Values whose keys are user data (JSON objects, schema property names): never renamed.
_FREE_FORM_KEYS = frozenset({"response", "args", "properties"})
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def fit_reason(text: str) -> str:
    """A close reason fits in 123 bytes (RFC 6455 §5.5: control frame payload ≤ 125, minus the code),
    so Google's longer messages arrive cut (docs/providers/gemini.md §4 shows them ending in "...")."""
    return text.encode()[:123].decode(errors="ignore")


class WireError(Exception):
    """A client message the real server would reject; carries the close code and reason it uses."""

    def __init__(self, close: tuple[int, str]) -> None:
        super().__init__(close[1])
        self.code, self.reason = close[0], fit_reason(close[1])


def model_not_found(model: str, version: str) -> tuple[int, str]:
    return (1008, f"{model} is not found for API version {version}, or is not supported for "
                  "bidiGenerateContent. Call ListModels to see the list of available models and their "
                  "supported methods.")


def unknown_field(name: str) -> tuple[int, str]:
    return (1007, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')


def snake(key: str) -> str:
    return _CAMEL_HUMP.sub(r"_\1", key).lower()


def normalize_keys(value: Any) -> Any:
    """camelCase or snake_case keys at every depth → snake_case (protobuf-JSON accepts both)."""
    if isinstance(value, dict):
        return {snake(k): (v if snake(k) in _FREE_FORM_KEYS else normalize_keys(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_keys(v) for v in value]
    return value


def parse_json(raw: str | bytes) -> Any:
    """One client frame, text or binary (the real server takes JSON in either)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WireError(INVALID_JSON) from None


def split_message(message: Any) -> tuple[str, str, Any]:
    """A client message has exactly one top-level field: (name as sent, snake_case name, normalised body)."""
    if not isinstance(message, dict) or len(message) != 1:
        raise WireError(INVALID_ARGUMENT)
    ((name, body),) = message.items()
    return name, snake(name), normalize_keys(body)


def decode_bytes(data: Any) -> bytes:
    """A protobuf-JSON bytes field: standard or URL-safe base64, padding optional."""
    if not isinstance(data, str):
        raise WireError(INVALID_ARGUMENT)
    text = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise WireError(INVALID_ARGUMENT) from None


def pcm_rate(mime_type: Any) -> int:
    """`audio/pcm;rate=N` → N (16000 when no rate is given); any other audio type is rejected."""
    if not isinstance(mime_type, str):
        raise WireError(INVALID_ARGUMENT)
    kind, *params = (p.strip() for p in mime_type.split(";"))
    if kind.lower() not in ("audio/pcm", "audio/l16"):
        raise WireError(INVALID_ARGUMENT)
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "rate":
            # The real server resamples any rate; the fake takes the rates audio/resample handles.
            if not value.strip().isdigit() or int(value) not in SAMPLE_RATES_HZ:
                raise WireError(INVALID_ARGUMENT)
            return int(value)
    return INPUT_NATIVE_RATE_HZ


def is_true(value: Any) -> bool:
    """protobuf-JSON bools may arrive as "true"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def duration(seconds: float) -> str:
    """google.protobuf.Duration as JSON: "50s", "9.5s"."""
    return f"{seconds:g}s"


def frame(message: dict[str, Any], *, pretty: bool = False) -> bytes:
    """Server messages go out as UTF-8 JSON bytes (sent as binary frames), e.g. setupComplete
    pretty-printed as the real server sometimes does: b'{\\n  "setupComplete": {}\\n}\\n'."""
    if pretty:
        return orjson.dumps(message, option=orjson.OPT_INDENT_2) + b"\n"
    return orjson.dumps(message)


def audio_part(pcm16: bytes, rate_hz: int = OUTPUT_RATE_HZ) -> dict[str, Any]:
    return {"inlineData": {"mimeType": f"audio/pcm;rate={rate_hz}", "data": base64.b64encode(pcm16).decode()}}


def usage_metadata(input_audio_s: float, reply_audio_s: float, prompt_text_tokens: int = 0) -> dict[str, Any]:
    """Token accounting attached to turnComplete; deterministic from audio durations."""
    prompt_audio = round(input_audio_s * AUDIO_TOKENS_PER_S)
    response = round(reply_audio_s * AUDIO_TOKENS_PER_S)
    prompt = prompt_audio + prompt_text_tokens
    return {
        "promptTokenCount": prompt,
        "responseTokenCount": response,
        "totalTokenCount": prompt + response,
        "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt_audio},
                                {"modality": "TEXT", "tokenCount": prompt_text_tokens}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
    }


def content_text(content: Any) -> str:
    """The concatenated text parts of a Content object (snake_case form)."""
    if not isinstance(content, dict) or not isinstance(content.get("parts", []), list):
        raise WireError(INVALID_ARGUMENT)
    return "".join(p.get("text", "") for p in content.get("parts", []) if isinstance(p, dict)
                   and isinstance(p.get("text", ""), str))


def first_function_name(tools: Any) -> str | None:
    """Name of the first declared function in setup.tools (snake_case form), if any."""
    for tool in tools or []:
        for declaration in (tool or {}).get("function_declarations") or []:
            if isinstance(declaration, dict) and isinstance(declaration.get("name"), str):
                return declaration["name"]
    return None
