"""Per-connection ceilings on the native endpoint, over real sockets (docs/protocol.md)."""

from __future__ import annotations

import aiohttp
import pytest
import websockets

from audio.formats import PCM16_16K
from gateway import metrics
from tests.harness import Gateway

pytestmark = pytest.mark.timeout(30)


async def test_byte_rate_ceiling_follows_the_audio_format() -> None:
    before = metrics.sample("voice_gateway_rate_limited_total", {"client": "native"}) or 0.0
    # default limits: 8× the real-time rate of 16 kHz PCM16 (256 kB/s, 1 s burst)
    async with Gateway(max_bytes_per_s=0, max_frames_per_s=100_000) as gw, gw.client() as c:
        await c.start("deepgram", input_format=PCM16_16K)
        await c.send_audio(bytes(32000 * 4), PCM16_16K)  # 4 s of audio at once: within the burst
        assert not c.of_type("error")
        await c.send_audio(bytes(32000 * 8), PCM16_16K)  # 8 more seconds at once: over the ceiling
        err = await c.wait_for("error", lambda e: e["code"] == "rate_limited")
        assert "bytes per second" in err["message"]
    after = metrics.sample("voice_gateway_rate_limited_total", {"client": "native"}) or 0.0
    assert after > before


async def test_message_over_64_kib_closes_with_1009() -> None:
    async with Gateway() as gw, gw.client() as c:
        await c.start("deepgram", input_format=PCM16_16K)
        await c.ws.send(bytes(64 * 1024 + 2))
        await c.closed.wait()
        assert c.ws.close_code == 1009


async def test_per_message_compression_is_declined_on_every_client_endpoint() -> None:
    """websockets offers permessage-deflate by default; the gateway answers without it (compressing
    20 ms audio frames costs CPU and gains nothing)."""
    async with Gateway() as gw:
        for path in ("/v1/voice", "/v1/twilio", "/v1/telnyx", "/v1/vonage"):
            async with websockets.connect(gw.url + path, compression="deflate") as ws:
                assert ws.response is not None
                assert ws.response.headers.get("Sec-WebSocket-Extensions") is None, path


async def test_a_plain_http_get_on_a_websocket_path_is_not_found() -> None:
    async with Gateway() as gw, aiohttp.ClientSession() as http:
        for path in ("/v1/voice", "/v1/twilio"):
            async with http.get(gw.http + path) as r:
                assert r.status == 404, path
