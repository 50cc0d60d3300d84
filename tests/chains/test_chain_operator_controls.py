"""A provider an operator disables (PATCH /admin/providers/{name}, gateway/fleet/controls.py) is skipped
by the one-shot chains too, not only by live calls: never contacted, listed in the request's attempts
as `disabled` with code `provider_disabled`, counted in voice_gateway_chain_requests_total
{outcome="disabled"}; enabling it puts it back in the chain at once (docs/chains.md)."""

from __future__ import annotations

import aiohttp
import pytest

from gateway import metrics
from tests.chains.harness import DTMF_WAV, ChainGateway

pytestmark = pytest.mark.timeout(30)
TOKEN = "chain-controls-admin-token-5c2e"
AUTH = {"authorization": f"Bearer {TOKEN}"}


async def set_status(gw: ChainGateway, provider: str, status: str) -> dict:
    async with aiohttp.ClientSession() as http, http.patch(
            f"{gw.http}/admin/providers/{provider}", json={"status": status}, headers=AUTH) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def transcribe(gw: ChainGateway) -> tuple[int, dict, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(
            gw.http + "/api/v1/transcribe", data=DTMF_WAV, headers={"Content-Type": "audio/wav"}) as r:
        return r.status, await r.json(), dict(r.headers)


def disabled_turns(provider: str) -> float:
    return metrics.sample("voice_gateway_chain_requests_total",
                          {"chain": "transcription", "provider": provider, "outcome": "disabled"}) or 0.0


async def test_a_disabled_provider_is_skipped_by_the_chain_and_back_once_enabled() -> None:
    async with ChainGateway(settings_overrides={"admin_token": TOKEN}) as gw:
        before = disabled_turns("deepgram")
        await set_status(gw, "deepgram", "disabled")

        status, body, headers = await transcribe(gw)
        assert status == 200 and body["text"] == "159#" and body["provider"] == "groq"
        assert body["attempts"][0] == {**body["attempts"][0], "provider": "deepgram", "outcome": "disabled",
                                       "code": "provider_disabled"}
        assert "operator" in body["attempts"][0]["message"]
        assert headers["x-voice-gateway-provider"] == "groq"
        assert gw.hits("deepgram") == 0  # never contacted
        assert disabled_turns("deepgram") == before + 1
        # /readyz shows it; a skip is not a provider failure: its breaker saw nothing
        async with aiohttp.ClientSession() as http, http.get(gw.http + "/readyz") as r:
            ready = (await r.json())["chains"]["transcription"]["deepgram"]
        assert ready["status"] == "disabled" and ready["circuit"] == "CLOSED"

        await set_status(gw, "deepgram", "enabled")
        status, body, _ = await transcribe(gw)
        assert status == 200 and body["provider"] == "deepgram"
        assert [a["outcome"] for a in body["attempts"]] == ["success"]
        assert gw.hits("deepgram") == 1


async def test_every_provider_disabled_is_a_502_listing_each_skip() -> None:
    async with ChainGateway(settings_overrides={"admin_token": TOKEN}) as gw:
        for provider in ("deepgram", "openai"):
            await set_status(gw, provider, "disabled")
        await gw.fakes["groq"].stop()  # groq is chain-only (no live provider to disable): down, so nobody answers
        status, body, _ = await transcribe(gw)
        assert status == 502 and body["error"]["code"] == "TRX-003"
        outcomes = [(a["provider"], a["outcome"]) for a in body["attempts"]]
        assert outcomes[0] == ("deepgram", "disabled") and outcomes[-1] == ("openai", "disabled")
        assert gw.hits("deepgram") == 0 and gw.hits("openai") == 0


async def test_in_cost_preservation_mode_the_first_enabled_provider_answers() -> None:
    """Cost preservation asks one provider only: with the primary disabled that is the next one, not nobody."""
    async with ChainGateway(settings_overrides={"admin_token": TOKEN}, daily_budget_usd=1e-9) as gw:
        status, body, headers = await transcribe(gw)  # deepgram answers; its cost uses the budget up
        assert status == 200 and body["provider"] == "deepgram" and gw.chains.ledger.preserving
        await set_status(gw, "deepgram", "disabled")
        status, body, headers = await transcribe(gw)
        assert status == 200 and body["provider"] == "groq" and headers["x-voice-gateway-mode"] == "cost_preservation"
        assert [(a["provider"], a["outcome"]) for a in body["attempts"]] == [("deepgram", "disabled"), ("groq", "success")]
        assert gw.hits("openai") == 0


async def test_the_app_wires_operator_controls_into_the_chains() -> None:
    """No wiring by the test: the app's own ChainService follows the runtime's operator controls."""
    async with ChainGateway(settings_overrides={"admin_token": TOKEN}) as gw:
        await set_status(gw, "deepgram", "disabled")
        status, body, _ = await transcribe(gw)
        assert status == 200 and body["attempts"][0]["outcome"] == "disabled"
        assert gw.hits("deepgram") == 0
