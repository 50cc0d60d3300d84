"""GPT-Live wire shapes for the fake: `session.start` validation and the server objects it sends.

The `openai` SDK's `openai.types.live` is the schema (tests validate every event the fake sends
against the SDK model of its type). Where the SDK leaves a real server's behaviour open (exact error
codes and messages), the fake's choice is marked [unsure].
"""

from __future__ import annotations

from typing import Any

from audio.formats import ALAW_8K, MULAW_8K, PCM16_16K, PCM16_24K, AudioFormat

DEFAULT_VOICE = "marin"
SESSION_MAX_S = 3600  # [unsure] the fake's session duration limit (SessionResource.expires_at)
START_FIELDS = frozenset({"model", "audio", "client", "delegation", "input", "instructions", "safety_identifier",
                          "store", "triggers"})
UPDATE_FIELDS = frozenset({"delegation", "triggers"})
MAX_INPUT_ITEMS = 128
ROLES_CONTENT = {"developer": ("input_text",), "user": ("input_text",), "assistant": ("text", "output_text")}


class LiveWireError(Exception):  # noqa: N818 - carries a Live error payload, named after the wire concept
    def __init__(self, code: str, message: str, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code, self.message, self.param, self.type = code, message, param, kind

    def payload(self, client_event_id: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "type": self.type}
        if self.param is not None:
            error["param"] = self.param
        if client_event_id is not None:
            error["client_event_id"] = client_event_id
        return error


def _unknown(param: str) -> LiveWireError:
    return LiveWireError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def _invalid(param: str, message: str) -> LiveWireError:
    return LiveWireError("invalid_value", message, param)


def audio_format(fmt: dict[str, Any] | None) -> AudioFormat:
    if not fmt:
        return PCM16_24K
    kind = fmt.get("type")
    if kind == "audio/pcmu":
        return MULAW_8K
    if kind == "audio/pcma":
        return ALAW_8K
    return PCM16_16K if fmt.get("rate") == 16000 else PCM16_24K


def _parse_format(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("session.audio.format", "audio.format must be an object.")
    kind, rate = value.get("type"), value.get("rate")
    if kind == "audio/pcm":
        if rate not in (16000, 24000):
            raise _invalid("session.audio.format.rate", "Live WebSocket PCM audio supports 16000 or 24000 Hz.")
    elif kind in ("audio/pcmu", "audio/pcma"):
        if rate != 8000:
            raise _invalid("session.audio.format.rate", "G.711 audio uses 8000 Hz.")
    else:
        raise _invalid("session.audio.format.type", "Supported formats: audio/pcm, audio/pcmu, audio/pcma.")
    return {"type": kind, "rate": rate}


def _parse_audio(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("session.audio", "audio must be an object.")
    for key in value:
        if key not in ("format", "output"):
            raise _unknown(f"session.audio.{key}")
    fmt = _parse_format(value["format"]) if "format" in value else {"type": "audio/pcm", "rate": 24000}
    output = value.get("output") or {}
    voice = output.get("voice", DEFAULT_VOICE) if isinstance(output, dict) else None
    if not (isinstance(voice, str) or isinstance(voice, dict) and isinstance(voice.get("id"), str)):
        raise _invalid("session.audio.output.voice", "voice must be a built-in voice name or {id}.")
    return {"format": fmt, "output": {"voice": voice}}


def _parse_input(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_INPUT_ITEMS:
        raise _invalid("session.input", f"input must be a list of at most {MAX_INPUT_ITEMS} messages.")
    items = []
    for index, item in enumerate(value):
        param = f"session.input[{index}]"
        if not isinstance(item, dict) or item.get("role") not in ROLES_CONTENT:
            raise _invalid(param, "Each input item is a developer, user or assistant message.")
        content = item.get("content")
        if not isinstance(content, list) or len(content) != 1 or not isinstance(content[0], dict) \
                or not isinstance(content[0].get("text"), str):
            raise _invalid(f"{param}.content", "Supply exactly one text part.")
        part_type = content[0].get("type")
        if part_type is not None and part_type not in ROLES_CONTENT[item["role"]]:
            raise _invalid(f"{param}.content[0].type", f"Unsupported content type {part_type!r}.")
        items.append(item)
    return items


def _parse_delegation(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("client", "responses", "decisions"):
        raise _invalid(f"{param}.type", "delegation.type must be client, responses or decisions.")
    if value["type"] == "responses":
        responses = value.get("responses")
        if not isinstance(responses, dict) or not isinstance(responses.get("model"), str):
            raise LiveWireError("missing_required_parameter", "Missing required parameter: 'responses.model'.",
                                f"{param}.responses.model")
        for tool in responses.get("tools") or []:
            if not isinstance(tool, dict) or tool.get("type") == "function" and not isinstance(tool.get("name"), str):
                raise _invalid(f"{param}.responses.tools", "Each function tool needs a name.")
    return value


def parse_session_start(session: Any) -> dict[str, Any]:
    """The accepted startup configuration (without server metadata), or LiveWireError."""
    if not isinstance(session, dict):
        raise _invalid("session", "session must be an object.")
    for key in session:
        if key not in START_FIELDS:
            raise _unknown(f"session.{key}")
    model = session.get("model")
    if not isinstance(model, str) or not model:
        raise LiveWireError("missing_required_parameter", "Missing required parameter: 'session.model'.",
                            "session.model")
    config: dict[str, Any] = {"model": model, "audio": _parse_audio(session.get("audio") or {})}
    if isinstance(session.get("instructions"), str):
        config["instructions"] = session["instructions"]
    if session.get("input") is not None:
        config["input"] = _parse_input(session["input"])
    delegation = _parse_delegation(session.get("delegation"), "session.delegation")
    if delegation is not None:
        config["delegation"] = delegation
    return config


def apply_update(current: dict[str, Any], update: Any) -> dict[str, Any]:
    if not isinstance(update, dict):
        raise _invalid("session", "session must be an object.")
    for key in update:
        if key not in UPDATE_FIELDS:
            raise LiveWireError("immutable_field_update", f"session.{key} cannot change after startup.",
                                f"session.{key}")
    merged = dict(current)
    if "delegation" in update:
        new = _parse_delegation(update["delegation"], "session.delegation")
        old_type = (current.get("delegation") or {}).get("type", "client")
        if (new or {}).get("type", "client") != old_type:
            raise LiveWireError("immutable_field_update", "The delegation type cannot change.", "session.delegation")
        merged["delegation"] = {**(current.get("delegation") or {}), **(new or {})}
    if "triggers" in update:
        merged["triggers"] = update["triggers"]
    return merged


def function_tools(config: dict[str, Any]) -> list[dict[str, Any]]:
    delegation = config.get("delegation") or {}
    if delegation.get("type") != "responses":
        return []
    return [t for t in delegation["responses"].get("tools") or [] if t.get("type") == "function"]


def resource(config: dict[str, Any], *, session_id: str, expires_at: int) -> dict[str, Any]:
    """SessionResource: the resolved configuration plus server metadata."""
    return {"id": session_id, "expires_at": expires_at, "status": "active", **config}


def backend_response(response_id: str, model: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    """A Responses lifecycle snapshot as nested in `response.event` (input/instructions/tools cleared)."""
    return {"id": response_id, "object": "response", "created_at": 0, "status": status, "model": model,
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "instructions": None, "error": None, "incomplete_details": None, "metadata": {},
            "temperature": 1.0, "top_p": 1.0}
