"""Failover (gateway/failover.py) without sockets: real breakers on a virtual clock, links that
succeed or fail to open as scripted (the way ProviderLink.open() does: admit, then connect)."""

from __future__ import annotations

import asyncio

import pytest

from gateway import metrics
from gateway.breaker import BreakerPolicy, BreakerRegistry
from gateway.clock import VirtualClock
from gateway.errors import ProviderRejected, ProviderUnavailable
from gateway.failover import Failover, failover_chain
from gateway.session_config import SessionConfig
from gateway.states import LinkState, SessionState

ALL = ("gemini", "openai", "deepgram")


class ScriptedLink:
    """Opens like ProviderLink: one breaker call; `fails` says which providers fail to connect."""

    def __init__(self, provider: str, world: World) -> None:
        self.provider = provider
        self.world = world
        self.state = LinkState.IDLE
        self.closed: bool | None = None  # None: open; else the `graceful` it was closed with

    async def open(self) -> None:
        ticket = self.world.breakers.get(self.provider).admit()  # CircuitOpen when refused
        self.world.opened.append(self.provider)
        await asyncio.sleep(0)  # a real open awaits; let other tasks run
        err = self.world.fails.get(self.provider)
        if err is not None:
            ticket.failure(err.error_type)
            self.state = LinkState.FAILED
            raise err
        ticket.success()
        self.state = LinkState.UP

    async def close(self, *, graceful: bool = True) -> None:
        self.closed = graceful
        self.state = LinkState.CLOSED


class World:
    """The failover's surroundings, recorded: breakers, links made, listener calls."""

    def __init__(self, *, fallback: tuple[str, ...] = ALL, provider: str = "gemini",
                 available: tuple[str, ...] = ALL, return_after_s: float | None = None) -> None:
        self.clock = VirtualClock()
        self.breakers = BreakerRegistry(self.clock, BreakerPolicy(failure_threshold=1, open_timeout_s=60.0))
        self.fails: dict[str, Exception] = {}
        self.opened: list[str] = []
        self.links: list[ScriptedLink] = []
        self.calls: list[tuple] = []
        self.failover: Failover[ScriptedLink] = Failover(
            session_id="s1", config=SessionConfig(provider=provider, fallback=fallback), available=available,
            breaker=self.breakers.get, new_link=self.new_link, clock=self.clock, listener=self,
            return_to_primary_after_s=return_after_s)

    def new_link(self, provider: str) -> ScriptedLink:
        link = ScriptedLink(provider, self)
        self.links.append(link)
        return link

    async def switching_to(self, provider: str) -> None:
        self.calls.append(("switching_to", provider))

    async def switched(self, old_provider: str, link: ScriptedLink, reason: str, elapsed_s: float) -> None:
        self.calls.append(("switched", old_provider, link.provider, reason))

    async def no_provider(self, retry_after_s: float, reason: str) -> None:
        self.calls.append(("no_provider", retry_after_s, reason))

    def open_circuit(self, provider: str) -> None:
        """OPEN until an operator resets it (the breaker's rule after an auth rejection)."""
        self.breakers.get(provider).force_open("auth")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def active(provider: str) -> float:
    return metrics.sample("ai_provider_active_sessions", {"provider": provider}) or 0.0


def test_chain_is_first_then_fallback_once_each_with_an_endpoint() -> None:
    cfg = SessionConfig(provider="openai", fallback=("gemini", "openai", "deepgram", "gemini"))
    assert failover_chain(cfg, ALL, first="openai") == ["openai", "gemini", "deepgram"]
    assert failover_chain(cfg, ALL, first="auto") == ["gemini", "openai", "deepgram"]
    assert failover_chain(cfg, ("gemini", "deepgram"), first="openai") == ["gemini", "deepgram"]
    assert failover_chain(cfg, ALL, exclude=["gemini"]) == ["openai", "deepgram"]


async def test_start_skips_a_provider_that_fails_to_open_and_counts_the_call_once() -> None:
    w = World()
    w.fails["gemini"] = ProviderUnavailable("down", provider="gemini")
    before = {p: active(p) for p in ALL}
    link = await w.failover.start()
    assert link is not None and link.provider == "openai" and w.failover.link is link
    assert w.opened == ["gemini", "openai"]
    assert w.failover.state is SessionState.ACTIVE
    assert {p: active(p) - before[p] for p in ALL} == {"gemini": 0, "openai": 1, "deepgram": 0}
    await w.failover.end()
    assert w.failover.state is SessionState.ENDED and link.closed is True
    assert {p: active(p) - before[p] for p in ALL} == {"gemini": 0, "openai": 0, "deepgram": 0}


