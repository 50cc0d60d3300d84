"""Operator controls in one process (no Redis): PATCH /admin/providers/{name} disable/enable with live
calls switched away at a turn boundary or left to stay, POST /admin/circuits/reset for every breaker,
POST /admin/sessions/{id}/end; each action audited (docs/fleet.md "Operator controls")."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from audio.formats import PCM16_16K
from gateway import metrics
from providers.fakes.common import FaultScript
from tests.harness import Gateway, dtmf_utterance

pytestmark = pytest.mark.timeout(30)
TOKEN = "controls-admin-token-77e1"
AUTH = {"authorization": f"Bearer {TOKEN}"}


async def call_api(gw: Gateway, method: str, path: str, body: dict | None = None,
                   headers: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.request(
            method, gw.http + path, json=body, headers=AUTH if headers is None else headers) as r:
        return r.status, await r.json(content_type=None)


def audited(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.audit" and r.vg_fields.get("action") == action]


async def test_provider_patch_validates_and_needs_the_token() -> None:
    async with Gateway(admin_token=TOKEN) as gw:
        assert (await call_api(gw, "PATCH", "/admin/providers/gemini", {"status": "disabled"}, headers={}))[0] == 401
        assert (await call_api(gw, "PATCH", "/admin/providers/nosuch", {"status": "disabled"}))[0] == 404
        for bad in ({"status": "off"}, {"status": "disabled", "live_calls": "drop"}, {}):
            status, body = await call_api(gw, "PATCH", "/admin/providers/gemini", bad)
            assert status == 400 and body["error"] == "bad_message"
        assert (await call_api(gw, "POST", "/admin/circuits/reset", headers={}))[0] == 401
        assert gw.runtime is not None and gw.runtime.provider_enabled("gemini")


async def test_disable_with_stay_keeps_live_calls_and_new_calls_skip_it(caplog) -> None:
    caplog.set_level("INFO")
    async with Gateway(admin_token=TOKEN) as gw, gw.client() as live:
        await live.start("gemini", input_format=PCM16_16K)
        before = metrics.sample("voice_gateway_operator_actions_total", {"action": "provider_disable"}) or 0
        status, body = await call_api(gw, "PATCH", "/admin/providers/gemini",
                                      {"status": "disabled", "live_calls": "stay"})
        assert status == 200 and body["switching_calls"] == 0
        assert body["providers"]["gemini"]["status"] == "disabled"
        status, ready = await call_api(gw, "GET", "/readyz")
        assert status == 200 and ready["providers"]["gemini"]["status"] == "disabled"
        async with gw.client() as fresh:
            assert (await fresh.start("gemini", input_format=PCM16_16K))["provider"] == "openai"
        assert len(gw.fakes["gemini"].connections) == 1  # only the live call's
        # the live call stays on gemini and keeps working
        await live.send_audio(dtmf_utterance("5", PCM16_16K), PCM16_16K)
        await live.wait_for("transcript.final", lambda e: e["role"] == "user" and e["provider"] == "gemini")
        assert live.of_type("provider.switched") == []
        [record] = audited(caplog, "provider_disable")
        assert record.vg_fields["provider"] == "gemini" and record.vg_fields["live_calls"] == "stay"
        assert metrics.sample("voice_gateway_operator_actions_total", {"action": "provider_disable"}) == before + 1
        status, body = await call_api(gw, "PATCH", "/admin/providers/gemini", {"status": "enabled"})
        assert status == 200 and gw.runtime is not None and gw.runtime.provider_enabled("gemini")
        assert audited(caplog, "provider_enable")
        async with gw.client() as again:
            assert (await again.start("gemini", input_format=PCM16_16K))["provider"] == "gemini"


async def test_disable_with_switch_moves_a_call_at_the_end_of_the_reply() -> None:
    # every Gemini message 50 ms late: the spoken reply takes most of a second, so the operator acts mid-reply
    slow = {"gemini": FaultScript.parse("1:delay,ms=50")}
    async with Gateway(admin_token=TOKEN, faults=slow) as gw, gw.client() as live:
        await live.start("gemini", input_format=PCM16_16K)
        await live.send_audio(dtmf_utterance("123456", PCM16_16K), PCM16_16K)
        await live.wait_for("turn.started", lambda e: e["role"] == "assistant", timeout=10)
        status, body = await call_api(gw, "PATCH", "/admin/providers/gemini", {"status": "disabled"})
        assert status == 200 and body["switching_calls"] == 1
        assert not live.of_type("provider.switched")  # not at once: the reply is still playing
        switched = await live.wait_for("provider.switched", timeout=15)
        assert (switched["from"], switched["to"], switched["reason"]) == ("gemini", "openai", "operator")
        types = [e["type"] + ":" + e.get("role", "") for e in live.events]
        completed = types.index("turn.completed:assistant")
        assert completed < types.index("provider.switched:"), "switched in the middle of the reply"
        # the conversation goes on on the new provider
        start = len(live.events)
        await live.send_audio(dtmf_utterance("9", PCM16_16K), PCM16_16K)
        final = await live.wait_for("transcript.final", lambda e: e["role"] == "user", start=start, timeout=10)
        assert final["provider"] == "openai" and final["text"] == "9"


async def test_reset_all_closes_every_breaker_and_is_audited(caplog) -> None:
    caplog.set_level("INFO")
    async with Gateway(admin_token=TOKEN) as gw:
        assert gw.runtime is not None
        for name in ("gemini", "openai", "deepgram"):
            gw.runtime.breakers.get(name).force_open("auth")
        status, body = await call_api(gw, "POST", "/admin/circuits/reset")
        states = [c["state"] for c in body["circuits"]]
        assert status == 200 and len(states) == len(gw.runtime.breakers.all()) >= 3 and set(states) == {"CLOSED"}
        assert all(b.state.name == "CLOSED" for b in gw.runtime.breakers.all())
        assert audited(caplog, "circuits_reset_all")


async def test_end_a_call_from_the_admin_api() -> None:
    async with Gateway(admin_token=TOKEN) as gw, gw.client() as live:
        sid = (await live.start("deepgram", input_format=PCM16_16K))["session_id"]
        assert (await call_api(gw, "POST", "/admin/sessions/nosuch/end"))[0] == 404
        status, body = await call_api(gw, "POST", f"/admin/sessions/{sid}/end")
        assert status == 200 and body["session"]["id"] == sid
        assert (await live.wait_for("session.ended"))["reason"] == "operator_hangup"
        assert gw.runtime is not None and sid not in gw.runtime.sessions


async def test_a_call_waiting_because_everything_is_disabled_resumes_when_one_is_enabled() -> None:
    async with Gateway(admin_token=TOKEN) as gw:
        for name in ("gemini", "openai", "deepgram"):
            assert (await call_api(gw, "PATCH", f"/admin/providers/{name}",
                                   {"status": "disabled", "live_calls": "stay"}))[0] == 200
        async with gw.client() as live:
            started = await live.start("gemini", input_format=PCM16_16K)
            assert started["provider"] == "none"
            assert (await live.wait_for("error"))["code"] == "provider_unavailable"
            assert (await call_api(gw, "PATCH", "/admin/providers/openai", {"status": "enabled"}))[0] == 200
            resumed = await live.wait_for("provider.switched")
            assert resumed["to"] == "openai"
            await live.send_audio(dtmf_utterance("2", PCM16_16K), PCM16_16K)
            final = await live.wait_for("transcript.final", lambda e: e["role"] == "user", timeout=10)
            assert final["text"] == "2" and final["provider"] == "openai"
