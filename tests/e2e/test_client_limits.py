"""Per-connection ceilings on the native endpoint, over real sockets (docs/protocol.md)."""

from __future__ import annotations

import pytest

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
