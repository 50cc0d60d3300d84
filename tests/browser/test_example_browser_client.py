"""examples/browser_client.html in real headless chromium against the embedded default: the page
is served from a plain static server on 127.0.0.1 (another origin than the gateway, as a user's
own site would be), the fake microphone dials "1397#", and the page shows both transcripts and
plays the spoken reply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from audio.dtmf import detect_dtmf
from tests.browser.chromium import BrowserSession, save_screenshot
from tests.embedded import embedded_gateway

pytestmark = pytest.mark.timeout(45)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DIGITS = "1397#"


async def test_browser_example_talks_to_the_gateway(browser: BrowserSession) -> None:
    app = web.Application()
    app.router.add_static("/", EXAMPLES)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    page_port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp exposes no public port
    try:
        async with embedded_gateway() as base:
            page = await browser.open(f"http://127.0.0.1:{page_port}/browser_client.html"
                                      f"?url={base}/v1/voice&provider=gemini")
            await page.click("#start")  # a user gesture: browsers start audio only after one
            await page.wait_for_function(
                "(d) => ['user', 'assistant'].every(r => window.voiceClient.transcripts"
                ".some(t => t.role === r && t.text === d))", arg=DIGITS, timeout=15000)
            await page.wait_for_function("window.voiceClient.events.some(e => e.type === 'turn.completed' "
                                         "&& e.role === 'assistant')", timeout=8000)
            log = browser.log(page)
            reply = log.sockets[0].binary_received()
            assert await page.evaluate("window.voiceClient.replyBytes") == len(reply) > 0
            assert "".join(d.digit for d in detect_dtmf(reply, 24000)) == DIGITS
            first = json.loads(log.sockets[0].sent[0])
            assert first["type"] == "session.start" and first["audio"]["input"]["sample_rate"] == 16000
            assert all(isinstance(f, bytes) and len(f) == 640 for f in log.sockets[0].sent[1:])
            assert not log.page_errors and not log.console_errors
            await save_screenshot(page, "example-browser-client.png")
    finally:
        await runner.cleanup()
