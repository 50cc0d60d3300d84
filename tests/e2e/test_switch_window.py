"""The window of a switch: while the new provider is still opening, the call is on neither.

Found by the chaos run (benchmarks/chaos.py): an operator switch whose target opens slowly lost the
words the old provider finalized meanwhile (its transcripts were dropped, yet its acknowledgement
took their audio out of the replay buffer), and a switch whose target failed left the audio sent
during the attempt unsent for good (the old link went on with newer chunks). Words arrive once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
import pytest

from audio.formats import PCM16_16K
from providers.fakes.common import FaultScript
from tests.harness import FAST_RECONNECT, Gateway, VoiceClient, dtmf_utterance

pytestmark = pytest.mark.timeout(40)
SILENCE_1S = bytes(32000)


async def operator_switch(gw: Gateway, session_id: str, provider: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, \
            http.post(f"{gw.http}/admin/sessions/{session_id}/switch", json={"provider": provider}) as r:
        return r.status, await r.json()


async def session_detail(gw: Gateway, session_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{gw.http}/admin/sessions/{session_id}") as r:
        detail: dict[str, Any] = await r.json()
        return detail


def partial(c: VoiceClient, text: str) -> bool:
    return any(e["type"] == "transcript.partial" and e["role"] == "user" and e["text"] == text for e in c.events)


async def test_words_the_old_provider_finalizes_while_the_new_one_opens_are_heard_once() -> None:
    # every Gemini message 1 s late: its final for "12" reaches the gateway ~1 s after the partial
    # "12"; OpenAI's setup takes 3 s, so the switch is still opening when that final arrives
    faults = {"gemini": FaultScript.parse("1:delay,ms=1000"), "openai": FaultScript.parse("1:delay,ms=3000")}
    reconnect = dataclasses.replace(FAST_RECONNECT, connect_timeout_s=15.0)
    async with Gateway(faults=faults, reconnect=reconnect) as gw, gw.client() as c:
        started = await c.start("gemini", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("12", PCM16_16K), PCM16_16K)
        await c.wait_until(lambda: partial(c, "12"), what="partial 12", timeout=15)
        switch = asyncio.create_task(operator_switch(gw, started["session_id"], "openai"))
        await c.wait_until(lambda: c.user_finals() == "12", what="the final of 12 from gemini", timeout=15)
        assert (await switch)[0] == 200
        switched = await c.wait_for("provider.switched", timeout=15)
        assert switched["to"] == "openai"
        # OpenAI is not sent "12" again: Gemini acknowledged it, so nothing was left to replay
        assert (await session_detail(gw, started["session_id"]))["counters"]["replayed"] == 0
        assert c.user_finals() == "12"


async def test_audio_sent_during_a_switch_that_fails_reaches_the_old_provider() -> None:
    # OpenAI accepts the upgrade, then stalls: the switch times out after 1.5 s and the call stays
    faults = {"openai": FaultScript.parse("1:stall")}
    reconnect = dataclasses.replace(FAST_RECONNECT, connect_timeout_s=1.5)
    async with Gateway(faults=faults, reconnect=reconnect) as gw, gw.client() as c:
        started = await c.start("gemini", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("1", PCM16_16K), PCM16_16K)
        await c.wait_until(lambda: c.user_finals() == "1", what="1")
        switch = asyncio.create_task(operator_switch(gw, started["session_id"], "openai"))
        await gw.fakes["openai"].fault_fired(1, "stall")  # the switch is opening OpenAI now
        await c.send_audio(dtmf_utterance("56", PCM16_16K), PCM16_16K)  # kept for OpenAI
        status, body = await switch
        assert status == 409 and body["reason"] == "timeout"  # the operator is told why
        await c.send_audio(SILENCE_1S, PCM16_16K)  # live audio again, on Gemini
        await c.wait_until(lambda: c.user_finals() == "156", what="156 on gemini", timeout=10)
        assert c.of_type("provider.switched") == []
        assert gw.fakes["gemini"].connections[-1].digits == "156"


async def test_chunks_lost_in_a_stalled_connection_the_call_switches_away_from_are_counted() -> None:
    """300 chunks go into a Deepgram connection that stalled right after setup; an operator moves the
    call to Gemini before the stall is noticed: 100 are replayed there, the other 200 are gone, and
    the totals must say so (they said 0: only a reconnect counted them)."""
    async with Gateway(faults={"deepgram": FaultScript.parse("1:stall")}) as gw, gw.client() as c:
        started = await c.start("deepgram", input_format=PCM16_16K)
        await gw.fakes["deepgram"].fault_fired(1, "stall")
        await c.send_audio(bytes(PCM16_16K.frame_bytes(20) * 300), PCM16_16K)
        # the gateway handles a client's messages in order: the answer to this text (Deepgram STT has no
        # text input) means all 300 chunks went into the stalled connection before the switch
        await c.send({"type": "text", "text": "1"})
        await c.wait_for("error", lambda e: e["code"] == "not_supported")
        status, body = await operator_switch(gw, started["session_id"], "gemini")
        assert status == 200 and body["session"]["counters"]["replayed"] == 100
        await c.send({"type": "session.end"})
        ended = await c.wait_for("session.ended")
        assert ended["totals"]["dropped_audio_chunks"] == 200


async def test_a_reconnect_that_completes_while_a_switch_is_opening_is_told_to_the_client() -> None:
    """Gemini drops; while its reconnect waits 1 s, the operator switches to OpenAI, which stalls
    (the switch fails after 3 s). The reconnect completes inside that window: the client must hear
    connection.reconnected (it was dropped, leaving the client at "reconnecting" for good)."""
    faults = {"gemini": FaultScript.parse("1:drop,audio_bytes=16000"), "openai": FaultScript.parse("1:stall")}
    reconnect = dataclasses.replace(FAST_RECONNECT, initial_backoff_s=1.0, max_backoff_s=1.0, connect_timeout_s=3.0)
    async with Gateway(faults=faults, reconnect=reconnect) as gw, gw.client() as c:
        started = await c.start("gemini", input_format=PCM16_16K)
        await c.send_audio(dtmf_utterance("12", PCM16_16K), PCM16_16K)
        await c.wait_for("connection.reconnecting")
        status, body = await operator_switch(gw, started["session_id"], "openai")
        assert status == 409 and body["reason"] == "timeout"
        reconnected = await c.wait_for("connection.reconnected")
        assert reconnected["provider"] == "gemini"
        await c.wait_until(lambda: c.user_finals() == "12", what="12 after the reconnect")
