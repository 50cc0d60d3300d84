"""One model setting per live provider, GPT-Live reached with the OpenAI key and base URL, and
check-config's warning for a configured model with an announced retirement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from gateway.config import load_settings
from gateway.models import ANNOUNCED_RETIREMENTS, MODEL_SETTINGS, retirement_warnings

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "voice-gateway"


def test_each_live_provider_has_one_model_setting() -> None:
    settings = load_settings({"VG_GEMINI_MODEL": "g-model", "VG_OPENAI_REALTIME_MODEL": "gpt-realtime-2",
                              "VG_OPENAI_LIVE_MODEL": "gpt-live-1.1", "VG_DEEPGRAM_MODEL": "nova-3"})
    assert {n: p.model for n, p in settings.providers.items()} == {
        "gemini": "g-model", "openai": "gpt-realtime-2", "deepgram": "nova-3", "openai_live": "gpt-live-1.1",
        "deepgram_agent": None}
    assert set(MODEL_SETTINGS) == set(settings.providers)
    # the setting from before the Realtime/GPT-Live split still works; the new name wins
    assert load_settings({"VG_OPENAI_MODEL": "old"}).providers["openai"].model == "old"
    assert load_settings({"VG_OPENAI_MODEL": "old", "VG_OPENAI_REALTIME_MODEL": "new"}).providers["openai"].model == "new"


def test_gpt_live_uses_the_openai_key_and_base_url() -> None:
    settings = load_settings({"OPENAI_API_KEY": "sk-shared-1234", "OPENAI_BASE_URL": "https://proxy.example/v1"})
    live = settings.providers["openai_live"]
    assert (live.api_key, live.base_url, live.simulated) == ("sk-shared-1234", "wss://proxy.example/v1", False)
    assert settings.fallback_chain == ("gemini", "openai", "deepgram")  # GPT-Live is opt-in
    assert load_settings({"VG_FALLBACK_CHAIN": "openai_live,gemini"}).fallback_chain == ("openai_live", "gemini")


def test_retirement_warnings_name_the_setting_date_and_replacement() -> None:
    assert retirement_warnings({"openai": "gpt-realtime", "openai_live": None}) == []
    (warning,) = retirement_warnings({"openai": "gpt-4o-realtime-preview"})
    retired = ANNOUNCED_RETIREMENTS["gpt-4o-realtime-preview"]
    assert warning.startswith("VG_OPENAI_REALTIME_MODEL=gpt-4o-realtime-preview")
    assert retired.shutdown in warning and retired.replacement in warning
    (gemini,) = retirement_warnings({"gemini": "models/gemini-2.0-flash-live-001"})
    assert gemini.startswith("VG_GEMINI_MODEL=models/gemini-2.0-flash-live-001: announced to be shut down on 2025-12-09")


def test_check_config_warns_about_a_retired_model() -> None:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("VG_") and not k.endswith(("_API_KEY", "_API_KEY_FILE", "_BASE_URL"))}
    done = subprocess.run([str(CLI), "check-config"], cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={**clean, "VG_OPENAI_MODEL": "gpt-4o-mini-realtime-preview",
                               "VG_OPENAI_LIVE_MODEL": "gpt-live-1"})
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert [w for w in report["warnings"] if "shut down" in w] == [
        "VG_OPENAI_REALTIME_MODEL=gpt-4o-mini-realtime-preview: announced to be shut down on 2026-05-07; "
        "use gpt-realtime-mini"]
    assert report["settings"]["providers"]["openai_live"]["model"] == "gpt-live-1"
