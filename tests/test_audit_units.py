"""Readiness-audit defects (issue 12) that need no socket: breaker metric wording (1), provider
options on the wire (6), audit-trail actor ids (7), environment and key sources (9), plaintext
provider URLs (10). Each test failed on main before the fix.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from gateway import metrics
from gateway.audit import bearer_id, token_id
from gateway.breaker import BreakerPolicy, CircuitBreaker
from gateway.clients.native import parse_session_start
from gateway.clock import VirtualClock
from gateway.config import Settings, load_settings, production_simulated
from gateway.config_check import config_warnings
from gateway.errors import BadMessage
from gateway.logs import JsonFormatter, log_event, set_environment
from gateway.runtime import Runtime
from gateway.session_config import SessionConfig
from providers.base import Endpoint
from providers.deepgram import DeepgramAdapter
from providers.gemini import GeminiAdapter
from providers.openai import OpenAIAdapter
from providers.registry import BREAKER_NAMES

PROVIDERS = ("gemini", "openai", "deepgram")
ENDPOINT = Endpoint(base_url="wss://provider.test", api_key="k" * 12)


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def parsed(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


# -- 1. breaker metrics and logs in the audit's wording ---------------------------------------------
def test_every_breaker_family_has_series_for_every_provider_before_the_first_call() -> None:
    metrics.initialize(list(PROVIDERS))
    for p in PROVIDERS:
        labels = {"name": BREAKER_NAMES[p], "provider": p}
        for status in ("attempted", "success", "failure", "rejected"):
            assert metrics.sample("circuit_breaker_calls_total", {**labels, "status": status}) is not None
        for status in ("success", "failure"):
            assert metrics.sample("circuit_breaker_call_duration_seconds_count", {**labels, "status": status}) \
                is not None
        for src, dst in (("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")):
            assert metrics.sample("circuit_breaker_state_transitions_total",
                                  {**labels, "from_state": src, "to_state": dst}) is not None


def test_transition_labels_are_lower_case_and_opening_logs_at_error_with_its_counts(lines) -> None:
    clock = VirtualClock()
    b = CircuitBreaker("openai", clock=clock, policy=BreakerPolicy(open_timeout_s=1.0))
    labels = {"name": "openai_provider", "provider": "openai"}

    def transitions(src: str, dst: str) -> float:
        return metrics.sample("circuit_breaker_state_transitions_total",
                              {**labels, "from_state": src, "to_state": dst}) or 0.0

    before = transitions("closed", "open"), transitions("open", "half_open"), transitions("half_open", "closed")
    for _ in range(5):
        b.admit().failure("server")
    clock.advance(1.0)
    b.admit().success()
    b.admit().success()
    after = transitions("closed", "open"), transitions("open", "half_open"), transitions("half_open", "closed")
    assert [a - c for a, c in zip(after, before, strict=True)] == [1, 1, 1]
    assert metrics.sample("circuit_breaker_state_transitions_total",
                          {**labels, "from_state": "CLOSED", "to_state": "OPEN"}) is None
    logs = {x["event"]: x for x in parsed(lines) if x["logger"] == "gateway.breaker"}
    opened, closed = logs["breaker.opened"], logs["breaker.closed"]
    assert opened["level"] == "ERROR"
    assert (opened["consecutive_failures"], opened["threshold"]) == (5, 5)
    assert closed["level"] == "INFO" and closed["consecutive_successes"] == 2


# -- 6. provider_options reach each provider's setup --------------------------------------------------
def _session_start(options: dict) -> SessionConfig:
    return parse_session_start({"type": "session.start", "provider_options": options},
                               default_provider="gemini", default_fallback=PROVIDERS)


def test_gemini_options_reach_the_setup_message() -> None:
    cfg = _session_start({"gemini": {"proactive_audio": True, "thinking_budget": 512, "include_thoughts": False,
                                     "affective_dialog": True, "temperature": 0.4,
                                     "end_of_speech_sensitivity": "low", "silence_duration_ms": 800}})
    setup = json.loads(GeminiAdapter(cfg, ENDPOINT).open_frames(history=[], resume_handle=None)[0])["setup"]
    assert setup["proactivity"] == {"proactiveAudio": True}
    gen = setup["generationConfig"]
    assert gen["thinkingConfig"] == {"thinkingBudget": 512, "includeThoughts": False}
    assert (gen["enableAffectiveDialog"], gen["temperature"]) == (True, 0.4)
    vad = setup["realtimeInputConfig"]["automaticActivityDetection"]
    assert (vad["endOfSpeechSensitivity"], vad["silenceDurationMs"]) == ("END_SENSITIVITY_LOW", 800)
    assert gen["responseModalities"] == ["AUDIO"]  # our own settings stay


def test_openai_options_reach_the_session_update() -> None:
    cfg = _session_start({"openai": {"noise_reduction": "far_field", "semantic_vad": "high", "speed": 1.2,
                                     "transcription_model": "gpt-4o-transcribe"}})
    cfg = cfg.with_provider("openai")
    session = json.loads(OpenAIAdapter(cfg, ENDPOINT).open_frames(history=[], resume_handle=None)[0])["session"]
    audio_in = session["audio"]["input"]
    assert audio_in["noise_reduction"] == {"type": "far_field"}
    assert audio_in["turn_detection"] == {"type": "semantic_vad", "eagerness": "high"}
    assert audio_in["transcription"]["model"] == "gpt-4o-transcribe"
    assert session["audio"]["output"]["speed"] == 1.2


def test_deepgram_options_reach_the_query_string() -> None:
    cfg = _session_start({"deepgram": {"keyterm": ["Acme", "widget"], "smart_format": True, "diarize": False,
                                       "endpointing": 500}}).with_provider("deepgram")
    query = parse_qs(urlsplit(DeepgramAdapter(cfg, ENDPOINT).connect_request().url).query)
    assert query["keyterm"] == ["Acme", "widget"]
    assert (query["smart_format"], query["diarize"], query["endpointing"]) == (["true"], ["false"], ["500"])


def test_unknown_options_are_reported_and_bad_values_refused() -> None:
    cfg = _session_start({"gemini": {"proactive_audio": True, "no_such_knob": 1}, "openai": {"tempo": 2}})
    assert cfg.ignored_options == ("gemini.no_such_knob", "openai.tempo")
    assert cfg.provider_options["gemini"] == {"proactive_audio": True}
    with pytest.raises(BadMessage, match=r"provider_options\.openai\.noise_reduction"):
        _session_start({"openai": {"noise_reduction": "loud"}})


# -- 7. audit trail: actor is a token id, never the token ------------------------------------------------
def test_actor_ids_are_stable_and_never_the_token() -> None:
    token = "s3cret-admin-token-value"
    assert token_id(token) == token_id(token) == bearer_id(f"Bearer {token}")
    assert token not in token_id(token) and token_id(token).startswith("tok-")
    assert token_id(None) == bearer_id(None) == bearer_id("Basic abc") == "anonymous"


# -- 9. environment separation ---------------------------------------------------------------------------
def test_env_is_on_every_log_line_and_in_build_info(lines) -> None:
    rt = Runtime(Settings(environment="staging"))
    try:
        log_event(logging.getLogger("gateway.test"), logging.INFO, "probe", "probe")
        assert parsed(lines)[-1]["env"] == "staging"
        assert metrics.sample("voice_gateway_build_info", {"version": metrics.__version__, "env": "staging"}) == 1
    finally:
        set_environment(None)
        del rt


def test_production_with_a_simulated_provider_is_not_ready() -> None:
    settings = load_settings({"VG_ENV": "production", "GEMINI_API_KEY": "g" * 20})
    assert production_simulated(settings) == ["openai", "deepgram", "openai_live", "deepgram_agent"]
    rt = Runtime(settings)
    try:
        assert not rt.ready
        body = rt.readiness()
        assert body["status"] == "not_ready" and "openai, deepgram" in body["reason"]
    finally:
        set_environment(None)
    assert Runtime(load_settings({"VG_ENV": "staging"})).ready
    set_environment(None)
    with pytest.raises(Exception, match="VG_ENV"):
        load_settings({"VG_ENV": "prod"})


def test_check_config_shows_env_and_each_key_source_never_the_value(tmp_path: Path) -> None:
    key = "AIzaSyA-check-config-key-0123456789"
    key_file = tmp_path / "gemini.key"
    key_file.write_text(key + "\n")
    env = {"PATH": "/usr/bin:/bin", "VG_ENV": "production", "GEMINI_API_KEY_FILE": str(key_file),
           "OPENAI_API_KEY": "sk-check-config-openai-0123456789"}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    report = json.loads(out)
    assert report["environment"] == "production"
    # GPT-Live takes the OpenAI key; the Voice Agent the (missing) Deepgram key
    assert report["key_sources"] == {"gemini": f"file:{key_file}", "openai": "env", "deepgram": "simulated",
                                     "openai_live": "env", "deepgram_agent": "simulated"}
    assert any("deepgram" in w and "/readyz" in w for w in report["warnings"])
    assert key not in out and "sk-check-config-openai" not in out


# -- 10. plaintext provider URLs ---------------------------------------------------------------------------
def test_check_config_warns_on_plaintext_ws_to_a_non_loopback_host() -> None:
    remote = load_settings({"GEMINI_BASE_URL": "ws://10.1.2.3:9000", "OPENAI_BASE_URL": "ws://127.0.0.1:9001/v1",
                            "DEEPGRAM_BASE_URL": "wss://dg.example.com"})
    warnings = config_warnings(remote, {})
    assert len(warnings) == 1 and "GEMINI_BASE_URL" in warnings[0] and "10.1.2.3" in warnings[0]
    assert config_warnings(load_settings({"GEMINI_BASE_URL": "ws://localhost:9000"}), {}) == []
