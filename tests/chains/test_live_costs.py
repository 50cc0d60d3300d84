"""Live calls go into the same cost ledger, priced per provider minute: a call's time on each provider is billed
at a switch and when it ends (chain `live`), when the price table has `provider/live`."""

from __future__ import annotations

import pytest

from audio.formats import PCM16_16K
from gateway import metrics
from providers.chains.base import Price
from tests.harness import Gateway


async def test_a_call_is_billed_per_provider_minute_across_a_switch() -> None:
    async with Gateway() as gw:
        assert gw.runtime is not None
        ledger = gw.runtime.costs
        ledger.prices.entries["openai/live"] = Price(per_minute_usd=0.06)  # as a VG_PRICES_FILE would add it
        before = {p: metrics.sample("voice_gateway_cost_usd_total", {"chain": "live", "provider": p}) or 0.0
                  for p in ("openai", "deepgram", "gemini")}
        async with gw.client() as c:
            await c.start("openai", input_format=PCM16_16K)
            await c.send({"type": "provider.switch", "provider": "deepgram"})
            await c.wait_for("provider.switched")
            await c.send({"type": "session.end"})
            await c.wait_for("session.ended")
        lines = next(iter(ledger.days.values())).lines
        openai_line, deepgram_line = lines[("live", "openai")], lines[("live", "deepgram")]
        assert openai_line.minutes > 0 and deepgram_line.minutes > 0
        assert openai_line.cost_usd == pytest.approx(openai_line.minutes * 0.06)
        assert deepgram_line.cost_usd == pytest.approx(deepgram_line.minutes * 0.0065)  # the default deepgram/live
        for provider, line in (("openai", openai_line), ("deepgram", deepgram_line)):
            after = metrics.sample("voice_gateway_cost_usd_total", {"chain": "live", "provider": provider})
            assert after - before[provider] == pytest.approx(line.cost_usd)
        assert ("live", "gemini") not in lines  # never on gemini
