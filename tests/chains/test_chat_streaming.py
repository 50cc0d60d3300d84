"""The chat streams' commit point is the first event: an in-band error event (MiniMax base_resp, OpenRouter
`error`, Anthropic `error`) before it falls back like any failed attempt; one after it reaches the consumer
as ProviderUnavailable with no fallback. Real SSE servers on 127.0.0.1, the real runner and translators."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from gateway.breaker import CircuitBreaker
from gateway.chains.http import AiohttpExchange
from gateway.chains.outcome import BoundProvider
from gateway.chains.policy import ChainPolicy
from gateway.chains.runner import ChainRunner, ChainStream
from gateway.errors import ProviderUnavailable
from providers.chains.anthropic_messages import AnthropicMessages
from providers.chains.base import ChainEndpoint
from providers.chains.chat import REASONING, ChatDelta, ChatOptions
from providers.chains.openai_chat import MiniMaxChat, OpenRouterChat
from tests.chains.harness import RecordingClock

OPTIONS = ChatOptions(messages=({"role": "user", "content": "What is 2+2?"},), stream=True)


def sse(*events: dict) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def delta(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


SCRIPTS = {
    # MiniMax: a rate limit as the stream's first event (base_resp 1002)
    "minimax": sse({"choices": [], "base_resp": {"status_code": 1002, "status_msg": "rate limit"}}),
    # OpenRouter: one token, then an error object mid-stream (after the commit)
    "openrouter": sse(delta("4"), {"error": {"code": 502, "message": "upstream died"}}),
    # Anthropic: overloaded before anything
    "anthropic": b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}\n\n',
}


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, str]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(SCRIPTS[request.match_info["name"]])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/{name}/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield {"minimax": base + "/minimax", "openrouter": base + "/openrouter", "anthropic": base + "/anthropic"}
    await runner.cleanup()


def bound(urls: dict[str, str], clock: RecordingClock, order: tuple[str, ...]) -> list[BoundProvider]:
    translators = {"minimax": MiniMaxChat(), "openrouter": OpenRouterChat(), "anthropic": AnthropicMessages()}
    return [BoundProvider(translator=translators[n], endpoint=ChainEndpoint(base_url=urls[n], api_key="k"),
                          breaker=CircuitBreaker(n, clock=clock, name=f"{n}_reasoning")) for n in order]


async def test_in_band_errors_before_the_first_event_fall_back(servers: dict[str, str]) -> None:
    clock, exchange = RecordingClock(), AiohttpExchange()
    runner = ChainRunner(exchange=exchange, clock=clock, policy=ChainPolicy())
    try:
        outcome = await runner.run(REASONING, OPTIONS, bound(servers, clock, ("minimax", "anthropic", "openrouter")),
                                   request_id="s1", stream=True)
        # MiniMax's 1002 is a rate limit (no retry); Anthropic's overloaded_error a server error (two retries)
        assert [(a.provider, a.outcome, a.code) for a in outcome.attempts] == [
            ("minimax", "rate_limit", "RSN-001"), ("anthropic", "error", "server"), ("anthropic", "error", "server"),
            ("anthropic", "error", "server"), ("openrouter", "success", None)]
        assert isinstance(outcome.result, ChainStream)
        got: list[ChatDelta] = []
        with pytest.raises(ProviderUnavailable):  # OpenRouter's error after its first token: no fallback
            async for event in outcome.result.events():
                got.append(event)
        assert got == [ChatDelta(text="4")]
    finally:
        await exchange.close()
