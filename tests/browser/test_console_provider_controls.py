"""The console's operator controls in a real headless chromium (single process): disable and enable a
provider (PATCH /admin/providers/{name}) and reset every breaker at once (POST /admin/circuits/reset).
Screenshot: test-artifacts/console-provider-disabled.png.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chromium import BrowserSession, save_screenshot
from tests.browser.test_console import ADMIN_TOKEN, only_auth_refusals, sign_in
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(30)


async def test_console_disables_enables_a_provider_and_resets_every_breaker(browser: BrowserSession) -> None:
    async with Gateway(admin_token=ADMIN_TOKEN) as gw, gw.client() as call:
        assert gw.runtime is not None
        await call.start("gemini")
        console = await browser.open(gw.http + "/console")
        await sign_in(console, ADMIN_TOKEN)
        health = console.locator('#health tr[data-provider="gemini"]')
        await expect(health.locator("td").nth(3)).to_have_text("enabled", timeout=5000)

        await health.get_by_role("button", name="disable gemini").click()
        await expect(console.locator("#action-status")).to_have_text("gemini disabled.", timeout=5000)
        await expect(health.locator("td").nth(3)).to_have_text("disabled", timeout=3000)
        assert not gw.runtime.provider_enabled("gemini")
        switched = await call.wait_for("provider.switched")  # the idle call moves off gemini at once
        assert (switched["from"], switched["reason"]) == ("gemini", "operator")
        await save_screenshot(console, "console-provider-disabled.png")

        await health.get_by_role("button", name="enable gemini").click()
        await expect(health.locator("td").nth(3)).to_have_text("enabled", timeout=5000)
        assert gw.runtime.provider_enabled("gemini")

        for name in ("gemini", "deepgram"):
            gw.runtime.breakers.get(name).force_open("auth")
        await expect(console.locator('#circuits tr[data-provider="deepgram"] td').nth(2)).to_have_text(
            "OPEN", timeout=5000)
        await console.click("#reset-all")
        await expect(console.locator("#action-status")).to_have_text("Every circuit breaker reset.", timeout=5000)
        assert all(b.state.name == "CLOSED" for b in gw.runtime.breakers.all())
        await expect(console.locator('#circuits tr[data-provider="deepgram"] td').nth(2)).to_have_text("CLOSED")
        assert browser.log(console).page_errors == []
        assert only_auth_refusals(browser.log(console).http_errors), browser.log(console).http_errors
