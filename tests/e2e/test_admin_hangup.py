"""Operator hang-up and the console's call history over the admin API: POST /admin/sessions/{id}/end
ends the call with `operator_hangup` (the caller gets session.ended and the socket closes), the call
moves to `recently_ended`, and its detail (transcript, events, replay depth against its limit) stays
readable after it ended."""

from __future__ import annotations

import asyncio

import aiohttp

from audio.formats import PCM16_16K
from tests.harness import Gateway, dtmf_utterance

ADMIN = {"Authorization": "Bearer admin-hangup-token-42"}


async def test_operator_hangs_up_a_call_and_it_is_listed_as_recently_ended() -> None:
    async with Gateway(admin_token="admin-hangup-token-42") as gw, gw.client() as call, \
            aiohttp.ClientSession() as http:
        started = await call.start("gemini", input_format=PCM16_16K)
        sid = started["session_id"]
        await call.send_audio(dtmf_utterance("42", PCM16_16K), PCM16_16K)
        await call.wait_for("turn.completed", timeout=10)

        async with http.get(f"{gw.http}/admin/sessions/{sid}", headers=ADMIN) as r:
            live = await r.json()
        assert live["transcript"][:2] == [{"role": "user", "text": "42"}, {"role": "assistant", "text": "42"}]
        assert live["replay_limit"] == 100 and 0 <= live["replay_depth"] <= 100
        assert any(e["type"] == "session.started" for e in live["recent_events"])

        async with http.post(f"{gw.http}/admin/sessions/{sid}/end") as r:
            assert r.status == 401  # the admin token is required, as for every admin endpoint
        async with http.post(f"{gw.http}/admin/sessions/{sid}/end", headers=ADMIN) as r:
            assert r.status == 200
            body = await r.json()
        assert body["session"]["ended_reason"] == "operator_hangup"
        ended = await call.wait_for("session.ended")
        assert ended["reason"] == "operator_hangup"
        await call.closed.wait()  # the gateway closed the caller's socket
        assert sid not in gw.runtime.sessions  # type: ignore[union-attr]

        async with http.get(f"{gw.http}/admin/sessions", headers=ADMIN) as r:
            listing = await r.json()
        assert listing["sessions"] == []
        assert [s["id"] for s in listing["recently_ended"]] == [sid]
        assert listing["recently_ended"][0]["ended_reason"] == "operator_hangup"
        async with http.get(f"{gw.http}/admin/sessions/{sid}", headers=ADMIN) as r:
            after = await r.json()
        assert after["state"] == "ended" and after["transcript"][0]["text"] == "42"
        async with http.post(f"{gw.http}/admin/sessions/{sid}/end", headers=ADMIN) as r:
            assert r.status == 404  # not live any more


async def test_operator_hangs_up_a_twilio_call() -> None:
    from tests.telephony_clients import FakeTwilioCaller

    async with Gateway(admin_token="admin-hangup-token-42") as gw, aiohttp.ClientSession() as http:
        caller = FakeTwilioCaller(gw.url + "/v1/twilio", {"provider": "gemini", "fallback": "gemini"},
                                  instant_playout=True)
        async with caller:
            assert gw.runtime is not None
            async with asyncio.timeout(5):
                while not gw.runtime.sessions:  # noqa: ASYNC110 - the session appears after `start`
                    await asyncio.sleep(0.01)
            sid = next(iter(gw.runtime.sessions))
            async with http.post(f"{gw.http}/admin/sessions/{sid}/end", headers=ADMIN) as r:
                assert r.status == 200
            await caller.wait_closed(timeout=5)  # the media stream socket was closed: Twilio ends the stream
        assert not gw.runtime.sessions
        assert gw.runtime.recently_ended[0]["ended_reason"] == "operator_hangup"
