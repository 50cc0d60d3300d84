"""JSON logs: one object per line, ISO UTC timestamps, context, stacks, and no secret ever written."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import orjson
import pytest

from gateway.errors import ConfigError
from gateway.logs import configure_logging, log_context, log_event, redact, register_secret, set_log_context

log = logging.getLogger("gateway.test_logs")


@pytest.fixture
def output() -> Iterator[Callable[[], list[dict]]]:
    """configure_logging() on a private stream; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        # asyncio's GC-time warnings about other tests' leftovers can land here at any moment: skip them
        yield lambda: [x for x in (orjson.loads(line) for line in stream.getvalue().splitlines())
                       if x["logger"] != "asyncio"]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_one_json_object_per_line_with_the_designed_keys(output) -> None:
    log_event(log, logging.INFO, "link.reconnecting", "Reconnecting to gemini", attempt=2, max_attempts=5,
              backoff_delay=2.0, provider="gemini", session_id="s-1")
    (line,) = output()
    assert list(line)[:7] == ["timestamp", "level", "logger", "event", "message", "provider", "session_id"]
    assert line == {**line, "level": "INFO", "logger": "gateway.test_logs", "event": "link.reconnecting",
                    "message": "Reconnecting to gemini", "provider": "gemini", "session_id": "s-1",
                    "attempt": 2, "max_attempts": 5, "backoff_delay": 2.0}
    assert "stack" not in line


def test_timestamp_is_iso8601_utc_with_milliseconds(output) -> None:
    log_event(log, logging.INFO, "x")
    stamp = output()[0]["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


def test_plain_library_logs_are_json_too(output) -> None:
    logging.getLogger("some.library").warning("disk %s at %d%%", "/tmp", 93)
    (line,) = output()
    assert (line["event"], line["message"], line["level"], line["provider"]) == (
        "log", "disk /tmp at 93%", "WARNING", None)


def test_configure_logging_is_idempotent_and_quiets_noisy_libraries(output) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    configure_logging("debug", stream=stream)
    log_event(log, logging.INFO, "once")
    assert len(stream.getvalue().splitlines()) == 1
    assert output() == []  # the earlier handler was replaced, not kept alongside
    assert logging.getLogger("websockets").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("aiohttp.access").getEffectiveLevel() >= logging.WARNING
    with pytest.raises(ConfigError):
        configure_logging("LOUD", stream=stream)


def test_disabled_levels_cost_nothing(output) -> None:
    class Explosive:
        def __str__(self) -> str:
            raise AssertionError("formatted a disabled log line")

    logging.getLogger().setLevel(logging.INFO)
    log_event(log, logging.DEBUG, "noise", payload=Explosive())
    assert output() == []


# -- context ---------------------------------------------------------------------------------
def test_log_context_scopes_session_and_provider(output) -> None:
    with log_context(session_id="sess-A", provider="openai"):
        log_event(log, logging.INFO, "inside")
        with log_context(provider="deepgram"):
            log.info("nested plain log")
        log_event(log, logging.INFO, "explicit wins", provider="gemini")
    log_event(log, logging.INFO, "outside")
    lines = output()
    assert [(e["session_id"], e["provider"]) for e in lines] == [
        ("sess-A", "openai"), ("sess-A", "deepgram"), ("sess-A", "gemini"), (None, None)]


async def test_context_is_per_task(output) -> None:
    async def call(session_id: str, ready: asyncio.Event, go: asyncio.Event) -> None:
        set_log_context(session_id=session_id, provider="gemini")
        ready.set()
        await go.wait()  # both tasks have set their context before either logs
        log_event(log, logging.INFO, "turn", session_id_seen=session_id)

    go = asyncio.Event()
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(call(f"s{i}", ready[i], go)) for i in range(2)]
    await asyncio.gather(*(r.wait() for r in ready))
    go.set()
    await asyncio.gather(*tasks)
    log_event(log, logging.INFO, "parent")
    seen = {(e["session_id"] or "", e.get("session_id_seen") or "") for e in output()}
    assert seen == {("", ""), ("s0", "s0"), ("s1", "s1")}


# -- stacks ----------------------------------------------------------------------------------
def test_error_logs_carry_the_traceback(output) -> None:
    def connect() -> None:
        raise ConnectionResetError("peer went away")

    try:
        connect()
    except ConnectionResetError:
        log_event(log, logging.ERROR, "link.failed", "link failed", error_type="network")
    (line,) = output()
    assert line["level"] == "ERROR"
    assert "Traceback (most recent call last)" in line["stack"]
    assert "in connect" in line["stack"] and "ConnectionResetError: peer went away" in line["stack"]


def test_error_logs_outside_an_exception_carry_the_call_stack(output) -> None:
    log_event(log, logging.ERROR, "config.invalid", "GEMINI_API_KEY rejected by the provider")
    assert "test_error_logs_outside_an_exception_carry_the_call_stack" in output()[0]["stack"]


