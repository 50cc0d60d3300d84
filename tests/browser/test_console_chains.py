"""The operator console lists the one-shot chain breakers beside the live ones and resets one
(docs/chains.md), in a real headless chromium. Screenshot: test-artifacts/console-chain-circuit.png."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chromium import BrowserSession, save_screenshot
from tests.browser.test_console import ADMIN_TOKEN, only_auth_refusals, sign_in
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(30)


async def test_console_shows_and_resets_a_chain_breaker(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw:
        chains = gw.state.chains  # the app's chain service (gateway/chains/service.py)
        chains.breaker("groq_transcription").force_open("auth")
        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        row = console.locator('#circuits tr[data-provider="groq_transcription"]')
        await expect(row.locator("td").nth(0)).to_have_text("groq (transcription)", timeout=5000)
        await expect(row.locator("td").nth(1)).to_have_text("groq_transcription")
        await expect(row.locator("td").nth(2)).to_have_text("OPEN")
        await expect(console.locator('#circuits tr[data-provider="deepgram_transcription"] td').nth(2)).to_have_text(
            "CLOSED")
        await expect(console.locator('#circuits tr[data-provider="deepgram"] td').nth(1)).to_have_text("deepgram_stt")
        await save_screenshot(console, "console-chain-circuit.png")
        await row.get_by_role("button", name="reset the groq_transcription circuit breaker").click()
        await expect(row.locator("td").nth(2)).to_have_text("CLOSED", timeout=5000)
        assert chains.breaker("groq_transcription").state.name == "CLOSED"
        assert browser.log(console).page_errors == []
        assert only_auth_refusals(browser.log(console).http_errors), browser.log(console).http_errors


async def test_console_shows_spend_budget_and_ends_cost_preservation(browser: BrowserSession) -> None:
    from providers.chains.base import Usage

    async with Gateway(admin_token=ADMIN_TOKEN) as gw:
        ledger = gw.state.runtime.costs  # the one cost ledger (gateway/costs.py)
        ledger.daily_budget_usd = 0.01
        ledger.record("reasoning", "minimax", 0.0125, Usage(input_tokens=10, output_tokens=2))
        assert ledger.preserving
        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        await expect(console.locator("#cost-spent")).to_have_text("$0.012500", timeout=5000)
        await expect(console.locator("#cost-budget")).to_have_text("$0.01")
        await expect(console.locator("#cost-ratio")).to_have_text("125.0%")
        await expect(console.locator("#cost-mode")).to_have_text("cost preservation (primary providers only)")
        await save_screenshot(console, "console-costs.png")
        await console.get_by_role("button", name="End cost preservation").click()
        await expect(console.locator("#cost-mode")).to_have_text("normal", timeout=5000)
        assert not ledger.preserving
        assert browser.log(console).page_errors == []
        assert only_auth_refusals(browser.log(console).http_errors), browser.log(console).http_errors
