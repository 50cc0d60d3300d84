"""End-to-end harness: the three fake providers, the gateway app on a real aiohttp server on
127.0.0.1 (port 0), and a native WebSocket client. Everything over real sockets.

The fakes are started with recognisable API keys (FAKE_KEYS); tests/test_log_secrets.py scans every
captured log line of the suite for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from aiohttp import web
from websockets.asyncio.client import ClientConnection

from audio.dtmf import generate_dtmf
from audio.formats import AudioFormat
from gateway.app import create_app
from gateway.app_state import STATE, AppState
from gateway.config import ProviderSettings, Settings
from gateway.retry import ReconnectPolicy
from gateway.runtime import Runtime
from gateway.serve import start_server
from providers.fakes import fake_class
from providers.fakes.common import FaultScript

FAKE_KEYS = {
    "gemini": "AIzaFAKE-gemini-key-7c1d2e3f4a5b",
    "openai": "sk-FAKE-openai-key-9a8b7c6d5e4f",
    "deepgram": "dgFAKE-deepgram-key-1a2b3c4d5e6f",
    "openai_live": "sk-FAKE-openai-live-key-3e4f5a6b7c8d",
}
FAKE_KEYS["deepgram_agent"] = FAKE_KEYS["deepgram"]  # the Voice Agent takes the Deepgram key
FAKE_CLASSES = {name: fake_class(name) for name in ("gemini", "openai", "deepgram", "openai_live")}
AGENT_CLASS = fake_class("deepgram_agent")
# Socket tests use a fast schedule; the exact 1, 2, 4, 8, 16 s one is tested in virtual time.
FAST_RECONNECT = ReconnectPolicy(initial_backoff_s=0.02, max_backoff_s=0.32, connect_timeout_s=3.0,
                                 early_failure_window_s=0.5)


async def serve_app(app: web.Application) -> tuple[web.AppRunner, int]:
    """The gateway app on a real aiohttp server on 127.0.0.1, port 0 (every test harness starts it
    so; its startup has run when this returns): the runner and the port it took."""
    return await start_server(app, "127.0.0.1", 0)


async def stop_served(runtime: Runtime, runner: web.AppRunner | None, fakes: Any) -> None:
    """The reverse of serve_app: the runtime, then the server (sockets still open: 1012), then the fakes."""
    await runtime.stop()
    if runner is not None:
        await runner.cleanup()
    for fake in fakes:
        await fake.stop()


class Gateway:
    def __init__(self, *, faults: dict[str, FaultScript] | None = None, keys: dict[str, str] | None = None,
                 reconnect: ReconnectPolicy = FAST_RECONNECT, fallback: tuple[str, ...] = ("gemini", "openai", "deepgram"),
                 fake_kwargs: dict[str, dict[str, Any]] | None = None, settings: Settings | None = None,
                 key_files: dict[str, str] | None = None, agent: bool = False,
                 **settings_overrides: Any) -> None:
        # agent=True also runs the Deepgram Voice Agent fake, so `deepgram` means the agent (else the STT)
        self.agent = agent
        self.faults = faults or {}
        self.keys = {**FAKE_KEYS, **(keys or {})}
        self.reconnect = reconnect
        self.fallback = fallback
        self.fake_kwargs = fake_kwargs or {}
        self.overrides = settings_overrides
        self.base_settings = settings or Settings()  # e.g. load_settings(env): the real env path
        self.key_files = key_files or {}  # provider → path of its *_API_KEY_FILE (key rotation tests)
        self.fakes: dict[str, Any] = {}
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.runtime: Runtime | None = None
        self.port = 0

    async def __aenter__(self) -> Gateway:
        for name, cls in {**FAKE_CLASSES, **({"deepgram_agent": AGENT_CLASS} if self.agent else {})}.items():
            fake = cls(api_key=FAKE_KEYS[name], faults=self.faults.get(name), **self.fake_kwargs.get(name, {}))
            await fake.start()
            self.fakes[name] = fake
        providers = {
            name: ProviderSettings(name=name, api_key=self.keys[name], api_key_file=self.key_files.get(name),
                                   base_url=fake.url + ("/v1" if name in ("openai", "openai_live") else ""), simulated=False)
            for name, fake in self.fakes.items()
        }
        # the tests send audio much faster than real time: lift the rate ceilings unless a test sets them
        limits = {"max_bytes_per_s": 64_000_000, "max_frames_per_s": 100_000}
        settings = dataclasses.replace(self.base_settings, providers=providers, reconnect=self.reconnect,
                                       fallback_chain=self.fallback, **{**limits, **self.overrides})
        self.runtime = Runtime(settings)
        await self.runtime.start()
        self.app = create_app(settings, runtime=self.runtime)
        self.runner, self.port = await serve_app(self.app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runtime is not None
        await stop_served(self.runtime, self.runner, self.fakes.values())

    @property
    def state(self) -> AppState:
        """The app's state: its chain service, operator controls, fleet node (gateway/app_state.py)."""
        assert self.app is not None
        return self.app[STATE]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> VoiceClient:
        return VoiceClient(self.url + "/v1/voice", **kwargs)


