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
        async with aiohttp.ClientSession() as http, \
                http.get(f"{gw.http}/admin/sessions/{started['session_id']}") as r:
            counters = (await r.json())["counters"]
        assert counters["replayed"] == 0
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
