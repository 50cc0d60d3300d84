"""Deepgram Voice Agent (`/v1/agent/converse`) wire pieces, with no I/O: the think-provider list, the
endpoint that carries it, and the `Settings` message built from a session config and the conversation.

Invariants: shapes follow the official deepgram-sdk agent types (AgentV1Settings and the think/speak/
listen provider unions); a think endpoint's headers hold LLM keys, so nothing here puts them in a repr,
and the fake records a `Settings` only after masking them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError
from gateway.events import ConversationItem
from gateway.session_config import SessionConfig, ToolSpec
from providers.base import Endpoint
from providers.history import history_lines

AGENT_PATH = "/v1/agent/converse"
DEFAULT_LISTEN_MODEL = "nova-3"
DEFAULT_SPEAK_MODEL = "aura-2-thalia-en"
DEFAULT_THINK_MODEL = "gemini-2.5-flash"  # a current Gemini Flash model the Agent API lists
# Bring-your-own Google endpoint: the model is part of the URL and the AI Studio key is a header
# (Deepgram "LLM Models": with a custom endpoint the `model` property is not sent).
GEMINI_THINK_URL = "https://generativelanguage.googleapis.com/v1beta/models/{model}:streamGenerateContent?alt=sse"
# Think provider types the Agent API takes (deepgram-sdk ThinkSettingsV1Provider union).
THINK_TYPES = ("google", "open_ai", "anthropic", "groq", "aws_bedrock", "deepgram")
ENCODING = {"pcm16": "linear16", "mulaw": "mulaw", "alaw": "alaw"}
MASK = "***"


@dataclass(frozen=True, slots=True, kw_only=True)
class ThinkProvider:
    """One entry of `agent.think` (a list is the API's own fallback order)."""

    type: str
    model: str | None = None
    endpoint_url: str | None = None
    endpoint_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # secrets

    def to_wire(self, *, prompt: str, functions: list[dict[str, Any]]) -> dict[str, Any]:
        provider: dict[str, Any] = {"type": self.type}
        if self.model and not (self.type == "google" and self.endpoint_url):
            provider["model"] = self.model
        think: dict[str, Any] = {"provider": provider}
        if self.endpoint_url:
            think["endpoint"] = {"url": self.endpoint_url, "headers": dict(self.endpoint_headers)}
        if prompt:
            think["prompt"] = prompt
        if functions:
            think["functions"] = functions
        return think


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class AgentEndpoint(Endpoint):
    """Where the agent is, plus how it thinks (built once at start-up from the settings)."""

    think: tuple[ThinkProvider, ...] = ()


def parse_think_entry(entry: str, *, default_model: str) -> tuple[str, str | None]:
    """`type` or `type:model` from VG_DEEPGRAM_THINK_PROVIDERS. ConfigError for an unknown type."""
    kind, _, model = entry.strip().partition(":")
    if kind not in THINK_TYPES:
        raise ConfigError(f"VG_DEEPGRAM_THINK_PROVIDERS: unknown think provider {kind!r}; "
                          f"expected one of {', '.join(THINK_TYPES)}")
    if kind in ("groq", "aws_bedrock"):  # Deepgram hosts no model for these: an endpoint is required
        raise ConfigError(f"VG_DEEPGRAM_THINK_PROVIDERS: {kind} needs its own endpoint; give it per call "
                          "in provider_options.deepgram.think")
    return kind, (model or (default_model if kind == "google" else None))


def think_providers(entries: Sequence[str], *, model: str, gemini_api_key: str | None,
                    gateway_url: str | None = None, gateway_token: str | None = None,
                    gateway_model: str = "auto") -> tuple[ThinkProvider, ...]:
    """The think list: the gateway's own chat endpoint first when configured (an OpenAI-compatible
    custom endpoint), then each entry. A `google` entry thinks through the Gemini API with
    GEMINI_API_KEY as the endpoint header when that key is set, else on Deepgram's managed Gemini."""
    out: list[ThinkProvider] = []
    if gateway_url:
        headers = (("authorization", f"Bearer {gateway_token}"),) if gateway_token else ()
        out.append(ThinkProvider(type="open_ai", model=gateway_model, endpoint_url=gateway_url,
                                 endpoint_headers=headers))
    for entry in entries:
        kind, entry_model = parse_think_entry(entry, default_model=model)
        if kind == "google" and gemini_api_key:
            out.append(ThinkProvider(type="google", model=entry_model,
                                     endpoint_url=GEMINI_THINK_URL.format(model=entry_model),
                                     endpoint_headers=(("x-goog-api-key", gemini_api_key),)))
        else:
            out.append(ThinkProvider(type=kind, model=entry_model))
    return tuple(out)


def functions(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Session tools as client-side agent functions (no endpoint: the agent asks us to run them)."""
    return [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]


def context_messages(history: Sequence[ConversationItem]) -> list[dict[str, Any]]:
    """The conversation record as `agent.context.messages` History entries (tool traffic as text)."""
    return [{"type": "History", "role": line.role, "content": line.text}
            for line in history_lines(history, skip_pending_calls=True)]


def speak_model(config: SessionConfig, options: dict[str, Any]) -> str:
    voice = options.get("speak_model") or config.voice
    return voice if isinstance(voice, str) and voice.startswith("aura") else DEFAULT_SPEAK_MODEL


def settings_message(config: SessionConfig, endpoint: AgentEndpoint, history: Sequence[ConversationItem],
                     *, output_encoding: str, output_rate_hz: int) -> dict[str, Any]:
    """The `Settings` message (deepgram.md §5; AgentV1Settings)."""
    options = config.options_for("deepgram")
    fmt = config.input_format
    listen: dict[str, Any] = {"type": "deepgram", "version": "v1",
                              "model": str(options.get("model") or endpoint.model or DEFAULT_LISTEN_MODEL)}
    if config.language:
        listen["language"] = config.language
    raw_think = options.get("think")
    if isinstance(raw_think, dict | list):  # a per-call think object/list, passed through as given
        think: Any = raw_think
    else:
        providers = endpoint.think or (ThinkProvider(type="google", model=DEFAULT_THINK_MODEL),)
        entries = [p.to_wire(prompt=config.instructions, functions=functions(config.tools)) for p in providers]
        think = entries[0] if len(entries) == 1 else entries
    agent: dict[str, Any] = {"listen": {"provider": listen}, "think": think,
                             "speak": {"provider": {"type": "deepgram", "model": speak_model(config, options)}}}
    greeting = options.get("greeting")
    if isinstance(greeting, str) and greeting and not history:
        agent["greeting"] = greeting
    messages = context_messages(history)
    if messages:
        agent["context"] = {"messages": messages}
    return {"type": "Settings",
            "audio": {"input": {"encoding": ENCODING[fmt.encoding], "sample_rate": fmt.sample_rate_hz},
                      "output": {"encoding": output_encoding, "sample_rate": output_rate_hz, "container": "none"}},
            "agent": agent}


def masked_settings(message: Any) -> Any:
    """A copy of a Settings message with every think/speak endpoint header value masked."""
    if isinstance(message, dict):
        return {k: ({h: MASK for h in v} if k == "headers" and isinstance(v, dict) else masked_settings(v))
                for k, v in message.items()}
    if isinstance(message, list):
        return [masked_settings(v) for v in message]
    return message
