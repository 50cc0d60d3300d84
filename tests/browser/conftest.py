"""Real-browser fixtures (tests/browser/chromium.py): a fresh headless chromium profile per test.
Without chromium the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.browser.chromium import DEFAULT_TIMEOUT_MS, MIC_WAV, BrowserSession, chromium_args


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian chromium is not installed (apt-get install chromium; `make test` does it as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
async def browser(chromium_path: str, tmp_path: Path) -> AsyncIterator[BrowserSession]:
    async with async_playwright() as pw:
        # A persistent context on a fresh directory: a clean profile per test.
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium_path, headless=True,
            args=chromium_args(MIC_WAV), viewport={"width": 1280, "height": 800})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield BrowserSession(context)
        finally:
            await context.close()