class VoiceClient:
    """A native-protocol client that records every event and reply-audio byte."""

    def __init__(self, url: str, *, subprotocols: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.subprotocols = subprotocols
        self.headers = headers
        self.events: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.closed = asyncio.Event()

    async def __aenter__(self) -> VoiceClient:
        self.ws = await websockets.connect(self.url, subprotocols=self.subprotocols,  # type: ignore[arg-type]
                                           additional_headers=self.headers, max_size=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if isinstance(msg, bytes):
                    self.audio.extend(msg)
                else:
                    self.events.append(orjson.loads(msg))
                self._changed.set()
        finally:
            self.closed.set()
            self._changed.set()

    async def send(self, payload: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(payload).decode())

    async def start(self, provider: str = "gemini", *, input_format: AudioFormat | None = None,
                    output_format: AudioFormat | None = None, **fields: Any) -> dict[str, Any]:
        audio: dict[str, Any] = {}
        if input_format is not None:
            audio["input"] = input_format.to_wire()
        if output_format is not None:
            audio["output"] = output_format.to_wire()
        await self.send({"type": "session.start", "provider": provider, "audio": audio, **fields})
        return await self.wait_for("session.started")

    async def send_audio(self, pcm: bytes, fmt: AudioFormat, *, frame_ms: int = 20,
                         pace_s: float = 0.0) -> int:
        """Send `pcm` in frames; returns how many frames. pace_s=0: as fast as the socket takes it."""
        assert self.ws is not None
        step = fmt.frame_bytes(frame_ms)
        n = 0
        for i in range(0, len(pcm), step):
            await self.ws.send(pcm[i:i + step])
            n += 1
            if pace_s:
                await asyncio.sleep(pace_s)
        return n

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def user_finals(self) -> str:
        return "".join(e["text"] for e in self.events if e["type"] == "transcript.final" and e["role"] == "user")

    async def wait_for(self, kind: str, pred: Callable[[dict[str, Any]], bool] = lambda e: True, *,
                       timeout: float = 5.0, start: int = 0) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            seen = start
            while True:
                for e in self.events[seen:]:
                    if e["type"] == kind and pred(e):
                        return e
                seen = len(self.events)
                if self.closed.is_set():
                    raise AssertionError(f"connection closed before {kind}; events: {self._summary()}")
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {kind} within {timeout}s; events: {self._summary()}") from None

    async def wait_until(self, cond: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
        async def loop() -> None:
            while not cond():
                if self.closed.is_set():
                    raise AssertionError(f"connection closed before {what}; events: {self._summary()}")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"{what} not reached within {timeout}s; events: {self._summary()}") from None

    def _summary(self) -> list[str]:
        return [e["type"] + (f":{e.get('text')}" if "text" in e else "") for e in self.events][-40:]


def dtmf_utterance(digits: str, fmt: AudioFormat, *, trail_ms: int = 600) -> bytes:
    """DTMF digits as the session's input format, with trailing silence so the fake ends the turn."""
    from audio.convert import convert

    pcm = generate_dtmf(digits, fmt.sample_rate_hz if fmt.encoding == "pcm16" else 8000,
                        lead_silence_ms=100, trail_silence_ms=trail_ms)
    src = AudioFormat(encoding="pcm16", sample_rate_hz=fmt.sample_rate_hz if fmt.encoding == "pcm16" else 8000)
    return convert(pcm, src, fmt)
