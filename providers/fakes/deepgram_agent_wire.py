"""Deepgram Voice Agent wire pieces for the fake server, with no I/O: `Settings` validation and the
server messages (deepgram.md §5; shapes from the deepgram-sdk agent v1 types, which the fidelity test
parses every message into).

A `Settings` the real service cannot use is answered with its `Error` shape
(`{"type":"Error","description":"Error parsing client message. Check the <field> field against the API
spec.","code":"UNPARSABLE_CLIENT_MESSAGE"}`, as reported from the real service) and the connection ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audio.formats import AudioFormat

UNPARSABLE = "UNPARSABLE_CLIENT_MESSAGE"
UNMATCHED_TEXT = "Text message received from client did not match any of the formats we expect."
# [unsure] the idle-timeout code/description of the agent (seen in community reports, not in the SDK).
IDLE_CODE = "CLIENT_MESSAGE_TIMEOUT"
IDLE_DESCRIPTION = ("We did not receive audio within our timeout. Please ensure you are sending binary "
                    "messages containing user speech.")
INPUT_ENCODINGS = {"linear16": "pcm16", "mulaw": "mulaw", "alaw": "alaw"}  # the ones the fake decodes
OUTPUT_ENCODINGS = {"linear16": "pcm16", "mulaw": "mulaw", "alaw": "alaw"}
SAMPLE_RATES_HZ = (8000, 16000, 24000, 32000, 44100, 48000)
THINK_TYPES = ("open_ai", "anthropic", "google", "groq", "aws_bedrock", "deepgram")


class SettingsError(ValueError):
    """A Settings message the agent refuses; `field` is named in the Error description."""

    def __init__(self, field_name: str) -> None:
        super().__init__(field_name)
        self.field = field_name

    def message(self) -> dict[str, Any]:
        return error(UNPARSABLE, f"Error parsing client message. Check the {self.field} field against the API spec.")


@dataclass(slots=True, kw_only=True)
class AgentSettings:
    input_format: AudioFormat
    output_format: AudioFormat
    functions: list[dict[str, Any]] = field(default_factory=list)
    context: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""
    greeting: str | None = None
    think_types: list[str] = field(default_factory=list)


def _format(raw: Any, where: str, encodings: dict[str, str], default: AudioFormat) -> AudioFormat:
    if raw is None:
        return default
    if not isinstance(raw, dict):
        raise SettingsError(where)
    enc = raw.get("encoding", "linear16")
    rate = raw.get("sample_rate", default.sample_rate_hz)
    if enc not in encodings:
        raise SettingsError(f"{where}.encoding")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate not in SAMPLE_RATES_HZ:
        raise SettingsError(f"{where}.sample_rate")
    if enc != "linear16" and rate != 8000:
        raise SettingsError(f"{where}.sample_rate")
    if raw.get("container", "none") not in ("none", None):
        raise SettingsError(f"{where}.container")
    return AudioFormat(encoding=encodings[enc], sample_rate_hz=rate)


def _think(raw: Any) -> tuple[list[dict[str, Any]], str, list[str]]:
    entries = raw if isinstance(raw, list) else [raw] if raw is not None else []
    functions: list[dict[str, Any]] = []
    prompt, types = "", []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("provider"), dict):
            raise SettingsError("agent.think.provider")
        kind = entry["provider"].get("type")
        if kind not in THINK_TYPES:
            raise SettingsError("agent.think.provider.type")
        endpoint = entry.get("endpoint")
        if endpoint is not None and not (isinstance(endpoint, dict) and isinstance(endpoint.get("url"), str)):
            raise SettingsError("agent.think.endpoint")
        if kind in ("groq", "aws_bedrock") and endpoint is None:
            raise SettingsError("agent.think.endpoint")
        types.append(kind)
        for fn in entry.get("functions") or []:
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise SettingsError("agent.think.functions")
        functions = functions or list(entry.get("functions") or [])
        prompt = prompt or str(entry.get("prompt") or "")
    return functions, prompt, types


def _context(agent: dict[str, Any]) -> list[dict[str, Any]]:
    context = agent.get("context")
    messages = context.get("messages") if isinstance(context, dict) else agent.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise SettingsError("agent.context.messages")
    for m in messages:
        ok = isinstance(m, dict) and m.get("type") == "History" and (
            (m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str))
            or isinstance(m.get("function_calls"), list))
        if not ok:
            raise SettingsError("agent.context.messages")
    return messages


def parse_settings(message: dict[str, Any]) -> AgentSettings:
    """Validate a Settings message the way the fake needs it; SettingsError names the bad field."""
    audio = message.get("audio")
    if not isinstance(audio, dict):
        raise SettingsError("audio")
    agent = message.get("agent")
    if not isinstance(agent, dict):
        raise SettingsError("agent")
    greeting = agent.get("greeting")
    if greeting is not None and not isinstance(greeting, str):
        raise SettingsError("greeting")
    for part in ("listen", "speak"):
        value = agent.get(part)
        if value is not None and not isinstance(value, dict | list):
            raise SettingsError(f"agent.{part}")
    functions, prompt, types = _think(agent.get("think"))
    return AgentSettings(
        input_format=_format(audio.get("input"), "audio.input", INPUT_ENCODINGS,
                             AudioFormat(encoding="pcm16", sample_rate_hz=24000)),
        output_format=_format(audio.get("output"), "audio.output", OUTPUT_ENCODINGS,
                              AudioFormat(encoding="pcm16", sample_rate_hz=24000)),
        functions=functions, context=_context(agent), prompt=prompt, greeting=greeting, think_types=types)


# -- server messages ------------------------------------------------------------------------------
def welcome(request_id: str) -> dict[str, Any]:
    return {"type": "Welcome", "request_id": request_id}


def error(code: str, description: str) -> dict[str, Any]:
    return {"type": "Error", "description": description, "code": code}


def warning(code: str, description: str) -> dict[str, Any]:
    return {"type": "Warning", "description": description, "code": code}


def conversation_text(role: str, content: str) -> dict[str, Any]:
    return {"type": "ConversationText", "role": role, "content": content, "conversational_behavior": "default"}


def agent_started_speaking(ttt_s: float = 0.05, tts_s: float = 0.02) -> dict[str, Any]:
    return {"type": "AgentStartedSpeaking", "total_latency": round(ttt_s + tts_s, 3),
            "tts_latency": tts_s, "ttt_latency": ttt_s}


def function_call_request(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "FunctionCallRequest",
            "functions": [{"id": call_id, "name": name, "arguments": arguments, "client_side": True}]}


def simple(kind: str) -> dict[str, Any]:
    """SettingsApplied, UserStartedSpeaking, AgentAudioDone, PromptUpdated, SpeakUpdated."""
    return {"type": kind}
