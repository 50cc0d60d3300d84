"""OpenAI Realtime (GA interface only) client messages (docs/providers/openai.md §2.1, §3): formats,
`session.update`, carried conversation items and the small per-call messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from audio.formats import ALAW_8K, MULAW_8K, PCM16_24K, AudioFormat
from gateway.events import ConversationItem
from gateway.session_config import SessionConfig
from providers import options
from providers.history import history_lines, packed_transcript, pending_tool_calls

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_VOICE = "marin"
TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
# Our own event_id on session.update: an `error` naming it means the config was refused, which is a
# configuration problem (fatal for the link), not a transient one.
SESSION_UPDATE_EVENT_ID = "vg_session_update"
HISTORY_HEADING = "Previous conversation in this call:"


def provider_format(client: AudioFormat) -> AudioFormat:
    """The format we exchange with OpenAI for a client format: G.711 passes through unchanged
    (§1: with audio/pcmu a Twilio μ-law payload is forwarded byte for byte); everything else is
    PCM16 24 kHz, the only PCM rate GA accepts."""
    if client.encoding == "mulaw":
        return MULAW_8K
    if client.encoding == "alaw":
        return ALAW_8K
    return PCM16_24K


def format_object(fmt: AudioFormat) -> dict[str, Any]:
    """GA wants an object, never the beta string (§1: a string is `invalid_type`)."""
    if fmt.encoding == "mulaw":
        return {"type": "audio/pcmu"}
    if fmt.encoding == "alaw":
        return {"type": "audio/pcma"}
    return {"type": "audio/pcm", "rate": fmt.sample_rate_hz}


def model_name(config: SessionConfig, endpoint_model: str | None) -> str:
    return str(config.options_for("openai").get("model") or endpoint_model or DEFAULT_MODEL)


def session_update(config: SessionConfig, *, input_format: AudioFormat, output_format: AudioFormat) -> dict[str, Any]:
    transcription: dict[str, Any] = {"model": TRANSCRIPTION_MODEL}
    if config.language:
        # The transcription model takes ISO-639-1 ("en"), not a BCP-47 tag ("en-US").
        transcription["language"] = config.language.split("-")[0].lower()
    session: dict[str, Any] = {"type": "realtime"}  # required in GA (§2.1)
    if instructions := config.instructions_for("openai"):
        session["instructions"] = instructions
    session["output_modalities"] = ["audio"]
    session["audio"] = {
        "input": {"format": format_object(input_format), "transcription": transcription,
                  "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}},
        "output": {"format": format_object(output_format), "voice": config.voice_for("openai") or DEFAULT_VOICE},
    }
    session["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                         "parameters": t.parameters} for t in config.tools]
    session["tool_choice"] = "auto"
    options.openai_session(session, config.options_for("openai"))
    return {"type": "session.update", "event_id": SESSION_UPDATE_EVENT_ID, "session": session}


def _create(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": item}


def history_items(history: Sequence[ConversationItem]) -> list[dict[str, Any]]:
    """The prior conversation for a fresh session: everything finished as ONE user input_text
    message (§2.1 field caveat: many assistant-text items make the model answer in text instead of
    speaking), then each still-open tool call as a real function_call item so the pending result
    can complete it with a function_call_output."""
    items: list[dict[str, Any]] = []
    lines = history_lines(history, skip_pending_calls=True)
    if lines:
        text = packed_transcript(lines, heading=HISTORY_HEADING)
        items.append(_create({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}))
    for call in pending_tool_calls(history):
        items.append(_create({"type": "function_call", "call_id": call.call_id, "name": call.name,
                              "arguments": orjson.dumps(call.arguments, default=str).decode()}))
    return items


def user_text(text: str) -> list[dict[str, Any]]:
    return [_create({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}),
            {"type": "response.create"}]


def tool_output(call_id: str, output: str) -> list[dict[str, Any]]:
    return [_create({"type": "function_call_output", "call_id": call_id, "output": output}),
            {"type": "response.create"}]
