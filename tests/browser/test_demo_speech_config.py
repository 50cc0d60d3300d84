"""The demo page in real chromium, beyond DTMF:
- real speech: the fake microphone plays the committed speech fixture, the simulated provider (the
  embedded default's offline speech engine) transcribes it within the word error measured by
  benchmarks/speech_wer.py and answers in synthesized speech, which the page plays;
- the settings panel: voice and instructions typed for Gemini reach the fake's setup; OpenAI's own
  voice and instructions reach the OpenAI fake after a switch; bad values are refused with messages
  and are not saved; settings survive a reload;
- compressed upload: MediaRecorder's WebM/Opus stream round-trips the DTMF digits.
Screenshots: test-artifacts/demo-speech.png, demo-config.png.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf
from playwright.async_api import async_playwright, expect

from audio.resample import resample
from providers.fakes.speech import REPLY_PREFIX, OfflineSpeech
from tests.browser.chromium import DEFAULT_TIMEOUT_MS, REPO, BrowserSession, chromium_args, save_screenshot
from tests.fakes.test_fake_speech import speech_wer
from tests.harness import Gateway

DIGITS = "1397#"
ADMIN = "demo-config-admin-token-77"


@pytest.fixture
def speech_mic(tmp_path: Path) -> Path:
    """The speech fixture as Chromium's fake microphone wants it: 48 kHz, lead and trailing silence."""
    samples, rate = sf.read(REPO / "fixtures" / "speech_16k.wav", dtype="int16")
    pcm48 = resample(samples.tobytes(), rate, 48000)
    silence = bytes(2 * 48000)
    path = tmp_path / "speech_48k.wav"
    sf.write(path, np.frombuffer(silence[: 48000] + pcm48 + silence * 3, dtype="<i2"), 48000, subtype="PCM_16")
    return path


@pytest.fixture
async def speech_browser(chromium_path: str, tmp_path: Path, speech_mic: Path) -> AsyncIterator[BrowserSession]:
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium_path, headless=True,
            args=chromium_args(speech_mic), viewport={"width": 1280, "height": 900})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield BrowserSession(context)
        finally:
            await context.close()


@pytest.mark.timeout(240)  # PocketSphinx decodes ~2.5x slower than real time on a loaded 2-core machine
async def test_spoken_fixture_is_transcribed_and_answered_in_speech(speech_browser: BrowserSession) -> None:
    engine = OfflineSpeech()
    try:
        async with Gateway(fake_kwargs={"gemini": {"speech": engine}}) as gw:
            page = await speech_browser.open(gw.http + "/")
            await page.select_option("#provider-select", "gemini")
            await page.click("#start")
            await page.wait_for_function("window.vg.micLevelMax > 0.05", timeout=10_000)  # the meter moved
            # the fixture has a pause after "please.": one or two user turns, each answered
            await page.wait_for_function(
                "window.vg.transcripts.filter(t => t.role === 'assistant').length >= 1"
                " && window.vg.events.some(e => e.type === 'turn.completed')", timeout=180_000)
            await page.wait_for_timeout(300)
            record = gw.fakes["gemini"].connections[-1]
            expected_turns = len(record.transcripts)
            await page.wait_for_function(
                f"window.vg.transcripts.filter(t => t.role === 'user').length >= {expected_turns}", timeout=180_000)
            heard = " ".join(t["text"] for t in await page.evaluate("window.vg.transcripts") if t["role"] == "user")
            wer = speech_wer.word_error_rate(speech_wer.SPEECH_TEXT, heard)
            print(f"browser path: heard {heard!r}, WER {wer:.4f} (fixture measured {speech_wer.MEASURED_WER:.4f})")
            assert wer <= speech_wer.MEASURED_WER, heard
            assistant = [t["text"] for t in await page.evaluate("window.vg.transcripts") if t["role"] == "assistant"]
            # every reply shown is the fake's answer to speech; with the fixture's pause the caller's second
            # turn may start while the first reply plays (a busy machine shifts that), so the replies are
            # matched as a set, not by index
            assert assistant and all(a.startswith(REPLY_PREFIX) for a in assistant), assistant
            assert set(assistant) & set(record.replies), (assistant, record.replies)
            # a spoken reply was played: seconds of PCM16 24 kHz, not DTMF and not the echo
            assert await page.evaluate("window.vg.audioBytesReceived") > 2 * 24000 * 1.0
            latencies = await page.evaluate("window.vg.latenciesMs")
            assert latencies and all(ms >= 0 for ms in latencies)
            await expect(page.locator("#transcript .latency").first).to_contain_text("reply after")
            await save_screenshot(page, "demo-speech.png")
            assert speech_browser.log(page).page_errors == []
    finally:
        await engine.close()


