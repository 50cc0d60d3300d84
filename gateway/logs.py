"""JSON logs, one object per line, with secrets redacted (docs/metrics.md "Logs").

Invariants: every line is one JSON object with `timestamp` (ISO 8601 UTC, milliseconds, `Z`),
`level`, `logger`, `event`, `message`, `provider`, `session_id`, then the event's own fields, and
`stack` on error logs. Redaction runs on every string that reaches the output (message, field
keys and values, stack), so no API key or token is ever written, whoever logged it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from gateway.errors import ConfigError

MASK = "***"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TOP_LEVEL = ("timestamp", "level", "logger", "event", "message", "provider", "session_id", "env", "stack")
_environment: str | None = None  # VG_ENV, stamped on every line once the runtime knows it


def set_environment(name: str | None) -> None:
    """Stamp `env` (development | staging | production) on every log line from now on."""
    global _environment
    _environment = name
# Libraries that log per frame or per request at INFO/DEBUG; our own events say what matters.
_NOISY_LOGGERS = ("websockets", "websockets.client", "websockets.server", "aiohttp.access",
                  "httpx", "httpcore", "hpack", "asyncio")

# -- context: who is logging, without threading it through every call ---------------------------
_session_id: ContextVar[str | None] = ContextVar("vg_log_session_id", default=None)
_provider: ContextVar[str | None] = ContextVar("vg_log_provider", default=None)


def set_log_context(*, session_id: str | None = None, provider: str | None = None) -> None:
    """Set the context for the current task (asyncio tasks copy it when created). None = keep."""
    if session_id is not None:
        _session_id.set(session_id)
    if provider is not None:
        _provider.set(provider)


@contextlib.contextmanager
def log_context(*, session_id: str | None = None, provider: str | None = None) -> Iterator[None]:
    """Scope `session_id`/`provider` for every log line emitted inside the block. None = keep."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []
    if session_id is not None:
        tokens.append((_session_id, _session_id.set(session_id)))
    if provider is not None:
        tokens.append((_provider, _provider.set(provider)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


# -- redaction -----------------------------------------------------------------------------------
_MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words; config values are far longer
_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask every occurrence of `value` in all future log output (config registers each key)."""
    global _secrets_re, _trigger_words
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _secrets_lock:
        variants = {value, value.strip()}
        if variants <= _secrets:
            return
        _secrets.update(v for v in variants if len(v) >= _MIN_SECRET_LEN)
        # Longest first so a secret containing another is masked whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in alternatives))
        _trigger_words = (*_TRIGGER_WORDS, *(s.casefold() for s in alternatives))


_VALUE = r"[^\s\"'&#,;)}\]]+"
# Each pattern keeps group 1 (the label) and masks what follows.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Query parameters: Gemini `?key=`, browser `?token=`, `access_token=`, `api_key=` ...
    re.compile(r"(?i)((?:[?&;]|\b)(?:key|token|access_token|api_key|apikey|api-key|auth_token|"
               r"client_secret|secret|password|signature|sig)=)" + _VALUE),
    # Authorization schemes: `Bearer <x>` anywhere; `Token <x>` (Deepgram) and `Basic <x>`.
    re.compile(r"(?i)(\bbearer\s+)" + _VALUE),
    re.compile(r"(\b(?:Token|Basic)\s+)" + _VALUE),
    re.compile(r"(?i)(\bauthorization[\"']?\s*[:=,]\s*[\"']?(?:token|basic|bearer)?\s*)" + _VALUE),
    # Header-shaped secrets, printed as `name: v`, `"name": "v"`, `('name', 'v')` or `name=v`.
    re.compile(r"(?i)(\b(?:x-goog-api-key|x-api-key|api-key|api_key|apikey|x-twilio-signature|"
               r"x-admin-token|client_secret|access_token|auth_token|twilio_auth_token|password)"
               r"[\"']?\s*[:=,]\s*[\"']?)" + _VALUE),
    # Subprotocol-carried keys: OpenAI browser auth, Deepgram `token, <key>` offers.
    re.compile(r"(?i)(\bopenai-insecure-api-key\.)" + _VALUE),
    re.compile(r"(?i)(\bsec-websocket-protocol[\"']?\s*[:=,]\s*[\"']?)[^\"'\r\n)}\]]+"),
    # Credentials in URLs: scheme://user:password@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/:@\"']+:)[^\s/@\"']+(?=@)"),
)
# Key-shaped strings, masked whole wherever they appear.
_KEY_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{8,}"  # OpenAI (sk-..., sk-proj-...)
    r"|\bAIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?<![0-9A-Fa-f])[0-9a-f]{40}(?![0-9A-Fa-f])"  # Deepgram keys are 40 hex characters
)
# Field names whose string values are secrets whatever they look like.
_SECRET_FIELD = re.compile(r"(?i)^(?:.*[_-])?(?:api[_-]?key|key|token|secret|password|authorization|"
                           r"signature|credentials?|sec-websocket-protocol|subprotocols?)$")


# A necessary condition of every pattern above, checked with plain substring searches of the
# case-folded text: a line containing none of these words cannot contain anything `redact` would
# mask, so it is returned as is without the ten substitutions (most lines; every refused
# over-limit frame logs one). Each word is the label a pattern needs (`key|token|secret|password|
# sig` end every parameter and header name), a key shape's prefix, or a registered secret (added by
# `register_secret`); 40-hex keys have no word, so a line of 40+ characters also gets one search for
# a 40-hex run. casefold() maps every character `(?i)` equates with an ASCII letter except the
# dotless ı, mapped by hand. tests/test_logs.py checks the two paths agree.
_TRIGGER_WORDS = ("key", "token", "secret", "password", "sig", "bearer", "basic", "authorization",
                  "sec-websocket-protocol", "://", "sk-", "aiza")
_trigger_words: tuple[str, ...] = _TRIGGER_WORDS
_HEX_RUN = re.compile(r"[0-9a-fA-F]{40}")


def _may_hold_secret(text: str) -> bool:
    folded = text.casefold()
    if "ı" in folded:
        folded = folded.replace("ı", "i")
    for word in _trigger_words:
        if word in folded:
            return True
    return len(text) >= 40 and _HEX_RUN.search(text) is not None


def redact(text: str) -> str:
    """Mask registered secrets and every secret-shaped pattern in `text`."""
    if not _may_hold_secret(text):
        return text
    return _redact_all(text)


def _redact_all(text: str) -> str:
    """Every substitution, unconditionally (`redact` without the pre-check)."""
    if _secrets_re is not None:
        text = _secrets_re.sub(MASK, text)
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1" + MASK, text)
    return _KEY_SHAPES.sub(MASK, text)


def _redact_value(value: Any, key: str | None = None) -> Any:
    if key is not None and isinstance(value, str | bytes) and value and _SECRET_FIELD.match(key):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {redact(str(k)): _redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return [redact(value[0]), _redact_value(value[1], value[0])]  # a (header, value) pair
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, key) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # never dump payloads or audio into logs
    return redact(str(value))


# -- formatting ----------------------------------------------------------------------------------
def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _context(record: logging.LogRecord, attr: str) -> str | None:
    """The context stamped on the record, else (plain `logger.info` seen by any handler) the
    context of the thread formatting it, which for our synchronous handlers is the caller's."""
    if hasattr(record, attr):
        return getattr(record, attr)
    return (_provider if attr == "vg_provider" else _session_id).get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record; everything redacted on the way out."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, "vg_fields", None) or {})
        out: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "vg_event", None) or "log",
            "message": redact(record.getMessage()),
            "provider": _redact_value(fields.pop("provider", None) or _context(record, "vg_provider")),
            "session_id": _redact_value(fields.pop("session_id", None) or _context(record, "vg_session_id")),
        }
        if _environment is not None:
            out["env"] = _environment
        for key, value in fields.items():
            name = f"field_{key}" if key in _TOP_LEVEL else redact(key)
            out[name] = _redact_value(value, key)
        stack = self._stack(record)
        if stack:
            out["stack"] = redact(stack)
        return orjson.dumps(out, default=str).decode()

    @staticmethod
    def _stack(record: logging.LogRecord) -> str | None:
        parts: list[str] = []
        if record.exc_info and record.exc_info[0] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)).rstrip())
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        return "\n".join(parts) or None


