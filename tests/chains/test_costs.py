"""The cost ledger and the daily budget, end to end over real sockets: a scripted mix of requests costs exactly
what the price table and the fakes' usage imply (to the micro-dollar) in the responses, /admin/costs and
voice_gateway_cost_usd_total; a budget just above the spend of N requests turns on cost preservation mode with
request N+1, after which fallbacks stop; the mode ends at UTC midnight or by POST /admin/costs/reset-mode."""

from __future__ import annotations

import base64
import logging
from datetime import date, timedelta

import aiohttp
import openai
import pytest

from gateway import metrics
from gateway.costs import CostLedger
from gateway.errors import ConfigError
from providers.chains.base import Usage
from providers.chains.prices import PriceTable, load_prices
from tests.chains.chat_harness import RED_PNG, ChatGateway, Today
from tests.chains.harness import DTMF_WAV

# the figures (USD per million input/output tokens; per minute for transcription): the test does
# not read the table it checks
LIGHTNING, M21, QWEN = (0.15, 0.60), (0.30, 1.12), (0.50, 1.50)
DEEPGRAM_PER_MIN = 0.0065
RED_URL = "data:image/png;base64," + base64.b64encode(RED_PNG).decode()
PAIRS = [(c, p) for c in ("reasoning", "vision", "transcription")
         for p in ("minimax", "openrouter", "anthropic", "openai", "deepgram", "groq")]


def tokens_cost(usage: object, price: tuple[float, float]) -> float:
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6  # type: ignore[attr-defined]


def metric_costs() -> dict[tuple[str, str], float]:
    return {pair: metrics.sample("voice_gateway_cost_usd_total", {"chain": pair[0], "provider": pair[1]}) or 0.0
            for pair in PAIRS}


async def admin(gw: ChatGateway, method: str, path: str) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, gw.http + path) as res:
            assert res.status == 200
            return await res.json()


