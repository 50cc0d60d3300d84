"""The chat chains, vision and reasoning: options, result, answer checks and the two chain specs.

Pure functions and data. Messages are kept in the OpenAI chat shape (role + string or content parts;
`image_url` parts carry a data URL or an http(s) URL); each translator maps them to its wire. An image
is sniffed from its magic bytes so an empty or unknown one is refused (400, a stable code) before any
provider is contacted or billed. An answer that is empty, cut off by the token limit, a refusal, or
below the confidence threshold of its complexity is `low_quality`: billed, and the chain moves on.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ClientError
from providers.chains.base import Usage
from providers.chains.spec import ChainCodes, ChainSpec

COMPLEXITIES = ("simple", "standard", "complex")
# the least provider-reported confidence an answer may carry, by complexity (no report: accepted)
CONFIDENCE_THRESHOLDS = {"simple": 0.5, "standard": 0.7, "complex": 0.85}
ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 256
MAX_TOKENS_LIMIT = 32_768
DEFAULT_MAX_TOKENS = 1024
IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


class BadChatRequest(ClientError):
    """A chat request we refuse before contacting any provider (HTTP 400)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatOptions:
    messages: tuple[dict[str, Any], ...] = field(repr=False)
    complexity: str = "standard"
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    stream: bool = False  # ask the provider for SSE (the runner then commits at its 2xx status line)

    @property
    def has_images(self) -> bool:
        return any(part.get("type") == "image_url" for m in self.messages for part in _parts(m))

    def upload_size(self) -> int:
        return sum(len(str(m.get("content", ""))) for m in self.messages)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatResult:
    text: str
    model: str
    finish_reason: str | None = None  # OpenAI vocabulary: stop, length, content_filter, ...
    refusal: bool = False
    confidence: float | None = None  # when the provider reports one (non-standard field `confidence`)
    usage: Usage = Usage()


@dataclass(frozen=True, slots=True)
class ChatDelta:
    """One streamed piece of an answer (text), or its end (finish_reason)."""

    text: str = ""
    finish_reason: str | None = None


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in _parts(message) if p.get("type") == "text")


# -- images -------------------------------------------------------------------------------------------
def sniff_image(data: bytes) -> str:
    """The image format of `data` from its magic bytes ('png', 'jpeg', 'gif', 'webp'); BadChatRequest."""
    if not data:
        raise BadChatRequest("the image is empty", code="empty_image")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise BadChatRequest("the image is not PNG, JPEG, GIF or WebP", code="unsupported_image")


def data_url(data: bytes) -> str:
    kind = sniff_image(data)
    return f"data:{IMAGE_FORMATS[kind]};base64,{base64.b64encode(data).decode()}"


def decode_data_url(url: str) -> tuple[str, bytes]:
    """(media type, bytes) of a base64 `data:` URL; BadChatRequest when it is not one or not an image."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise BadChatRequest("an image must be a base64 data: URL or an http(s) URL", code="bad_image")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadChatRequest("the image data URL is not valid base64", code="bad_image") from None
    return IMAGE_FORMATS[sniff_image(data)], data


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, GIF or baseline/progressive JPEG."""
    kind = sniff_image(data)
    if kind == "png" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if kind == "gif" and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if kind == "jpeg":
        pos = 2
        while pos + 9 < len(data):
            if data[pos] != 0xFF:
                return None
            marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
                return w, h
            pos += 2 + length
    return None


# -- validation (before any provider) and answer checks (after each) --------------------------------
def validate_chat(options: ChatOptions) -> None:
    if options.complexity not in COMPLEXITIES:
        raise BadChatRequest(f"complexity must be one of {', '.join(COMPLEXITIES)}", code="bad_option")
    if not 1 <= options.max_tokens <= MAX_TOKENS_LIMIT:
        raise BadChatRequest(f"max_tokens must be 1..{MAX_TOKENS_LIMIT}", code="bad_option")
    if options.temperature is not None and not 0 <= options.temperature <= 2:
        raise BadChatRequest("temperature must be 0..2", code="bad_option")
    if not options.messages or len(options.messages) > MAX_MESSAGES:
        raise BadChatRequest(f"messages must hold 1..{MAX_MESSAGES} messages", code="bad_messages")
    for message in options.messages:
        if message.get("role") not in ROLES:
            raise BadChatRequest(f"a message role must be one of {', '.join(ROLES)}", code="bad_messages")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise BadChatRequest("a message content must be a string or a list of parts", code="bad_messages")
        if isinstance(content, list) and (not content or not all(isinstance(p, dict) for p in content)):
            raise BadChatRequest("content parts must be objects with a type", code="bad_messages")
        for part in _parts(message) if isinstance(content, list) else []:
            if part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
                if not isinstance(url, str):
                    raise BadChatRequest("an image_url part needs image_url.url", code="bad_image")
                if not url.startswith(("http://", "https://")):
                    decode_data_url(url)
            elif part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadChatRequest("content parts must be text or image_url", code="bad_messages")
    if not any(text_of(m).strip() or _parts(m) for m in options.messages if m["role"] == "user"):
        raise BadChatRequest("the request holds no user message", code="bad_messages")


def validate_vision(options: ChatOptions) -> None:
    validate_chat(options)
    if not options.has_images:
        raise BadChatRequest("a vision request needs an image", code="missing_image")


REFUSALS = ("i can't help with", "i cannot help with", "i can't assist", "i cannot assist", "i'm sorry, but i can't",
            "i'm sorry, but i cannot")


def check_answer(options: ChatOptions, result: Any) -> str | None:
    """Why an answer is `low_quality` (None: acceptable)."""
    if not isinstance(result, ChatResult):
        return None
    if not result.text.strip():
        return "empty answer"
    if result.finish_reason == "length":
        return "answer cut off by the token limit"
    if result.refusal or result.finish_reason in ("content_filter", "refusal") \
            or result.text.strip().lower().startswith(REFUSALS):
        return "the model refused"
    threshold = CONFIDENCE_THRESHOLDS[options.complexity]
    if result.confidence is not None and result.confidence < threshold:
        return f"confidence {result.confidence:.2f} under {threshold:.2f} for {options.complexity}"
    return None


REASONING = ChainSpec(
    name="reasoning",
    endpoint="reasoning",
    order=("minimax", "openrouter", "anthropic"),
    codes=ChainCodes(all_failed="RSN-003",
                     by_provider={("minimax", None): "RSN-001", ("openrouter", None): "RSN-002"}),
    validate=validate_chat,
    check=check_answer,
)

VISION = ChainSpec(
    name="vision",
    endpoint="vision",
    order=("minimax", "openrouter", "openai"),
    codes=ChainCodes(all_failed="VIS-003",
                     by_provider={("minimax", None): "VIS-001", ("openrouter", None): "VIS-002"}),
    validate=validate_vision,
    check=check_answer,
    skip_when={"complex": ("minimax",)},  # MiniMax's vision is limited: complex images start at Qwen
)


def chat_usage(value: Any) -> Usage:
    """OpenAI `usage` (prompt/completion tokens) or Anthropic's (input/output tokens)."""
    if not isinstance(value, dict):
        return Usage()
    inp = value.get("prompt_tokens", value.get("input_tokens"))
    out = value.get("completion_tokens", value.get("output_tokens"))
    return Usage(input_tokens=_count(inp), output_tokens=_count(out))


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and 0 <= value < 2**53 else 0

