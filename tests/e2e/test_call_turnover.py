"""Calls come and go and the gateway keeps nothing of them (what benchmarks/soak.py watches for an hour,
checked here in seconds): after N calls that end every way a call can end (session.end, the client
dropping the socket, a switch mid-call), every per-call structure is back at its baseline: the session
table, the operator controls' turn-boundary maps, asyncio tasks, metric label sets (none per call or
session id), breaker listeners and waiters, and no call's objects stay reachable."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from audio.formats import PCM16_16K
from gateway.link import ProviderLink
from gateway.metrics import REGISTRY
from gateway.replay import ReplayBuffer
from gateway.runtime import RECENTLY_ENDED, Runtime
from gateway.session import CallSession
from tests.harness import Gateway, dtmf_utterance

pytestmark = pytest.mark.timeout(60)
PROVIDERS = ("gemini", "openai", "deepgram")
ROUNDS = 4  # each round: one call per provider per ending


def live_instances(*classes: type) -> dict[str, int]:
    gc.collect()
    counts = dict.fromkeys((c.__name__ for c in classes), 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts and isinstance(obj, classes):
            counts[name] += 1
    return counts


def per_call_structures(rt: Runtime) -> dict[str, Any]:
    controls = next(o.__self__ for o in rt.session_observers if type(o.__self__).__name__ == "OperatorControls")
    breakers = list(rt.breakers.all())
    return {
        "sessions": len(rt.sessions),
        "controls_in_reply": len(controls._in_reply),
        "controls_boundary": len(controls._boundary),
        "controls_tasks": len(controls._tasks),
        "metric_series": sorted((s.name, tuple(sorted(s.labels.items())))
                                for m in REGISTRY.collect() for s in m.samples
                                if s.labels and not s.name.endswith(("_bucket", "_created"))),
        "breaker_listeners": sum(len(b._listeners) for b in breakers),
        "breaker_waiters": sum(len(b._waiters) for b in breakers),
        "session_observers": len(rt.session_observers),
    }


async def until(cond: Any, what: str, timeout: float = 10.0) -> None:
    """Wait for a server-side condition no event announces (the end of a session's teardown)."""
    async def poll() -> None:
        while not cond():  # noqa: ASYNC110 - nothing to wait on: a session's teardown sets no event
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {timeout}s") from None


async def one_call(gw: Gateway, provider: str, ending: str) -> None:
    async with gw.client() as c:
        await c.start(provider, input_format=PCM16_16K, fallback=list(PROVIDERS))
        await c.send_audio(dtmf_utterance("1357", PCM16_16K), PCM16_16K)
        await c.wait_for("transcript.final", lambda e: e["role"] == "user")
        if ending == "switch":
            target = next(p for p in PROVIDERS if p != provider)
            await c.send({"type": "provider.switch", "provider": target})
            await c.wait_for("provider.switched")
        if ending == "drop":
            return  # the client closes the socket without session.end
        await c.send({"type": "session.end"})
        await c.wait_for("session.ended")


async def test_per_call_structures_return_to_baseline_after_calls_end() -> None:
    async with Gateway() as gw:
        rt = gw.runtime
        assert rt is not None
        tasks_before = asyncio.all_tasks()

        async def round_of_calls() -> None:
            await asyncio.gather(*(one_call(gw, p, ending) for p in PROVIDERS for ending in ("end", "drop", "switch")))
            await until(lambda: not rt.sessions, "every call ended")

        # the first round creates what exists once per process (metric children per provider pair and
        # reason, connection pools); after it nothing may grow with the number of calls
        await round_of_calls()
        baseline = per_call_structures(rt)
        for _ in range(ROUNDS):
            await round_of_calls()
        # a dropped socket is noticed by the server's reader: its tasks end after the sessions do
        await until(lambda: not asyncio.all_tasks() - tasks_before - {asyncio.current_task()},
                    "every call's tasks ended")

        after = per_call_structures(rt)
        assert after == baseline
        session_ids = {e["id"] for e in rt.recently_ended}
        assert not [series for series in after["metric_series"] if session_ids & {v for _, v in series[1]}]
        assert len(rt.recently_ended) == RECENTLY_ENDED  # bounded: the newest only
        assert live_instances(CallSession, ProviderLink, ReplayBuffer) == \
            {"CallSession": 0, "ProviderLink": 0, "ReplayBuffer": 0}