# -- redaction -------------------------------------------------------------------------------
DEEPGRAM_HEX = "3f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"
LEAKS = [  # (text that may reach a log, the secret inside it)
    ("wss://generativelanguage.googleapis.com/ws/x.BidiGenerateContent?key=FAKEgemini123456", "FAKEgemini123456"),
    ("ws://127.0.0.1:8080/v1/voice?token=tok_abcdef123456&x=1", "tok_abcdef123456"),
    ("https://example.test/cb?a=1&access_token=acc_ZZZ999888777", "acc_ZZZ999888777"),
    ("GET /listen?model=nova-3&api_key=apik_123456789", "apik_123456789"),
    ("Authorization: Bearer eyJhbGciOi.fakepayload.sig123", "eyJhbGciOi.fakepayload.sig123"),
    ("authorization: bearer lowercasebearer99", "lowercasebearer99"),
    ("Authorization: Token dg0123fakefakefake", "dg0123fakefakefake"),
    ("x-goog-api-key: goog-secret-value-123", "goog-secret-value-123"),
    ("[('x-goog-api-key', 'tuplefakekey999')]", "tuplefakekey999"),
    ('{"x-goog-api-key": "jsonheaderkey555"}', "jsonheaderkey555"),
    ('{"api_key": "jsonfakekey777"}', "jsonfakekey777"),
    ("using key sk-proj-FAKEabcdef1234567890 for openai", "sk-proj-FAKEabcdef1234567890"),
    ("gemini key AIzaSyFAKEFAKEFAKEFAKEFAKE12345 loaded", "AIzaSyFAKEFAKEFAKEFAKEFAKE12345"),
    ("X-Twilio-Signature: RSOYDt4T1cUTdK1PDd93/VVr8B8=", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("subprotocols ['realtime', 'openai-insecure-api-key.plainfakekey123']", "plainfakekey123"),
    ("Sec-WebSocket-Protocol: token, dgfakekey4242", "dgfakekey4242"),
    (f"deepgram key {DEEPGRAM_HEX}", DEEPGRAM_HEX),
    ("proxy wss://user:pw_fake_1234@proxy.test/", "pw_fake_1234"),
]


@pytest.mark.parametrize(("text", "secret"), LEAKS, ids=[s for _, s in LEAKS])
def test_secret_patterns_are_masked_in_message_fields_and_stack(output, text: str, secret: str) -> None:
    log_event(log, logging.INFO, "x", text, url=text, nested={"headers": [text]})
    try:
        raise ConnectionError(f"handshake failed: {text}")
    except ConnectionError:
        log_event(log, logging.ERROR, "y", "failed")
    log.warning("plain %s", text)
    raw = "\n".join(orjson.dumps(line).decode() for line in output())
    assert secret not in raw
    assert raw.count("***") >= 5


def test_registered_secrets_are_masked_everywhere(output) -> None:
    secret = "correct-horse-battery-staple-42"  # shaped like nothing: only registration can catch it
    register_secret(secret)
    log_event(log, logging.INFO, "x", f"value {secret}.", blob={secret: [f"<{secret}>"]}, other=(secret,))
    try:
        raise RuntimeError(f"bad {secret}")
    except RuntimeError:
        log_event(log, logging.ERROR, "y")
    raw = "\n".join(orjson.dumps(line).decode() for line in output())
    assert secret not in raw
    assert "value ***." in raw


def test_secret_named_fields_are_masked_whatever_they_hold(output) -> None:
    log_event(log, logging.INFO, "x", api_key="short1", admin_token="tok", client_secret="abc",
              max_tokens=512, token_count=3)
    (line,) = output()
    assert (line["api_key"], line["admin_token"], line["client_secret"]) == ("***", "***", "***")
    assert (line["max_tokens"], line["token_count"]) == (512, 3)


def test_header_pairs_and_subprotocol_lists_are_masked(output) -> None:
    log_event(log, logging.INFO, "x", headers=[("x-goog-api-key", "pairkey-1"), ("user-agent", "vg/0.1")],
              subprotocols=["token", "bare-deepgram-key-2"])
    (line,) = output()
    assert line["headers"] == [["x-goog-api-key", "***"], ["user-agent", "vg/0.1"]]
    assert line["subprotocols"] == ["***", "***"]


def test_audio_bytes_never_reach_the_log(output) -> None:
    log_event(log, logging.INFO, "x", chunk=b"\x00\x01" * 80)
    assert output()[0]["chunk"] == "<160 bytes>"


def test_ordinary_text_survives_redaction() -> None:
    text = "Circuit breaker 'gemini_provider' is OPEN. Retry after 60.0 seconds. max_tokens=512 keyboard=us"
    assert redact(text) == text


def test_reserved_field_names_do_not_overwrite_the_envelope(output) -> None:
    log_event(log, logging.INFO, "real.event", "real message", timestamp="spoof", stack="spoof")
    (line,) = output()
    assert (line["event"], line["field_timestamp"], line["field_stack"]) == ("real.event", "spoof", "spoof")
    assert line["timestamp"] != "spoof" and "stack" not in line


# -- the pre-check that lets ordinary lines skip the substitutions ---------------------------------
_FRAGMENTS = ["key", "token", "Token", "Basic", "bearer", "secret", "password", "sig", "signature",
              "authorization", "x-goog-api-key", "api_key", "openai-insecure-api-key", "sec-websocket-protocol",
              "sk-", "AIza", "ws://", "user", "@", ":", "=", ",", ".", " ", "\"", "'", "?", "&", "(", ")",
              "abcDEF0123456789", "0123456789abcdef", DEEPGRAM_HEX[:20], "-", "_", "max_tokens", "keyboard"]


@pytest.mark.parametrize("text", [t for t, _ in LEAKS] + [
    "message of 70000 bytes is over the 65536-byte limit", "gemini link up in 41 ms", "keyboard=us",
    "Circuit breaker 'gemini_provider' is OPEN. Retry after 60.0 seconds."])
def test_the_precheck_never_skips_a_line_the_substitutions_would_change(text: str) -> None:
    from gateway.logs import _redact_all

    assert redact(text) == _redact_all(text)


def test_the_precheck_agrees_with_the_substitutions_on_generated_text() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gateway.logs import _redact_all

    register_secret("correct-horse-battery-staple-42")

    @settings(max_examples=400, deadline=None, derandomize=True)
    @given(st.lists(st.sampled_from([*_FRAGMENTS, "correct-horse-battery-staple-42"]), max_size=14))
    def check(parts: list[str]) -> None:
        text = "".join(parts)
        assert redact(text) == _redact_all(text)

    check()