def log_event(logger: logging.Logger, level: int, event: str, message: str = "", *, expected: bool = False,
              **fields: Any) -> None:
    """Log one structured event. `exc_info=` is passed through; error logs raised inside an
    `except` block get the active traceback as `stack`, and other error logs the call stack.
    `expected=True` marks a failure the message fully explains (a rejected key, a bad config): its
    stack is attached only when DEBUG is enabled, so the operator sees one clear line."""
    if not logger.isEnabledFor(level):
        return
    exc_info = fields.pop("exc_info", None)
    stack_info = False
    if expected and not logger.isEnabledFor(logging.DEBUG):
        exc_info = exc_info if exc_info is not None else False
    elif level >= logging.ERROR and exc_info is None:
        if sys.exc_info()[0] is not None:
            exc_info = True
        else:
            stack_info = True
    logger.log(level, message or event, exc_info=exc_info, stack_info=stack_info, stacklevel=2,
               extra={"vg_event": event, "vg_fields": fields, "vg_session_id": _session_id.get(),
                      "vg_provider": _provider.get()})


class ConsoleFormatter(JsonFormatter):
    """`VG_LOG_FORMAT=console`: one readable line per record for a terminal,
    `HH:MM:SS.mmm LEVEL event message key=value ...`, redacted exactly like the JSON form (it is
    built from the same redacted object), with the stack indented below when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = orjson.loads(super().format(record))
        head = (f"{out.pop('timestamp')[11:23]} {out.pop('level'):<7} {out.pop('event')}: "
                f"{out.pop('message')}")
        stack = out.pop("stack", None)
        out.pop("logger", None)
        extras = " ".join(f"{k}={v}" for k, v in out.items() if v is not None)
        line = f"{head}  [{extras}]" if extras else head
        return line + ("\n    " + stack.replace("\n", "\n    ") if stack else "")


class _JsonHandler(logging.StreamHandler):
    """Marker class so configure_logging() can find and replace its own handler."""


def configure_logging(level: str = "INFO", stream: TextIO | None = None, *, fmt: str = "json") -> logging.Handler:
    """Install the log handler on the root logger (idempotent: replaces a previous one): JSON lines
    (the default, for containers) or `fmt="console"` for a terminal. `stream` defaults to the
    current sys.stdout."""
    name = level.upper()
    if name not in LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in ("json", "console"):
        raise ConfigError(f"log format must be json or console, got {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(old)
    handler = _JsonHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(ConsoleFormatter() if fmt == "console" else JsonFormatter())
    root.addHandler(handler)
    root.setLevel(name)
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(name)))
    return handler
