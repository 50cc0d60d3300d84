"""Debian's `chromium`, driven headless by Playwright from PyPI (never `playwright install`), with a
fake microphone that plays a WAV once. Flags as verified in docs/fakes.md "Also verified".

Every page opened through `BrowserSession.open` records uncaught script errors, console errors and
the frames of its WebSockets, so a test can assert what the page sent and received on the wire.
Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from playwright.async_api import BrowserContext, Page, WebSocket

REPO = Path(__file__).resolve().parents[2]
MIC_WAV = REPO / "fixtures" / "dtmf_browser_48k.wav"  # "1397#", fixtures/README.md
ARTIFACTS = REPO / "test-artifacts"
# Backstop for any Playwright call a test leaves without its own timeout (milliseconds).
DEFAULT_TIMEOUT_MS = 8000


def chromium_args(mic_wav: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}%noloop",  # play once, then silence
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic",
    ]


@dataclasses.dataclass
class SocketLog:
    """Frames of one page WebSocket, in order: text frames as str, binary frames as bytes."""

    url: str
    sent: list[str | bytes] = dataclasses.field(default_factory=list)
    received: list[str | bytes] = dataclasses.field(default_factory=list)

    def binary_received(self) -> bytes:
        return b"".join(f for f in self.received if isinstance(f, bytes))


@dataclasses.dataclass
class PageLog:
    page_errors: list[str] = dataclasses.field(default_factory=list)  # uncaught exceptions
    console_errors: list[str] = dataclasses.field(default_factory=list)
    http_errors: list[str] = dataclasses.field(default_factory=list)  # "404 http://..." for every 4xx/5xx
    sockets: list[SocketLog] = dataclasses.field(default_factory=list)


class BrowserSession:
    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.logs: dict[Page, PageLog] = {}

    async def open(self, url: str) -> Page:
        page = await self.context.new_page()
        log = self.logs[page] = PageLog()
        page.on("pageerror", lambda err: log.page_errors.append(str(err)))
        page.on("console", lambda msg: log.console_errors.append(f"{msg.text} at {msg.location.get('url')}")
                if msg.type == "error" else None)
        page.on("response", lambda r: log.http_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        def on_socket(ws: WebSocket) -> None:
            record = SocketLog(ws.url)
            log.sockets.append(record)
            # Playwright wraps handlers by setting an attribute: plain functions, not bound builtins.
            ws.on("framesent", lambda payload: record.sent.append(payload))
            ws.on("framereceived", lambda payload: record.received.append(payload))

        page.on("websocket", on_socket)
        await page.goto(url, timeout=5000)
        return page

    def log(self, page: Page) -> PageLog:
        return self.logs[page]


async def save_screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True, timeout=5000)
    return path
