"""The operator console (GET /console) in a real headless chromium, against a gateway with an admin
token: a live call placed from the demo page (fake microphone: "1397#") is switched to another
provider from the console's dropdown, and a forced-open breaker is reset with its button
(docs/protocol.md). Screenshots: test-artifacts/console*.png, test-artifacts/demo-page-switched.png.
"""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Page, expect

from tests.browser.chromium import BrowserSession, save_screenshot
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(30)
ADMIN_TOKEN = "console-admin-token-3c9a71"
DIGITS = "1397#"  # what dtmf_browser_48k.wav dials (fixtures/README.md)


async def sign_in(console: Page, token: str) -> None:
    await console.fill("#admin-token", token)
    await console.click("#save-token")


def only_auth_refusals(http_errors: list[str]) -> bool:
    """The console polls before the operator types the token: those 401/403s are expected."""
    return all(e.split(" ", 1)[0] in ("401", "403") and "/admin/" in e for e in http_errors)


async def test_console_switches_a_live_demo_call_to_another_provider(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw:
        demo = await browser.open(gw.http + "/")
        await demo.select_option("#provider-select", "gemini")
        await demo.click("#start")
        # one full exchange first, so the switch has a conversation to carry
        await expect(demo.locator('#transcript p.final[data-role="assistant"]')).to_have_text([DIGITS], timeout=8000)
        session_id = await demo.evaluate("window.vg.sessionId")

        console = await browser.open(gw.http + "/console")
        await expect(console.locator("#console-status")).to_contain_text("needs a token", timeout=5000)
        await expect(console.locator("#sessions tbody tr")).to_have_count(0)
        await sign_in(console, ADMIN_TOKEN)
        row = console.locator(f'#sessions tr[data-session-id="{session_id}"]')
        dropdown = console.locator(f'select[data-session-id="{session_id}"]')
        await expect(dropdown).to_have_value("gemini", timeout=5000)
        await expect(row.locator("td").nth(3)).to_have_text("native")

        await dropdown.select_option("openai")
        # a switch waits for the operator's confirmation
        await expect(console.locator("#confirm-text")).to_have_text(f"Switch call {session_id} from gemini to openai?")
        await console.click("#confirm-yes")
        switched = demo.locator('#events li[data-type="provider.switched"]')
        await expect(switched).to_contain_text("gemini -> openai (operator), 2 turns carried", timeout=5000)
        await expect(demo.locator("#provider")).to_have_text("openai")
        await expect(console.locator("#action-status")).to_have_text(f"Switched {session_id} to openai.")
        await expect(row.locator("td").nth(1)).to_have_text("openai", timeout=3000)  # next poll
        await expect(dropdown).to_have_value("openai")

        # the admin API agrees, and the new provider got the conversation
        res = await browser.context.request.get(f"{gw.http}/admin/sessions/{session_id}",
                                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=3000)
        assert res.status == 200
        detail = await res.json()
        assert detail["provider"] == "openai" and detail["counters"]["switches"] == 1
        assert DIGITS in json.dumps(gw.fakes["openai"].connections[-1].items)
        await save_screenshot(console, "console.png")
        await save_screenshot(demo, "demo-page-switched.png")

        # to a transcripts-only provider: the caller is told why the spoken replies stop
        await dropdown.select_option("deepgram")
        await console.click("#confirm-yes")
        await expect(switched.nth(1)).to_contain_text("openai -> deepgram (operator)", timeout=5000)
        await expect(demo.locator("#provider")).to_have_text("deepgram")
        await expect(demo.locator("#provider-note")).to_have_text("(transcripts only: no spoken reply)")

        # the caller hangs up: the call leaves the console
        await demo.click("#stop")
        await expect(row).to_have_count(0, timeout=5000)
        await expect(console.locator("#no-sessions")).to_be_visible()
        await expect(console.locator("#session-count")).to_have_text("0")

        assert browser.log(demo).page_errors == [] and browser.log(demo).console_errors == []
        assert browser.log(console).page_errors == []
        assert only_auth_refusals(browser.log(console).http_errors), browser.log(console).http_errors


async def test_console_resets_an_open_circuit(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw:
        assert gw.runtime is not None
        breaker = gw.runtime.breakers.get("openai")
        breaker.force_open("auth")  # what a rejected API key does (docs/architecture.md): stays OPEN until reset

        console = await browser.open(gw.http + "/console")
        await sign_in(console, "not-the-admin-token")
        await expect(console.locator("#console-status")).to_contain_text("token was refused", timeout=5000)
        await sign_in(console, ADMIN_TOKEN)
        circuit = console.locator('#circuits tr[data-provider="openai"]')
        await expect(circuit.locator("td").nth(2)).to_have_text("OPEN", timeout=5000)
        await expect(console.locator('#health tr[data-provider="openai"] td').nth(2)).to_have_text("OPEN")
        # no countdown: an auth-opened breaker waits for the operator
        await expect(circuit.locator("td").nth(4)).to_have_text("after reset (key rejected)")
        await save_screenshot(console, "console-circuit-open.png")

        await circuit.get_by_role("button", name="reset the openai circuit breaker").click()
        await expect(console.locator("#action-status")).to_have_text("Circuit for openai reset.", timeout=5000)
        await expect(circuit.locator("td").nth(2)).to_have_text("CLOSED")
        await expect(circuit.locator("td").nth(4)).to_have_text("-")
        await expect(console.locator('#health tr[data-provider="openai"] td').nth(2)).to_have_text("CLOSED")
        assert breaker.state.name == "CLOSED"
        await save_screenshot(console, "console-circuit-reset.png")
        assert browser.log(console).page_errors == []
        assert only_auth_refusals(browser.log(console).http_errors), browser.log(console).http_errors


async def test_console_reports_a_refused_switch_and_the_call_stays(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw, gw.client() as call:
        started = await call.start("gemini")
        assert gw.runtime is not None
        gw.runtime.breakers.get("openai").force_open("auth")

        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        dropdown = console.locator(f'select[data-session-id="{started["session_id"]}"]')
        await expect(dropdown).to_have_value("gemini", timeout=5000)
        await dropdown.select_option("openai")
        await console.click("#confirm-yes")
        status = console.locator("#action-status")
        await expect(status).to_have_text("Switch refused: could not open openai", timeout=5000)
        await expect(status).to_have_class("status bad")
        await expect(dropdown).to_have_value("gemini", timeout=3000)  # back to what the call uses
        assert gw.runtime.sessions[started["session_id"]].provider == "gemini"
        assert call.of_type("provider.switched") == []

        # on a phone-sized screen the wide calls table scrolls in its box; the page does not
        await console.set_viewport_size({"width": 400, "height": 800})
        assert await console.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await save_screenshot(console, "console-narrow.png")
        assert browser.log(console).page_errors == []


async def test_console_switches_a_live_demo_call_onto_the_deepgram_agent(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN, agent=True) as gw:
        demo = await browser.open(gw.http + "/")
        await demo.select_option("#provider-select", "gemini")
        await demo.click("#start")
        await expect(demo.locator('#transcript p.final[data-role="assistant"]')).to_have_text([DIGITS], timeout=8000)
        session_id = await demo.evaluate("window.vg.sessionId")
        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        dropdown = console.locator(f'select[data-session-id="{session_id}"]')
        await expect(dropdown).to_have_value("gemini", timeout=5000)
        await expect(dropdown.locator('option[value="deepgram_agent"]')).to_have_text(
            "deepgram_agent (voice agent: speaks, transcripts, tools)")
        await dropdown.select_option("deepgram_agent")
        await console.click("#confirm-yes")  # the console asks before it switches a live call
        switched = demo.locator('#events li[data-type="provider.switched"]')
        await expect(switched).to_contain_text("gemini -> deepgram_agent (operator), 2 turns carried", timeout=5000)
        await expect(demo.locator("#provider")).to_have_text("deepgram_agent")
        await expect(demo.locator("#provider-note")).to_have_text("")  # it speaks: no transcripts-only note
        await expect(demo.locator("#provider-caps")).to_have_text("speaks · assistant transcripts · tools")
        assert DIGITS in json.dumps(gw.fakes["deepgram_agent"].connections[-1].items)
        await save_screenshot(demo, "demo-page-deepgram-agent.png")
        assert browser.log(demo).page_errors == [] and browser.log(demo).console_errors == []