async def test_a_scripted_mix_costs_exactly_what_the_table_and_usage_imply() -> None:
    # MiniMax requests 2-4 fail (HTTP 200, base_resp 1013): request B falls back to OpenRouter
    async with ChatGateway(faults={"minimax": "2-4:status,status=503"}) as gw:
        before = metric_costs()
        expected: dict[tuple[str, str], float] = {}

        def add(pair: tuple[str, str], cost: float) -> None:
            expected[pair] = expected.get(pair, 0.0) + cost

        async with openai.AsyncOpenAI(api_key="x", base_url=gw.http + "/v1", max_retries=0) as client:
            a = await client.chat.completions.create(model="reasoning",
                                                     messages=[{"role": "user", "content": "What is 2+2?"}])
            # 12 characters → 3 input tokens, "4" → 1 output token: $1.05e-6 at Lightning's 0.15/0.60
            assert (a.usage.prompt_tokens, a.usage.completion_tokens) == (3, 1)
            assert a.model_extra["voice_gateway"]["cost_usd"] == pytest.approx(1.05e-6, abs=1e-12)
            add(("reasoning", "minimax"), tokens_cost(a.usage, LIGHTNING))

            b = await client.chat.completions.create(model="reasoning",
                                                     messages=[{"role": "user", "content": "What is 7*6?"}])
            assert b.model_extra["voice_gateway"]["provider"] == "openrouter"  # failed attempts billed nothing
            assert b.model_extra["voice_gateway"]["cost_usd"] == pytest.approx(tokens_cost(b.usage, LIGHTNING),
                                                                               abs=1e-12)
            add(("reasoning", "openrouter"), tokens_cost(b.usage, LIGHTNING))

            messages = [{"role": "user", "content": [{"type": "text", "text": "Colour?"},
                                                     {"type": "image_url", "image_url": {"url": RED_URL}}]}]
            c = await client.chat.completions.create(model="vision", messages=messages,
                                                     extra_body={"complexity": "simple"})
            assert c.model_extra["voice_gateway"]["provider"] == "minimax"
            assert c.usage.prompt_tokens == 2 + 85  # "Colour?" plus one image
            add(("vision", "minimax"), tokens_cost(c.usage, M21))
            assert c.model_extra["voice_gateway"]["cost_usd"] == pytest.approx(tokens_cost(c.usage, M21), abs=1e-12)

            d = await client.chat.completions.create(model="vision", messages=messages,
                                                     extra_body={"complexity": "complex"})
            assert d.model_extra["voice_gateway"]["provider"] == "openrouter"
            add(("vision", "openrouter"), tokens_cost(d.usage, QWEN))

            stream = await client.chat.completions.create(
                model="reasoning", messages=[{"role": "user", "content": "What is 12*12?"}], stream=True,
                stream_options={"include_usage": True})
            chunks = [ch async for ch in stream]
            f_usage = chunks[-1].usage
            add(("reasoning", "minimax"), tokens_cost(f_usage, LIGHTNING))
            assert chunks[-1].model_extra["voice_gateway"]["cost_usd"] == pytest.approx(
                tokens_cost(f_usage, LIGHTNING), abs=1e-12)

        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/api/v1/transcribe", data=DTMF_WAV,
                                 headers={"Content-Type": "audio/wav"}) as res:
                e = await res.json()
        assert e["provider"] == "deepgram"
        add(("transcription", "deepgram"), e["duration_s"] / 60 * DEEPGRAM_PER_MIN)
        assert e["cost_usd"] == pytest.approx(e["duration_s"] / 60 * DEEPGRAM_PER_MIN, abs=1e-9)

        after = metric_costs()
        deltas = {pair: after[pair] - before[pair] for pair in PAIRS if after[pair] != before[pair]}
        assert deltas.keys() == expected.keys()
        for pair, cost in expected.items():
            assert deltas[pair] == pytest.approx(cost, abs=1e-9), pair

        report = await admin(gw, "GET", "/admin/costs")
        today = report["today"]
        for (chain, provider), cost in expected.items():
            assert today["chains"][chain]["providers"][provider]["cost_usd"] == round(cost, 6)
        assert today["cost_usd"] == round(sum(expected.values()), 6)
        reasoning = today["chains"]["reasoning"]
        assert (reasoning["requests"], reasoning["fallbacks"], reasoning["fallback_rate"]) == (3, 1, 0.3333)
        # the design's comparison: the same usage all on the chain's most expensive provider (Haiku 0.25/1.25)
        haiku = sum(tokens_cost(u, (0.25, 1.25)) for u in (a.usage, b.usage, f_usage))
        assert reasoning["all_on_most_expensive_usd"] == round(haiku, 6)
        assert reasoning["savings_usd"] == pytest.approx(haiku - reasoning["cost_usd"], abs=2e-6)
        assert len(report["last_7_days"]) == 7 and report["budget"]["mode"] == "normal"


