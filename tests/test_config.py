"""Settings: env parsed once into frozen dataclasses; bad values are ConfigErrors; secrets stay hidden."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gateway.config import ProviderSettings, load_settings
from gateway.errors import ConfigError
from gateway.logs import redact

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "voice-gateway"


def test_defaults_run_every_provider_simulated() -> None:
    settings = load_settings({})
    assert {n: p.mode for n, p in settings.providers.items()} == {
        "gemini": "simulated", "openai": "simulated", "deepgram": "simulated", "openai_live": "simulated"}
    assert settings.default_provider == "gemini"
    assert settings.fallback_chain == ("gemini", "openai", "deepgram")
    assert settings.reconnect.schedule() == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert (settings.breaker.failure_threshold, settings.breaker.open_timeout_s,
            settings.breaker.half_open_max_calls, settings.breaker.success_threshold) == (5, 60.0, 3, 2)
    assert (settings.replay_buffer_chunks, settings.openai_rotate_after_s, settings.drain_timeout_s,
            settings.idle_timeout_s, settings.max_message_bytes) == (100, 3300.0, 30.0, 60.0, 65536)
    assert (settings.max_frames_per_s, settings.max_bytes_per_s) == (200, 0)  # 0: from the audio format
    assert settings.return_to_primary_after_s is None
    assert settings.client_tokens == () and not settings.client_auth_configured
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.default_provider = "openai"  # type: ignore[misc]


def test_provider_keys_and_base_urls() -> None:
    settings = load_settings({
        "GEMINI_API_KEY": "gem-key-123456",
        "OPENAI_BASE_URL": "http://127.0.0.1:9001/v1/",
        "DEEPGRAM_BASE_URL": "https://dg.internal:8443",
        "VG_OPENAI_MODEL": "gpt-realtime",
    })
    gemini, openai, deepgram = (settings.providers[n] for n in ("gemini", "openai", "deepgram"))
    assert (gemini.api_key, gemini.base_url, gemini.simulated) == ("gem-key-123456", None, False)
    assert gemini.live_base_url == "wss://generativelanguage.googleapis.com"
    assert (openai.api_key, openai.base_url, openai.model, openai.simulated) == (
        None, "ws://127.0.0.1:9001/v1", "gpt-realtime", False)  # http read as ws, slash dropped
    assert deepgram.base_url == "wss://dg.internal:8443"


def test_api_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "openai.key"
    key_file.write_text("sk-file-based-key-000111\n")
    settings = load_settings({"OPENAI_API_KEY_FILE": str(key_file)})
    assert settings.providers["openai"].api_key == "sk-file-based-key-000111"
    assert not settings.providers["openai"].simulated


def test_secrets_are_registered_for_redaction(tmp_path: Path) -> None:
    key_file = tmp_path / "deepgram.key"
    key_file.write_text("dg-from-file-98765")
    load_settings({"DEEPGRAM_API_KEY_FILE": str(key_file), "VG_ADMIN_TOKEN": "admin-zzz-4321",
                   "VG_CLIENT_TOKENS": "client-one-777, client-two-888", "TWILIO_AUTH_TOKEN": "twilio-auth-5555",
                   "VG_CLIENT_TOKEN_SECRET": "signing-secret-abcdef"})
    text = "dg-from-file-98765 admin-zzz-4321 client-one-777 client-two-888 twilio-auth-5555 signing-secret-abcdef"
    assert redact(text) == "*** *** *** *** *** ***"


def test_reprs_never_show_secrets() -> None:
    settings = load_settings({"GEMINI_API_KEY": "gem-repr-secret-1", "VG_ADMIN_TOKEN": "admin-repr-secret-2"})
    text = repr(settings)
    assert "gem-repr-secret-1" not in text and "admin-repr-secret-2" not in text
    assert "api_key='***'" in repr(settings.providers["gemini"])
    assert "api_key=None" in repr(ProviderSettings(name="openai"))


def test_gateway_settings_from_env() -> None:
    settings = load_settings({
        "VG_DEFAULT_PROVIDER": "openai", "VG_FALLBACK_CHAIN": "openai, deepgram",
        "VG_CLIENT_TOKENS": "a-token-1,b-token-2", "VG_ALLOWED_ORIGINS": "https://app.example, http://localhost:3000",
        "VG_LOG_LEVEL": "debug", "VG_RECONNECT_MAX_ATTEMPTS": "3", "VG_RECONNECT_INITIAL_BACKOFF_S": "0.5",
        "VG_RECONNECT_JITTER": "0.25", "VG_BREAKER_FAILURE_THRESHOLD": "2", "VG_BREAKER_OPEN_TIMEOUT_S": "5",
        "VG_BREAKER_HALF_OPEN_MAX_CALLS": "1", "VG_BREAKER_SUCCESS_THRESHOLD": "1",
        "VG_REPLAY_BUFFER_CHUNKS": "50", "VG_OPENAI_ROTATE_AFTER_S": "600", "VG_RETURN_TO_PRIMARY_AFTER_S": "120",
        "VG_DRAIN_TIMEOUT_S": "0", "VG_IDLE_TIMEOUT_S": "15", "VG_MAX_FRAMES_PER_S": "100",
        "VG_MAX_BYTES_PER_S": "64000", "VG_PUBLIC_URL": "https://gw.example/", "VG_PORT": "9000",
    })
    assert settings.default_provider == "openai"
    assert settings.fallback_chain == ("openai", "deepgram")
    assert settings.client_tokens == ("a-token-1", "b-token-2") and settings.client_auth_configured
    assert settings.allowed_origins == ("https://app.example", "http://localhost:3000")
    assert settings.log_level == "DEBUG"
    assert settings.reconnect.schedule() == [0.5, 1.0, 2.0]
    assert settings.reconnect.jitter_s == 0.25
    assert (settings.breaker.failure_threshold, settings.breaker.open_timeout_s,
            settings.breaker.half_open_max_calls, settings.breaker.success_threshold) == (2, 5.0, 1, 1)
    assert (settings.replay_buffer_chunks, settings.openai_rotate_after_s, settings.return_to_primary_after_s,
            settings.drain_timeout_s, settings.idle_timeout_s) == (50, 600.0, 120.0, 0.0, 15.0)
    assert (settings.max_frames_per_s, settings.max_bytes_per_s, settings.port) == (100, 64000, 9000)
    assert settings.public_url == "wss://gw.example"  # the URL Twilio signs for a <Stream>


@pytest.mark.parametrize(("env", "names"), [
    ({"VG_RECONNECT_MAX_ATTEMPTS": "five"}, "VG_RECONNECT_MAX_ATTEMPTS"),
    ({"VG_RECONNECT_MAX_ATTEMPTS": "0"}, "VG_RECONNECT_MAX_ATTEMPTS"),
    ({"VG_BREAKER_OPEN_TIMEOUT_S": "-1"}, "VG_BREAKER_OPEN_TIMEOUT_S"),
    ({"VG_BREAKER_OPEN_TIMEOUT_S": "inf"}, "VG_BREAKER_OPEN_TIMEOUT_S"),
    ({"VG_RECONNECT_JITTER": "nan"}, "VG_RECONNECT_JITTER"),
    ({"VG_IDLE_TIMEOUT_S": "soon"}, "VG_IDLE_TIMEOUT_S"),
    ({"VG_PORT": "70000"}, "VG_PORT"),
    ({"VG_DEFAULT_PROVIDER": "anthropic"}, "VG_DEFAULT_PROVIDER"),
    ({"VG_FALLBACK_CHAIN": "gemini,bogus"}, "VG_FALLBACK_CHAIN"),
    ({"VG_FALLBACK_CHAIN": "gemini,gemini"}, "VG_FALLBACK_CHAIN"),
    ({"VG_LOG_LEVEL": "LOUD"}, "VG_LOG_LEVEL"),
    ({"GEMINI_BASE_URL": "ftp://host"}, "GEMINI_BASE_URL"),
    ({"OPENAI_BASE_URL": "wss://"}, "OPENAI_BASE_URL"),
    ({"DEEPGRAM_BASE_URL": "wss://host:99999"}, "DEEPGRAM_BASE_URL"),
    ({"VG_ALLOWED_ORIGINS": "app.example"}, "VG_ALLOWED_ORIGINS"),
    ({"VG_PUBLIC_URL": "gw.example"}, "VG_PUBLIC_URL"),
    ({"GEMINI_API_KEY_FILE": "/nonexistent/key"}, "GEMINI_API_KEY_FILE"),
    ({"GEMINI_API_KEY": "k-123456", "GEMINI_API_KEY_FILE": "/x"}, "GEMINI_API_KEY_FILE"),
])
def test_bad_values_are_config_errors_naming_the_variable(env: dict, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert names in info.value.message


def test_config_errors_never_echo_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OPENAI_BASE_URL": "wss://user:hunter2-secret@host/v1"})
    assert "hunter2-secret" not in info.value.message
    with pytest.raises(ConfigError) as info:
        load_settings({"GEMINI_API_KEY": "gem-dup-secret-9", "GEMINI_API_KEY_FILE": "/x"})
    assert "gem-dup-secret-9" not in info.value.message


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_settings({"DEEPGRAM_API_KEY_FILE": str(empty)})


def test_return_to_primary_can_be_switched_off() -> None:
    for off in ("off", "0", ""):
        assert load_settings({"VG_RETURN_TO_PRIMARY_AFTER_S": off}).return_to_primary_after_s is None


# -- check-config, as the operator runs it ---------------------------------------------------
def run_check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("VG_") and not k.endswith(("_API_KEY", "_API_KEY_FILE", "_BASE_URL"))}
    return subprocess.run([str(CLI), "check-config"], env={**clean, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=30)


def test_check_config_prints_the_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    key_file = tmp_path / "dg.key"
    key_file.write_text("dg-file-secret-4444")
    secrets = {"GEMINI_API_KEY": "AIzaFAKEcheckconfig000000000000", "OPENAI_API_KEY": "sk-checkconfig-1111",
               "VG_ADMIN_TOKEN": "admin-checkconfig-2222", "VG_CLIENT_TOKENS": "client-checkconfig-3333",
               "TWILIO_AUTH_TOKEN": "twilio-checkconfig-5555"}
    done = run_check_config({**secrets, "DEEPGRAM_API_KEY_FILE": str(key_file), "VG_FALLBACK_CHIAN": "x"})
    assert done.returncode == 0, done.stderr
    for secret in [*secrets.values(), "dg-file-secret-4444"]:
        assert secret not in done.stdout and secret not in done.stderr
    report = orjson.loads(done.stdout)
    assert report["ok"] is True
    # GPT-Live goes live with the OpenAI key
    assert report["providers"] == {"gemini": "live", "openai": "live", "deepgram": "live", "openai_live": "live"}
    assert report["settings"]["providers"]["openai"]["api_key"] == "***"
    assert report["settings"]["admin_token"] == "***"
    assert report["settings"]["client_token_secret"] is None
    assert report["warnings"] == ["VG_FALLBACK_CHIAN is not a known setting"]


def test_check_config_exits_2_with_the_error() -> None:
    done = run_check_config({"VG_BREAKER_FAILURE_THRESHOLD": "-3", "OPENAI_API_KEY": "sk-should-not-leak-77"})
    assert done.returncode == 2
    assert "VG_BREAKER_FAILURE_THRESHOLD" in done.stderr
    assert orjson.loads(done.stdout)["ok"] is False
    assert "sk-should-not-leak-77" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