async def test_no_usable_provider_waits_then_resumes_when_a_breaker_admits() -> None:
    w = World(fallback=("gemini", "openai"))
    w.open_circuit("gemini")
    w.fails["openai"] = ProviderUnavailable("down", provider="openai")  # one failure opens it (threshold 1)
    assert await w.failover.start() is None
    assert w.failover.state is SessionState.WAITING and w.opened == ["openai"]  # gemini refused by its breaker
    waiting = metrics.sample("voice_gateway_no_provider_sessions") or 0.0
    await w.failover.wait_for_provider("circuit_open")
    await settle()
    assert w.calls == [("no_provider", 60.0, "circuit_open")]
    assert (metrics.sample("voice_gateway_no_provider_sessions") or 0.0) == waiting + 1
    del w.fails["openai"]
    w.clock.advance(60.0)  # openai's open timeout: HALF_OPEN admits a trial call, the waiter takes it
    await settle()
    assert w.failover.state is SessionState.ACTIVE and w.failover.link is not None
    assert w.failover.link.provider == "openai"
    assert w.calls[1:] == [("switching_to", "openai"), ("switched", "none", "openai", "circuit_open")]
    assert (metrics.sample("voice_gateway_no_provider_sessions") or 0.0) == waiting


async def test_a_lost_link_fails_over_to_the_next_provider_and_is_closed() -> None:
    w = World()
    first = await w.failover.start()
    assert first is not None and first.provider == "gemini"
    await w.failover.link_lost(first, "reconnect_failed")
    await settle()
    assert w.failover.link is not None and w.failover.link.provider == "openai"
    assert first.state is LinkState.CLOSED  # the switch closes the replaced link
    assert w.calls == [("switching_to", "openai"), ("switched", "gemini", "openai", "reconnect_failed")]
    assert w.failover.state is SessionState.ACTIVE


async def test_a_lost_link_with_nowhere_to_go_waits_and_tells_the_listener() -> None:
    w = World(fallback=("gemini",))
    first = await w.failover.start()
    assert first is not None
    w.open_circuit("gemini")
    await w.failover.link_lost(first, "circuit_open")
    await settle()
    assert w.failover.state is SessionState.WAITING and first.closed is False
    assert w.calls == [("no_provider", 60.0, "circuit_open")]
    await w.failover.end()


async def test_a_link_lost_that_is_not_current_is_ignored() -> None:
    w = World()
    first = await w.failover.start()
    assert first is not None
    assert await w.failover.switch("deepgram", "operator")
    await w.failover.link_lost(first, "fatal_error")
    await settle()
    assert w.failover.link is not None and w.failover.link.provider == "deepgram"
    assert [c for c in w.calls if c[0] == "switched"] == [("switched", "gemini", "deepgram", "operator")]


async def test_a_failed_switch_keeps_the_call_on_its_link() -> None:
    w = World()
    first = await w.failover.start()
    w.fails["openai"] = ProviderRejected("bad key", provider="openai")
    assert await w.failover.switch("openai", "client") is False
    assert w.failover.link is first and first is not None and first.closed is None
    assert w.failover.state is SessionState.ACTIVE and w.calls == []


async def test_a_switch_to_a_provider_without_an_endpoint_is_refused_not_opened() -> None:
    """A known provider this deployment has no endpoint for (the fuzz test found `provider.switch` to
    `deepgram_agent` with only the STT configured): no link is made, the call stays where it was."""
    w = World(available=("gemini", "openai"))
    first = await w.failover.start()
    assert await w.failover.switch("deepgram", "client") is False
    assert w.failover.link is first and first is not None and first.closed is None
    assert w.opened == ["gemini"] and [link.provider for link in w.links] == ["gemini"]
    assert w.failover.state is SessionState.ACTIVE and w.calls == []


async def test_end_during_a_switch_leaves_the_call_ended() -> None:
    w = World()
    await w.failover.start()
    switching = asyncio.ensure_future(w.failover.switch("openai", "operator"))
    await asyncio.sleep(0)  # the switch is opening openai now
    await w.failover.end()
    assert await switching is False
    assert w.failover.state is SessionState.ENDED
    assert [c for c in w.calls if c[0] == "switched"] == []


@pytest.mark.parametrize(("closed_for_s", "moves"), [(29.0, False), (30.0, True)])
async def test_return_to_primary_after_its_circuit_stayed_closed(closed_for_s: float, moves: bool) -> None:
    w = World(return_after_s=30.0)
    w.fails["gemini"] = ProviderUnavailable("down", provider="gemini")
    await w.failover.start()
    assert w.failover.link is not None and w.failover.link.provider == "openai"
    del w.fails["gemini"]
    w.breakers.get("gemini").reset()  # the operator (or a half-open success) closed it again
    w.clock.advance(closed_for_s)
    w.failover.turn_completed()
    await settle()
    assert w.failover.link.provider == ("gemini" if moves else "openai")
    assert (("switched", "openai", "gemini", "return_to_primary") in w.calls) is moves
