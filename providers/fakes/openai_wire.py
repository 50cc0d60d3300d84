"""OpenAI Realtime (GA) wire shapes for the fake server: the constants, ids, wire errors and their
builders, audio formats. The session object is in openai_session_wire.py, items and responses in
openai_response_wire.py, the fake's speech in openai_audio_wire.py. Pure functions, no I/O.

Invariant: every dict built here validates against the openai SDK's pydantic model for its event `type`
(tests/fakes/test_sdk_openai.py checks it). Wire reference: docs/providers/openai.md.
"""

from __future__ import annotations

import random
import string
from typing import Any

from audio.formats import ALAW_8K, MULAW_8K, PCM16_24K, AudioFormat

ALPHANUMERIC = string.ascii_letters + string.digits
DEFAULT_MODEL = "gpt-realtime"
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant. (fake: speaks DTMF digits back)"
SESSION_MAX_S = 3600  # reference §4: 60 min GA cap
SESSION_EXPIRED_MESSAGE = "Your session hit the maximum duration of 60 minutes."
# Beta-era flat session fields: GA answers them with `unknown_parameter` (reference §2.1).
BETA_SESSION_FIELDS = frozenset({
    "modalities", "voice", "input_audio_format", "output_audio_format", "input_audio_transcription",
    "turn_detection", "input_audio_noise_reduction", "temperature", "max_response_output_tokens", "speed",
})
GA_SESSION_FIELDS = frozenset({
    "type", "model", "instructions", "output_modalities", "audio", "tools", "tool_choice", "max_output_tokens",
    "tracing", "truncation", "prompt", "include", "parallel_tool_calls", "reasoning",
})
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
    "create_response": True, "interrupt_response": True, "idle_timeout_ms": None,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True,
}
PCM_24K_WIRE: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
MIN_COMMIT_MS = 100.0  # reference §2.1: commit needs >= 100 ms buffered


class Ids:
    """Deterministic OpenAI-looking ids (`event_...`, `item_...`, `resp_...`) from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def new(self, prefix: str, length: int = 21) -> str:
        return prefix + "_" + "".join(self._rng.choice(ALPHANUMERIC) for _ in range(length))


class WireError(Exception):  # noqa: N818 - carries an OpenAI error payload, named after the wire concept
    """A client event the real server rejects with an `error` event; the session continues."""

    def __init__(self, code: str, message: str, param: str | None = None,
                 type: str = "invalid_request_error") -> None:  # noqa: A002 - the wire field's name
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.type = type


def error_payload(err: WireError, client_event_id: str | None) -> dict[str, Any]:
    return {"type": err.type, "code": err.code, "message": err.message, "param": err.param,
            "event_id": client_event_id}


# -- audio formats ---------------------------------------------------------------------------------------


def audio_format(wire: dict[str, Any]) -> AudioFormat:
    """GA format object → our AudioFormat (`audio/pcm` is 24 kHz only; G.711 is 8 kHz)."""
    kind = wire.get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return MULAW_8K
    if kind == "audio/pcma":
        return ALAW_8K
    return PCM16_24K


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: Any) -> WireError:
    return WireError("invalid_type",
                     f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.", param)


def invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> WireError:
    choices = ", ".join(f"'{s}'" for s in supported[:-1]) + f", and '{supported[-1]}'" if len(supported) > 1 \
        else f"'{supported[0]}'"
    return WireError("invalid_value", f"Invalid value: '{value}'. Supported values are: {choices}.", param)


def unknown_parameter(param: str) -> WireError:
    return WireError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing_parameter(param: str) -> WireError:
    return WireError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def as_object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def check_keys(obj: dict[str, Any], allowed: frozenset[str] | set[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise unknown_parameter(f"{param}.{key}")


