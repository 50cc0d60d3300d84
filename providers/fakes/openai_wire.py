"""OpenAI Realtime (GA) wire shapes for the fake server: ids, the session object and its `session.update`
validation, audio formats, error and response builders, and the fake's speech (input decoding, recognising a
committed buffer, rendering a reply as DTMF tones or a parrot echo). Pure functions, no I/O.

Invariant: every dict built here validates against the openai SDK's pydantic model for its event `type`
(tests/fakes/test_sdk_openai.py checks it). Wire reference: docs/providers/openai.md.
"""

from __future__ import annotations

import copy
import math
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from audio.convert import convert
from audio.dtmf import generate_dtmf
from audio.formats import ALAW_8K, MULAW_8K, PCM16_24K, AudioFormat
from audio.g711 import alaw_decode, ulaw_decode
from audio.resample import resample
from providers.fakes.common import MAX_REPLY_DIGITS, DialectRecognizer, Utterance

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


def _json_type(value: Any) -> str:
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


def _invalid_type(param: str, expected: str, value: Any) -> WireError:
    return WireError("invalid_type",
                     f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.", param)


def _invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> WireError:
    choices = ", ".join(f"'{s}'" for s in supported[:-1]) + f", and '{supported[-1]}'" if len(supported) > 1 \
        else f"'{supported[0]}'"
    return WireError("invalid_value", f"Invalid value: '{value}'. Supported values are: {choices}.", param)


def _unknown(param: str) -> WireError:
    return WireError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def _missing(param: str) -> WireError:
    return WireError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid_type(param, "an object", value)
    return value


def _check_keys(obj: dict[str, Any], allowed: frozenset[str] | set[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _unknown(f"{param}.{key}")


def parse_format(value: Any, param: str) -> dict[str, Any]:
    """Validate a GA format object; strings are the beta spelling and GA rejects them (`invalid_type`)."""
    obj = _object(value, param)
    _check_keys(obj, {"type", "rate"}, param)
    kind = obj.get("type")
    if kind not in ("audio/pcm", "audio/pcmu", "audio/pcma"):
        raise _invalid_value(f"{param}.type", kind, ("audio/pcm", "audio/pcmu", "audio/pcma"))
    if kind == "audio/pcm":
        rate = obj.get("rate", 24000)
        if rate != 24000:  # reference §1: PCM is 24 kHz only
            raise WireError("invalid_value", f"Invalid value: {rate}. Supported values are: 24000.", f"{param}.rate")
        return dict(PCM_24K_WIRE)
    return {"type": kind}


def _parse_turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    obj = _object(value, param)
    kind = obj.get("type")
    if kind == "server_vad":
        defaults = SERVER_VAD_DEFAULTS
    elif kind == "semantic_vad":
        defaults = SEMANTIC_VAD_DEFAULTS
    else:
        raise _invalid_value(f"{param}.type", kind, ("server_vad", "semantic_vad"))
    _check_keys(obj, set(defaults), param)
    for key, value in obj.items():
        _check_vad_field(key, value, f"{param}.{key}")
    return {**defaults, **obj}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_vad_field(key: str, value: Any, param: str) -> None:
    if key in ("create_response", "interrupt_response") and not isinstance(value, bool):
        raise _invalid_type(param, "a boolean", value)
    if key in ("prefix_padding_ms", "silence_duration_ms") and not (_is_int(value) and 0 <= value <= 10_000):
        raise WireError("invalid_value", f"Invalid '{param}': expected an integer between 0 and 10000.", param)
    if key == "idle_timeout_ms" and value is not None and not (_is_int(value) and value > 0):
        raise WireError("invalid_value", f"Invalid '{param}': expected a positive integer or null.", param)
    if key == "threshold" and not (isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1):
        raise WireError("invalid_value", f"Invalid '{param}': expected a number between 0 and 1.", param)
    if key == "eagerness" and value not in ("low", "medium", "high", "auto"):
        raise _invalid_value(param, value, ("low", "medium", "high", "auto"))


def _parse_audio_input(obj: dict[str, Any], current: dict[str, Any], param: str) -> dict[str, Any]:
    _check_keys(obj, {"format", "transcription", "noise_reduction", "turn_detection"}, param)
    merged = dict(current)
    if "format" in obj:
        merged["format"] = parse_format(obj["format"], f"{param}.format")
    if "transcription" in obj:
        value = obj["transcription"]
        if value is not None:
            _check_keys(_object(value, f"{param}.transcription"),
                        {"model", "language", "prompt", "languages", "keywords", "delay"}, f"{param}.transcription")
        merged["transcription"] = copy.deepcopy(value)
    if "noise_reduction" in obj:
        value = obj["noise_reduction"]
        if value is not None:
            kind = _object(value, f"{param}.noise_reduction").get("type")
            if kind not in ("near_field", "far_field"):
                raise _invalid_value(f"{param}.noise_reduction.type", kind, ("near_field", "far_field"))
        merged["noise_reduction"] = copy.deepcopy(value)
    if "turn_detection" in obj:
        merged["turn_detection"] = _parse_turn_detection(obj["turn_detection"], f"{param}.turn_detection")
    return merged


def _parse_audio_output(obj: dict[str, Any], current: dict[str, Any], param: str, *,
                        audio_sent: bool) -> dict[str, Any]:
    _check_keys(obj, {"format", "voice", "speed"}, param)
    merged = dict(current)
    if "format" in obj:
        merged["format"] = parse_format(obj["format"], f"{param}.format")
    if "voice" in obj:
        voice = obj["voice"]
        if not isinstance(voice, str):
            raise _invalid_type(f"{param}.voice", "a string", voice)
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
        raise _invalid_type(where, "an array", value)
    for index, tool in enumerate(value):
        param = f"{where}[{index}]"
        tool = _object(tool, param)
        if tool.get("type") not in ("function", "mcp"):
            raise _invalid_value(f"{param}.type", tool.get("type"), ("function", "mcp"))
        if tool["type"] == "function" and not isinstance(tool.get("name"), str):
            raise _missing(f"{param}.name")
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
    raise _invalid_value(param, value if isinstance(value, str) else _json_type(value), ("auto", "none", "required"))


def _parse_scalars(update: dict[str, Any], merged: dict[str, Any], current: dict[str, Any]) -> None:
    if "model" in update and update["model"] != current.get("model"):
        raise WireError("invalid_value", "Cannot update a realtime session's model.", "session.model")
    if "instructions" in update:
        if not isinstance(update["instructions"], str):
            raise _invalid_type("session.instructions", "a string", update["instructions"])
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
    update = _object(update, "session")
    if "type" not in update:
        raise _missing("session.type")
    if update["type"] != "realtime":
        raise _invalid_value("session.type", update["type"], ("realtime",))
    for key in update:
        if key not in GA_SESSION_FIELDS:  # includes the beta-era flat fields
            raise _unknown(f"session.{key}")
    merged = copy.deepcopy(current)
    _parse_scalars(update, merged, current)
    if "tools" in update:
        merged["tools"] = parse_tools(update["tools"])
    if "audio" in update:
        audio = _object(update["audio"], "session.audio")
        _check_keys(audio, {"input", "output"}, "session.audio")
        if "input" in audio:
            merged["audio"]["input"] = _parse_audio_input(
                _object(audio["input"], "session.audio.input"), current["audio"]["input"], "session.audio.input")
        if "output" in audio:
            merged["audio"]["output"] = _parse_audio_output(
                _object(audio["output"], "session.audio.output"), current["audio"]["output"],
                "session.audio.output", audio_sent=audio_sent)
    return merged


# -- conversation items and responses ---------------------------------------------------------------------


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
    options = _object(value, "response")
    _check_keys(options, RESPONSE_FIELDS, "response")
    out_format = voice = None
    if "audio" in options:
        audio = _object(options["audio"], "response.audio")
        _check_keys(audio, {"output"}, "response.audio")
        output = _object(audio.get("output", {}), "response.audio.output")
        _check_keys(output, {"format", "voice"}, "response.audio.output")
        if "format" in output:
            out_format = parse_format(output["format"], "response.audio.output.format")
        if "voice" in output:
            if not isinstance(output["voice"], str):
                raise _invalid_type("response.audio.output.voice", "a string", output["voice"])
            voice = output["voice"]
    conversation = options.get("conversation", "auto")
    if conversation not in ("auto", "none"):
        raise _invalid_value("response.conversation", conversation, ("auto", "none"))
    metadata = options.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise _invalid_type("response.metadata", "an object of strings", metadata)
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
    item = _object(item, "item")
    if "id" in item and not isinstance(item["id"], str):
        raise _invalid_type("item.id", "a string", item["id"])
    kind = item.get("type")
    if kind is None:
        raise _missing("item.type")
    if kind not in ITEM_TYPES:
        raise _invalid_value("item.type", kind, ITEM_TYPES)
    if kind == "message":
        if item.get("role") not in ROLES:
            raise _invalid_value("item.role", item.get("role"), ROLES)
        content = item.get("content")
        if not isinstance(content, list):
            raise _invalid_type("item.content", "an array", content)
        for index, part in enumerate(content):
            part = _object(part, f"item.content[{index}]")
            for key in ("text", "transcript", "audio"):
                if part.get(key) is not None and not isinstance(part[key], str):
                    raise _invalid_type(f"item.content[{index}].{key}", "a string", part[key])
            if item["role"] == "assistant" and part.get("type") == "output_audio":
                # reference §2.1: assistant audio cannot be created by the client
                raise WireError("invalid_value", "Assistant audio content cannot be created by the client.",
                                f"item.content[{index}].type")
    elif kind == "function_call":
        for key in ("name", "arguments"):
            if not isinstance(item.get(key), str):
                raise _missing(f"item.{key}")
    else:
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                raise _missing(f"item.{key}")
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


# -- the fake's speech --------------------------------------------------------------------------------------

TONE_MS = 100  # reply digits: 100 ms tone + 100 ms gap each (audio.dtmf.generate_dtmf)
GAP_MS = 100
CHUNK_MS = 100  # reply audio goes out in 100 ms deltas


class InputDecoder:
    """Client audio in the session's input format → PCM16 at the format's rate (an odd PCM byte waits)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._carry = b""

    @property
    def rate_hz(self) -> int:
        return self.fmt.sample_rate_hz

    def decode(self, raw: bytes) -> bytes:
        if self.fmt.encoding == "mulaw":
            return ulaw_decode(raw)
        if self.fmt.encoding == "alaw":
            return alaw_decode(raw)
        data = self._carry + raw
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        return data[:cut]


def recognize_buffer(pcm16: bytes, rate_hz: int, end_silence_ms: int) -> tuple[str, bytes]:
    """A committed buffer (no server VAD): (DTMF digits heard, plain-speech audio to echo)."""
    recognizer = DialectRecognizer(rate_hz, end_silence_ms=end_silence_ms)
    utterances = [e for e in recognizer.feed(pcm16) + recognizer.flush() if isinstance(e, Utterance)]
    digits = "".join(u.text for u in utterances if u.is_dtmf)
    plain = b"".join(u.audio for u in utterances if not u.is_dtmf)
    return digits, plain


@dataclass(frozen=True, slots=True)
class SpokenReply:
    """What one reply says: its transcript, its audio in the output format, and when each transcript
    character starts sounding (so a truncation knows what the caller heard)."""

    transcript: str
    audio: bytes
    bytes_per_second: int
    onsets_ms: tuple[int, ...]

    @classmethod
    def silent(cls) -> SpokenReply:
        return cls("", b"", PCM16_24K.bytes_per_second, ())

    @property
    def duration_ms(self) -> int:
        return len(self.audio) * 1000 // self.bytes_per_second

    def heard_until(self, audio_end_ms: int) -> str:
        return self.transcript[: sum(1 for onset in self.onsets_ms if onset < audio_end_ms)]

    def chunks(self) -> Iterator[tuple[bytes, str]]:
        """(audio chunk, transcript characters that start sounding within it), in order."""
        size = self.bytes_per_second * CHUNK_MS // 1000
        count = max(1, math.ceil(len(self.audio) / size))
        for index in range(count):
            last = index == count - 1
            words = "".join(word for word, onset in zip(self.transcript, self.onsets_ms, strict=True)
                            if index * CHUNK_MS <= onset < (index + 1) * CHUNK_MS or (last and onset >= count * CHUNK_MS))
            yield self.audio[index * size:(index + 1) * size], words


def render_reply(digits: str, echo_pcm16: bytes, echo_rate_hz: int, out_fmt: AudioFormat) -> SpokenReply:
    """The digits spoken back as DTMF (at most MAX_REPLY_DIGITS), else the plain speech echoed
    (parrot), in `out_fmt`."""
    rate = out_fmt.sample_rate_hz
    digits = digits[:MAX_REPLY_DIGITS]
    if digits:
        pcm = generate_dtmf(digits, rate, tone_ms=TONE_MS, gap_ms=GAP_MS)
        onsets = tuple(i * (TONE_MS + GAP_MS) for i in range(len(digits)))
    else:
        pcm = resample(echo_pcm16, echo_rate_hz, rate) if echo_pcm16 and echo_rate_hz != rate else echo_pcm16
        onsets = ()
    audio = convert(pcm, AudioFormat(encoding="pcm16", sample_rate_hz=rate), out_fmt) if pcm else b""
    return SpokenReply(digits, audio, out_fmt.bytes_per_second, onsets)