async def test_budget_just_above_n_requests_flips_to_cost_preservation_on_request_n_plus_1(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    per_request = 1.05e-6  # "What is 2+2?" on MiniMax Lightning (see above)
    n = 3
    # MiniMax fails from its 5th request on; OpenRouter is healthy throughout
    async with ChatGateway(budget=n * per_request + per_request / 2,
                           faults={"minimax": "5-99:status,status=503"}) as gw:
        async with openai.AsyncOpenAI(api_key="x", base_url=gw.http + "/v1", max_retries=0) as client:
            async def ask() -> object:
                raw = await client.chat.completions.with_raw_response.create(
                    model="reasoning", messages=[{"role": "user", "content": "What is 2+2?"}])
                return raw

            for i in range(1, n + 1):
                raw = await ask()
                assert raw.headers["x-voice-gateway-mode"] == "normal", i
            assert [r.levelno for r in caplog.records if getattr(r, "vg_event", "") == "budget.warning"] == [
                logging.WARNING]  # 3/3.5 = 86 % ≥ 80 %, once
            assert metrics.sample("voice_gateway_budget_used_ratio") == pytest.approx(n / (n + 0.5))
            raw = await ask()  # request N+1 spends past the budget
            assert raw.parse().model_extra["voice_gateway"]["provider"] == "minimax"
            assert gw.ledger.preserving and metrics.sample("voice_gateway_cost_preservation_mode") == 1
            assert [r for r in caplog.records if getattr(r, "vg_event", "") == "budget.cost_preservation"]

            # MiniMax now fails: in cost preservation mode nobody else is asked
            with pytest.raises(openai.APIStatusError) as info:
                await ask()
            assert info.value.status_code == 502
            assert info.value.response.headers["x-voice-gateway-mode"] == "cost_preservation"
            body = info.value.response.json()
            assert body["error"]["code"] == "RSN-003"
            assert {a["provider"] for a in body["attempts"]} == {"minimax"}
            assert gw.hits("openrouter") == 0
            # every chain: transcription too asks only its primary and says so
            async with aiohttp.ClientSession() as http:
                async with http.post(gw.http + "/api/v1/transcribe", data=DTMF_WAV,
                                     headers={"Content-Type": "audio/wav"}) as res:
                    trx = await res.json()
            assert trx["cost_preservation"] is True and res.headers["x-voice-gateway-mode"] == "cost_preservation"
            assert [a["provider"] for a in trx["attempts"]] == ["deepgram"]
            report = await admin(gw, "GET", "/admin/costs")
            assert report["budget"]["mode"] == "cost_preservation"
            assert report["budget"]["mode_ends_at"] == "2026-12-08T00:00:00Z"

            # the operator ends the mode: fallbacks resume at once
            reset = await admin(gw, "POST", "/admin/costs/reset-mode")
            assert reset["was_cost_preservation"] is True and reset["budget"]["mode"] == "normal"
            raw = await ask()
            assert raw.headers["x-voice-gateway-provider"] == "openrouter"
            assert raw.headers["x-voice-gateway-mode"] == "normal"
            assert not gw.ledger.preserving  # an operator reset holds for the rest of the UTC day


def test_the_mode_ends_at_utc_midnight_and_live_minutes_are_priced() -> None:
    today = Today(date(2026, 12, 7))
    ledger = CostLedger(PriceTable(), daily_budget_usd=0.01, today=today)
    assert ledger.record_live("deepgram", 90.0) == pytest.approx(1.5 * 0.0065)  # per provider minute
    assert ledger.record_live("gemini", 90.0) == 0.0  # no gemini/live price: not priced
    ledger.record("reasoning", "minimax", 0.001, Usage(input_tokens=1, output_tokens=1))
    assert ledger.preserving and ledger.budget_dict()["used_ratio"] == pytest.approx(1.075)
    today.day += timedelta(days=1)
    assert not ledger.preserving and ledger.spent_today() == 0.0
    report = ledger.report()
    assert report["last_7_days"][1]["chains"]["live"]["providers"]["deepgram"]["minutes"] == 1.5


def test_price_file_overrides_and_refuses_bad_files(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    yml = folder / "prices.yaml"
    yml.write_text("deepgram/transcription: {per_minute_usd: 0.0043}\n"
                   "gemini/live: {per_minute_usd: 0.02}\nopenai/gpt-4o: null\n")
    table = load_prices(str(yml))
    assert table.for_attempt("transcription", "deepgram", "nova-2").per_minute_usd == 0.0043
    assert table.for_live("gemini").per_minute_usd == 0.02
    assert table.for_attempt("vision", "openai", "gpt-4o").per_million_input_tokens_usd == 5.0  # openai/vision
    js = folder / "prices.json"
    js.write_text('{"minimax/minimax-m2.1": {"input_per_million_usd": 1, "output_per_million_usd": 2}}')
    assert load_prices(str(js)).for_attempt("vision", "minimax", "minimax-m2.1").per_million_output_tokens_usd == 2
    for text, fragment in (("deepgram: {per_minute_usd: 1}", "provider/model"),
                           ("a/b: {per_hour: 1}", "unknown field"), ("a/b: {per_minute_usd: -1}", ">= 0"),
                           ("[1, 2]", "mapping")):
        yml.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_prices(str(yml))
        assert fragment in info.value.message and "VG_PRICES_FILE" in info.value.message


def test_the_budget_gauges_are_read_at_scrape_time_and_drop_at_midnight() -> None:
    today = Today(date(2026, 12, 7))
    ledger = CostLedger(PriceTable(), daily_budget_usd=0.001, today=today)
    ledger.record("vision", "openai", 0.002, Usage(input_tokens=100, output_tokens=100))
    assert metrics.sample("voice_gateway_budget_used_ratio") == pytest.approx(2.0)
    assert metrics.sample("voice_gateway_cost_preservation_mode") == 1
    today.day += timedelta(days=1)  # no request after midnight: the next scrape already sees the new day
    assert metrics.sample("voice_gateway_budget_used_ratio") == 0
    assert metrics.sample("voice_gateway_cost_preservation_mode") == 0
