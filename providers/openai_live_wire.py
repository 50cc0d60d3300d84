"""OpenAI GPT-Live client messages (the `openai` SDK's `openai.types.live` is the schema): the audio
format, `session.start` with the carried conversation as startup `input`, delegation and the small
per-call commands.

GPT-Live takes ONE audio format for both directions (`session.audio.format`), immutable after
start; voice, model and instructions are immutable too, so everything is decided at `session.start`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audio.formats import ALAW_8K, MULAW_8K, PCM16_16K, PCM16_24K, AudioFormat
from gateway.events import ConversationItem
from gateway.session_config import SessionConfig
from providers.history import history_lines

DEFAULT_MODEL = "gpt-live-1"
DEFAULT_VOICE = "marin"
# The backend model that runs the session's function tools (Responses delegation); the guide's example
# backend. Per call: provider_options.openai_live.delegation_model.
DEFAULT_DELEGATION_MODEL = "gpt-6-luna"
# Our own event_id on session.start: an `error` naming it means the configuration was refused.
SESSION_START_EVENT_ID = "vg_session_start"
# BuiltInVoice in openai.types.live; any other name (a Gemini voice carried over a switch) would be
# refused at start, so it falls back to the default.
BUILT_IN_VOICES = frozenset({
    "alloy", "ash", "ballad", "beacon", "bossa", "cedar", "cinder", "coral", "delta", "echo", "gleam", "marin",
    "meridian", "quartz", "ripple", "sage", "shida", "shimmer", "stone", "tempo", "verse", "vesper", "willow"})
# SessionConfig.input: at most 128 text messages and (by default) 8,192 rendered tokens.
MAX_INITIAL_ITEMS = 128
MAX_INITIAL_CHARS = 24_000  # ~3 characters per token keeps the carried history inside the default limit
# session.instructions.append / commentary.append content: at most 500 tokens.
MAX_APPEND_CHARS = 1_500
TYPED_TURN_PREFIX = "The caller typed this message instead of speaking it: "
CLIENT_DELEGATION_TOOL = "delegate"  # the tool.call name a client delegation is surfaced as


def provider_format(client: AudioFormat) -> AudioFormat:
    """The one format exchanged with GPT-Live for a client format: G.711 passes through byte for byte
    (`audio/pcmu`, `audio/pcma` at 8 kHz); PCM16 at 16 kHz as is, any other PCM rate as 24 kHz (the
    WebSocket PCM rates are 16000 and 24000)."""
    if client.encoding == "mulaw":
        return MULAW_8K
    if client.encoding == "alaw":
        return ALAW_8K
    if client.sample_rate_hz in (8000, 16000):
        return PCM16_16K
    return PCM16_24K


def format_object(fmt: AudioFormat) -> dict[str, Any]:
    if fmt.encoding == "mulaw":
        return {"type": "audio/pcmu", "rate": 8000}
    if fmt.encoding == "alaw":
        return {"type": "audio/pcma", "rate": 8000}
    return {"type": "audio/pcm", "rate": fmt.sample_rate_hz}


def model_name(config: SessionConfig, endpoint_model: str | None) -> str:
    return str(config.options_for("openai_live").get("model") or endpoint_model or DEFAULT_MODEL)


def voice_name(config: SessionConfig) -> str:
    voice = config.voice_for("openai_live")
    return voice if voice in BUILT_IN_VOICES else DEFAULT_VOICE


def initial_items(history: Sequence[ConversationItem]) -> list[dict[str, Any]]:
    """The finished conversation as startup `input` messages (one text part each), newest kept when
    the record is longer than the limits allow. Tool traffic becomes bracketed lines (history.py)."""
    items: list[dict[str, Any]] = []
    total = 0
    for line in reversed(history_lines(history, skip_pending_calls=True)):
        if len(items) >= MAX_INITIAL_ITEMS or total + len(line.text) > MAX_INITIAL_CHARS:
            break
        total += len(line.text)
        if line.role == "assistant":
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": line.text}]})
        else:
            items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": line.text}]})
    items.reverse()
    return items


def delegation(config: SessionConfig) -> dict[str, Any] | None:
    """The session's tools as GPT-Live offers them: function tools of a Responses backend, whose calls
    come back to us to run (`response.event`) and whose results we return with `response.item.create`.
    No tools: None (client delegation, the default)."""
    if not config.tools:
        return None
    options = config.options_for("openai_live")
    responses: dict[str, Any] = {
        "model": str(options.get("delegation_model") or DEFAULT_DELEGATION_MODEL),
        "tools": [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
                  for t in config.tools],
    }
    if isinstance(options.get("delegation_instructions"), str):
        responses["instructions"] = options["delegation_instructions"]
    return {"type": "responses", "responses": responses}


def session_start(config: SessionConfig, *, fmt: AudioFormat, endpoint_model: str | None,
                  history: Sequence[ConversationItem]) -> dict[str, Any]:
    session: dict[str, Any] = {
        "model": model_name(config, endpoint_model),
        "audio": {"format": format_object(fmt), "output": {"voice": voice_name(config)}},
    }
    instructions = config.instructions_for("openai_live")
    if instructions:
        session["instructions"] = instructions
    items = initial_items(history)
    if items:
        session["input"] = items
    deleg = delegation(config)
    if deleg is not None:
        session["delegation"] = deleg
    return {"type": "session.start", "event_id": SESSION_START_EVENT_ID, "session": session}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_APPEND_CHARS else text[: MAX_APPEND_CHARS - 1] + "…"


def typed_turn(text: str) -> dict[str, Any]:
    """GPT-Live has no user text message: a typed turn goes in as appended developer context that
    quotes it, which the model answers like speech."""
    return {"type": "session.instructions.append", "content": _clip(TYPED_TURN_PREFIX + text),
            "delegation_id": None}


def function_output(call_id: str, output: str) -> list[dict[str, Any]]:
    """A Responses-delegation function result, then continue the delegated response."""
    return [{"type": "response.item.create", "item": {"type": "function_call_output", "call_id": call_id,
                                                      "output": output}},
            {"type": "response.create"}]


def delegation_result(delegation_id: str, output: str) -> dict[str, Any]:
    """A client delegation's result, for the model to communicate (session.commentary.append)."""
    return {"type": "session.commentary.append", "content": _clip(output), "delegation_id": delegation_id}
