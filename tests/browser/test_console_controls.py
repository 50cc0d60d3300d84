"""The console's call controls in real chromium (a demo-page call, fake microphone "1397#"): a switch
waits for confirmation and can be cancelled; the per-call drawer shows the transcript and event
timeline; replay depth is shown against its limit; Hang up (after confirming) ends the call, the caller's
page says an operator ended it, and the call moves to Recently ended where its drawer still opens;
a breaker forced open by a rejected key says why, and the live charts draw calls and circuit states.
Screenshots: test-artifacts/console-drawer.png, console-ended.png, console-charts.png.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chromium import BrowserSession, save_screenshot
from tests.browser.test_console import ADMIN_TOKEN, DIGITS, only_auth_refusals, sign_in
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(45)


async def test_console_confirms_shows_a_call_and_hangs_it_up(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw:
        demo = await browser.open(gw.http + "/")
        await demo.select_option("#provider-select", "gemini")
        await demo.click("#start")
        await expect(demo.locator('#transcript p.final[data-role="assistant"]')).to_have_text([DIGITS], timeout=8000)
        sid = await demo.evaluate("window.vg.sessionId")

        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        row = console.locator(f'#sessions tr[data-session-id="{sid}"]')
        dropdown = console.locator(f'select[data-session-id="{sid}"]')
        await expect(dropdown).to_have_value("gemini", timeout=5000)
        await expect(row.locator("td").nth(5)).to_contain_text("/ 100")  # replay depth against its limit

        # a switch is only asked for: Cancel leaves the call where it is
        await dropdown.select_option("openai")
        await expect(console.locator("#confirm-bar")).to_be_visible()
        await console.click("#confirm-no")
        await expect(console.locator("#confirm-bar")).to_be_hidden()
        await expect(dropdown).to_have_value("gemini")
        assert gw.runtime is not None and gw.runtime.sessions[sid].provider == "gemini"

        # the drawer: transcript and event timeline of the live call
        await console.get_by_role("button", name=f"details of call {sid}").first.click()
        await expect(console.locator("#drawer")).to_be_visible()
        await expect(console.locator("#drawer-transcript li").first).to_have_text(f"user: {DIGITS}")
        await expect(console.locator('#drawer-transcript li[data-role="assistant"]').first).to_have_text(
            f"assistant: {DIGITS}")
        await expect(console.locator('#drawer-events li[data-type="session.started"]')).to_contain_text("on gemini")
        await save_screenshot(console, "console-drawer.png")

        # hang up, confirmed: the caller is told, the call moves to Recently ended
        await console.click("#drawer-close")
        await expect(console.locator("#drawer")).to_be_hidden()
        await row.get_by_role("button", name=f"hang up call {sid}").click()
        await expect(console.locator("#confirm-text")).to_have_text(f"Hang up call {sid}?")
        await console.click("#confirm-yes")
        await expect(console.locator("#action-status")).to_have_text(f"Hung up {sid}.", timeout=5000)
        await expect(demo.locator("#status")).to_have_text(
            "Session ended: an operator ended the call from the console.", timeout=5000)
        await expect(demo.locator("#start")).to_be_enabled(timeout=5000)
        await expect(row).to_have_count(0, timeout=5000)
        ended = console.locator(f'#ended tr[data-session-id="{sid}"]')
        await expect(ended.locator("td").nth(4)).to_have_text("operator hung up", timeout=5000)
        await ended.get_by_role("button", name=f"details of call {sid}").click()  # still readable
        await expect(console.locator("#drawer-summary")).to_contain_text("ended: operator hung up", timeout=5000)
        await expect(console.locator("#drawer-transcript li").first).to_have_text(f"user: {DIGITS}")
        await expect(console.locator("#spend")).to_be_hidden()  # no cost ledger yet
        await save_screenshot(console, "console-ended.png")
        assert not gw.runtime.sessions

        # the next call on the demo page is set apart from the first
        await demo.click("#start")
        await expect(demo.locator("#transcript p.call-separator")).to_contain_text("call 2 (gemini", timeout=5000)
        await expect(demo.locator('#transcript p.final[data-role="user"]')).to_have_text([DIGITS, DIGITS],
                                                                                         timeout=8000)
        assert browser.log(demo).page_errors == [] and browser.log(console).page_errors == []
        assert only_auth_refusals(browser.log(console).http_errors), browser.log(console).http_errors


async def test_console_says_why_a_breaker_is_open_and_charts_health(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw, gw.client() as call:
        await call.start("gemini")
        assert gw.runtime is not None
        gw.runtime.breakers.get("openai").force_open("auth")  # what a rejected API key does

        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        circuit = console.locator('#circuits tr[data-provider="openai"]')
        await expect(circuit.locator("td").nth(6)).to_have_text(
            "API key rejected: fix OPENAI_API_KEY, then reset", timeout=5000)
        await expect(circuit.locator("td").nth(6)).to_have_class("why bad")
        await expect(console.locator('#circuits tr[data-provider="gemini"] td').nth(6)).to_have_text("-")
        # charts: one call drawn, the openai row of the health strip is red (OPEN)
        await expect(console.locator("#chart-calls-now")).to_have_text("1")
        await console.wait_for_function(
            "document.querySelector('#chart-calls polyline').getAttribute('points').split(' ').length >= 2",
            timeout=5000)
        await expect(console.locator('#chart-health rect[data-provider="openai"].h-OPEN').first).to_be_attached()
        await expect(console.locator('#chart-health rect[data-provider="gemini"].h-CLOSED').first).to_be_attached()
        await save_screenshot(console, "console-charts.png")

        await circuit.get_by_role("button", name="reset the openai circuit breaker").click()
        await expect(circuit.locator("td").nth(6)).to_have_text("-", timeout=5000)
        await expect(console.locator('#chart-health rect[data-provider="openai"].h-CLOSED').first).to_be_attached(
            timeout=5000)
        assert browser.log(console).page_errors == []