@pytest.mark.timeout(60)
async def test_settings_panel_validates_keeps_and_applies_per_provider(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN) as gw:
        page = await browser.open(gw.http + "/")
        await page.click("#config-panel summary")
        await page.select_option("#config-provider", "gemini")
        await page.fill("#cfg-temperature", "5")
        await expect(page.locator('#config-errors li[data-field="temperature"]')).to_have_text(
            "Temperature must be a number from 0 to 2.")
        await expect(page.locator("#cfg-temperature")).to_have_attribute("aria-invalid", "true")
        await page.fill("#cfg-tools", '[{"description": "no name"}]')
        await expect(page.locator('#config-errors li[data-field="tools"]')).to_have_text(
            'Tool 1 needs a "name" (a non-empty string).')
        await page.click("#start")  # refused while the settings are invalid
        await expect(page.locator("#status")).to_contain_text("Fix the provider settings first")
        assert not gw.fakes["gemini"].connections

        await page.fill("#cfg-temperature", "0.4")
        await page.fill("#cfg-tools", "")
        await page.fill("#cfg-voice", "Kore")
        await page.fill("#cfg-instructions", "Answer like a ship's captain.")
        await expect(page.locator("#config-errors li")).to_have_count(0)
        await expect(page.locator("#config-status")).to_contain_text("Saved for Gemini Live")
        # OpenAI has its own settings (and no temperature field: its Realtime API has none)
        await page.select_option("#config-provider", "openai")
        await expect(page.locator("#cfg-temperature")).to_be_hidden()
        await expect(page.locator("#cfg-voice")).to_have_value("")
        await page.fill("#cfg-voice", "coral")
        await page.fill("#cfg-instructions", "Be brief.")
        await page.select_option("#cfg-noise_reduction", "far_field")
        await save_screenshot(page, "demo-config.png")

        await page.reload()  # kept in the browser
        await page.click("#config-panel summary")
        await page.select_option("#config-provider", "gemini")
        await expect(page.locator("#cfg-voice")).to_have_value("Kore")
        await expect(page.locator("#cfg-temperature")).to_have_value("0.4")

        await page.select_option("#provider-select", "gemini")
        await page.click("#start")
        await expect(page.locator('#transcript p.final[data-role="user"]')).to_have_text([DIGITS], timeout=8000)
        setup = gw.fakes["gemini"].connections[-1].setup
        assert setup is not None
        speech = setup["generation_config"]["speech_config"]
        assert speech["voice_config"]["prebuilt_voice_config"]["voice_name"] == "Kore"
        assert setup["system_instruction"]["parts"][0]["text"] == "Answer like a ship's captain."
        sent = json.loads(browser.log(page).sockets[0].sent[0])
        assert sent["provider_options"]["openai"] == {"voice": "coral", "instructions": "Be brief.",
                                                      "noise_reduction": "far_field"}

        # a switch re-applies the new provider's own settings
        sid = await page.evaluate("window.vg.sessionId")
        async with aiohttp.ClientSession() as http, http.post(
                f"{gw.http}/admin/sessions/{sid}/switch", json={"provider": "openai"},
                headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            assert r.status == 200
        await expect(page.locator('#events li[data-type="provider.switched"]')).to_contain_text(
            "your OpenAI Realtime settings apply", timeout=5000)
        session = gw.fakes["openai"].connections[-1].extra["session"]
        assert session["audio"]["output"]["voice"] == "coral"
        assert session["instructions"] == "Be brief."
        assert browser.log(page).page_errors == []


@pytest.mark.timeout(60)
async def test_compressed_upload_round_trips_dtmf(browser: BrowserSession) -> None:
    async with Gateway() as gw:
        page = await browser.open(gw.http + "/")
        await page.select_option("#provider-select", "gemini")
        await page.check("#compressed")
        await page.click("#start")
        await expect(page.locator('#transcript p.final[data-role="user"]')).to_have_text([DIGITS], timeout=10_000)
        await expect(page.locator('#transcript p.final[data-role="assistant"]')).to_have_text([DIGITS],
                                                                                              timeout=8000)
        sent = browser.log(page).sockets[0].sent
        start = json.loads(sent[0])
        assert start["audio"]["input"] == {"encoding": "webm", "sample_rate": 16000}
        binary = [f for f in sent[1:] if isinstance(f, bytes)]
        assert binary and binary[0][:4] == bytes.fromhex("1a45dfa3")  # an EBML (WebM) stream
        assert sum(map(len, binary)) < 0.5 * 32000 * 3  # far less than 3 s of PCM16 16 kHz
        assert gw.fakes["gemini"].connections[-1].digits == DIGITS
        assert browser.log(page).page_errors == []


@pytest.fixture
async def insecure_browser(chromium_path: str, tmp_path: Path) -> AsyncIterator[BrowserSession]:
    """Chromium that reaches the gateway as http://vg-demo.test (not loopback: not a secure context)."""
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium_path, headless=True,
            args=[*chromium_args(REPO / "fixtures" / "dtmf_browser_48k.wav"),
                  "--host-resolver-rules=MAP vg-demo.test 127.0.0.1"])
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield BrowserSession(context)
        finally:
            await context.close()


@pytest.mark.timeout(30)
async def test_demo_page_says_why_the_microphone_is_blocked_off_https(insecure_browser: BrowserSession) -> None:
    async with Gateway() as gw:
        page = await insecure_browser.open(f"http://vg-demo.test:{gw.port}/")
        assert await page.evaluate("window.isSecureContext") is False
        await expect(page.locator("#secure-warning")).to_be_visible()
        await expect(page.locator("#secure-warning")).to_contain_text("not on HTTPS or localhost")
        await page.click("#start")
        await expect(page.locator("#status")).to_have_text(
            "The microphone is blocked: this page is not on HTTPS or localhost.")
        await expect(page.locator("#status")).to_have_class("status bad")
        assert not gw.fakes["gemini"].connections
        assert insecure_browser.log(page).page_errors == []
