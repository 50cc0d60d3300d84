"""The demo page (GET /) in a real headless chromium whose fake microphone plays
fixtures/dtmf_browser_48k.wav ("1397#"): the page captures at the context rate, downsamples to
PCM16 16 kHz in its AudioWorklet and streams binary frames to WS /v1/voice (docs/protocol.md); the
fake provider recognises the digits, and the page shows the transcript, the events and plays the
reply. Screenshots: test-artifacts/demo-page*.png.
"""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Page, expect

from audio.dtmf import detect_dtmf
from tests.browser.chromium import BrowserSession, save_screenshot
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(30)
DIGITS = "1397#"  # what dtmf_browser_48k.wav dials (fixtures/README.md)
FRAME_BYTES_16K_20MS = 640
SPEECH_TO_SPEECH = {"gemini": True, "openai": True, "deepgram": False, "openai_live": True}
SCREENSHOT = {"gemini": "demo-page.png", "openai": "demo-page-openai.png", "deepgram": "demo-page-deepgram.png",
              "openai_live": "demo-page-openai-live.png"}


def heard(pcm16: bytes, rate_hz: int) -> str:
    return "".join(d.digit for d in detect_dtmf(pcm16, rate_hz))


async def wait_for_event(page: Page, kind: str, role: str | None = None, *, timeout_ms: int = 8000) -> None:
    await page.wait_for_function(
        "([kind, role]) => window.vg.events.some(e => e.type === kind && (role === null || e.role === role))",
        arg=[kind, role], timeout=timeout_ms)


async def start_call(page: Page, provider: str, *, token: str = "") -> None:
    await page.select_option("#provider-select", provider)
    if token:
        await page.fill("#token", token)
    await page.click("#start")


@pytest.mark.parametrize("provider", ["gemini", "openai", "deepgram", "openai_live"])
async def test_demo_page_streams_the_microphone_and_shows_transcript_events_and_reply(
        browser: BrowserSession, provider: str) -> None:
    async with Gateway() as gw:
        page = await browser.open(gw.http + "/")
        await start_call(page, provider)

        await expect(page.locator('#transcript p.final[data-role="user"]')).to_have_text([DIGITS], timeout=8000)
        await expect(page.locator("#provider")).to_have_text(provider)
        await expect(page.locator('#events li[data-type="session.started"]')).to_contain_text(f"provider {provider}")
        record = gw.fakes[provider].connections[-1]
        assert record.digits == DIGITS
        assert heard(bytes(record.audio), record.audio_rate_hz) == DIGITS

        if SPEECH_TO_SPEECH[provider]:
            await expect(page.locator('#transcript p.final[data-role="assistant"]')).to_have_text(
                [DIGITS], timeout=8000)
            await wait_for_event(page, "turn.completed", "assistant")
            reply = browser.log(page).sockets[0].binary_received()
            assert await page.evaluate("window.vg.audioBytesReceived") == len(reply) > 0
            assert heard(reply, 24000) == DIGITS  # the page asked for PCM16 24 kHz and got the digits back
            await expect(page.locator("#provider-note")).to_have_text("")
        else:
            started = await page.evaluate("window.vg.events.find(e => e.type === 'session.started')")
            assert started["capabilities"]["audio_output"] is False
            assert await page.evaluate("window.vg.audioBytesReceived") == 0
            await expect(page.locator("#provider-note")).to_have_text("(transcripts only: no spoken reply)")
        await save_screenshot(page, SCREENSHOT[provider])

        # On the wire: session.start first (docs/protocol.md), then 20 ms PCM16 16 kHz binary frames only.
        sent = browser.log(page).sockets[0].sent
        first = json.loads(sent[0])
        assert first["type"] == "session.start" and first["provider"] == provider
        assert first["audio"]["input"] == {"encoding": "pcm16", "sample_rate": 16000}
        frames = sent[1:]
        assert frames and all(isinstance(f, bytes) and len(f) == FRAME_BYTES_16K_20MS for f in frames)

        # Stop ends the call on the gateway and the page is ready for the next one.
        await page.click("#stop")
        await expect(page.locator('#events li[data-type="session.ended"]')).to_have_count(1, timeout=5000)
        await expect(page.locator("#start")).to_be_enabled(timeout=5000)
        await expect(page.locator("#status")).to_contain_text("Session ended")
        assert gw.runtime is not None and not gw.runtime.sessions
        log = browser.log(page)
        assert (log.page_errors, log.http_errors, log.console_errors) == ([], [], [])


async def test_demo_page_needs_the_client_token_when_the_gateway_requires_one(browser: BrowserSession) -> None:
    token = "demo-page-client-token-5f1e"
    async with Gateway(client_tokens=(token,)) as gw:
        page = await browser.open(gw.http + "/")
        await start_call(page, "gemini")  # no token: the upgrade is refused (403)
        await expect(page.locator("#status")).to_have_class("status bad", timeout=5000)
        await expect(page.locator("#status")).to_contain_text("client token")
        await expect(page.locator("#start")).to_be_enabled()
        assert not gw.fakes["gemini"].connections

        await start_call(page, "gemini", token=token)
        await expect(page.locator('#transcript p.final[data-role="user"]')).to_have_text([DIGITS], timeout=8000)
        # the token rides as a subprotocol value; the gateway echoes only voice-gateway.v1 (docs/protocol.md)
        assert await page.evaluate("window.vg.protocol") == "voice-gateway.v1"
        assert browser.log(page).page_errors == []


async def test_demo_page_sends_a_token_a_subprotocol_cannot_carry_in_the_query(browser: BrowserSession) -> None:
    token = "c2VjcmV0/dG9rZW4=="  # "/" and "=" are not allowed in a Sec-WebSocket-Protocol value
    async with Gateway(client_tokens=(token,)) as gw:
        page = await browser.open(gw.http + "/")
        await start_call(page, "gemini", token=token)
        await expect(page.locator("#provider")).to_have_text("gemini", timeout=5000)
        assert browser.log(page).sockets[0].url.endswith("/v1/voice?token=c2VjcmV0%2FdG9rZW4%3D%3D")
        assert gw.runtime is not None and len(gw.runtime.sessions) == 1
        assert browser.log(page).page_errors == []
