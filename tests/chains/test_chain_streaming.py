"""Streaming chains (SSE), the seam the chat chains build on: the sans-I/O SSE decoder, and the runner
committing at a 2xx status line — failures before it fall back as usual, a break-off after it reaches
the consumer as ProviderUnavailable with no fallback, and the answer is billed from its final usage."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.breaker import CircuitBreaker
from gateway.chains.http import AiohttpExchange
from gateway.chains.outcome import BoundProvider, CostRecord
from gateway.chains.policy import ChainPolicy
from gateway.chains.runner import ChainRunner, ChainStream
from gateway.errors import ProviderUnavailable
from providers.chains.base import ChainEndpoint, ChainProvider, HttpRequest, HttpResponse, Price, Usage
from providers.chains.spec import ChainCodes, ChainSpec
from providers.chains.sse import SseDecoder, SseEvent
from tests.chains.harness import RecordingClock

STREAM = (b": keep-alive\r\n\r\nevent: delta\r\ndata: {\"text\": \"1\"}\r\n\r\ndata: {\"text\": \"2\"}\n\n"
          b"id: 7\ndata: {\"text\":\ndata:  \"3\"}\n\ndata: {\"usage\": {\"input_tokens\": 10, \"output_tokens\": 3}}\n\n"
          b"data: [DONE]\n\n")
EXPECTED = [SseEvent("delta", '{"text": "1"}'), SseEvent("message", '{"text": "2"}'),
            SseEvent("message", '{"text":\n "3"}', "7"),
            SseEvent("message", '{"usage": {"input_tokens": 10, "output_tokens": 3}}', "7"),
            SseEvent("message", "[DONE]", "7")]


def test_sse_decoder_whole_stream() -> None:
    decoder = SseDecoder()
    assert decoder.feed(STREAM) + decoder.finish() == EXPECTED


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_sse_decoder_chunk_boundaries_anywhere(cuts: list[int]) -> None:
    decoder, out, last = SseDecoder(), [], 0
    for cut in sorted(cuts):
        out += decoder.feed(STREAM[last:cut])
        last = cut
    out += decoder.feed(STREAM[last:]) + decoder.finish()
    assert out == EXPECTED


def test_sse_decoder_drops_an_unterminated_event_and_keeps_utf8_across_chunks() -> None:
    decoder = SseDecoder()
    snowman = "data: ☃\n\n".encode()
    assert decoder.feed(snowman[:7]) == [] and decoder.feed(snowman[7:]) == [SseEvent("message", "☃")]
    assert decoder.feed(b"data: cut off") == [] and decoder.finish() == []


# -- a streaming chain over real sockets ----------------------------------------------------------------
class TokenStream:
    """The test translator's decoder: SSE `data` JSON → text deltas; usage from the final event."""

    def __init__(self) -> None:
        self._sse = SseDecoder()
        self.usage = Usage()

    def _events(self, events: list[SseEvent]) -> list[str]:
        out = []
        for e in events:
            if e.data == "[DONE]":
                continue
            data = orjson.loads(e.data)
            if "usage" in data:
                self.usage = Usage(input_tokens=data["usage"]["input_tokens"],
                                   output_tokens=data["usage"]["output_tokens"])
            else:
                out.append(data["text"])
        return out

    def feed(self, data: bytes) -> list[str]:
        return self._events(self._sse.feed(data))

    def finish(self) -> list[str]:
        return self._events(self._sse.finish())


class StreamingTranslator(ChainProvider[str, Any]):
    streams = True
    price = Price(per_million_input_tokens_usd=1000.0, per_million_output_tokens_usd=2000.0)

    def __init__(self, name: str) -> None:
        super().__init__(model="m-1")
        self.name = name  # type: ignore[misc]

    def build(self, options: str, endpoint: ChainEndpoint) -> HttpRequest:
        return HttpRequest(method="POST", url=f"{endpoint.base_url}/{self.name}", body=options.encode())

    def parse(self, response: HttpResponse) -> Any:
        from providers.chains.base import AttemptError

        return AttemptError(error_class=self.classify(response), status=response.status)

    def stream_decoder(self) -> TokenStream:
        return TokenStream()

    def price_for(self, model: str) -> Price:
        return self.price


SPEC = ChainSpec(name="teststream", endpoint="chat", order=("openai", "groq"), codes=ChainCodes(all_failed="TST-003"),
                 validate=lambda options: None)


class SseServer:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {"openai": 0, "groq": 0}
        self.failing_status = 503
        self.break_stream: int | None = None  # abort the connection after this many pieces

    async def failing(self, request: web.Request) -> web.StreamResponse:
        self.hits["openai"] += 1
        return web.json_response({"error": {"message": "busy"}}, status=self.failing_status)

    async def streaming(self, request: web.Request) -> web.StreamResponse:
        self.hits["groq"] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n, piece in enumerate((STREAM[:40], STREAM[40:90], STREAM[90:]), 1):
            await response.write(piece)
            if self.break_stream == n:
                assert request.transport is not None
                request.transport.abort()
                return response
            await asyncio.sleep(0)
        await response.write_eof()
        return response


@pytest.fixture
async def sse_server():
    server = SseServer()
    app = web.Application()
    app.router.add_post("/openai", server.failing)
    app.router.add_post("/groq", server.streaming)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"  # type: ignore[attr-defined]
    yield server
    await runner.cleanup()


def bound(server: SseServer, clock: RecordingClock) -> list[BoundProvider]:
    ep = ChainEndpoint(base_url=server.url, api_key="k")  # type: ignore[attr-defined]
    return [BoundProvider(translator=StreamingTranslator(n), endpoint=ep,
                          breaker=CircuitBreaker(n, clock=clock, name=f"{n}_teststream")) for n in ("openai", "groq")]


async def test_stream_falls_back_before_the_commit_and_bills_at_the_end(sse_server: SseServer) -> None:
    clock, exchange, costs = RecordingClock(), AiohttpExchange(), []
    runner = ChainRunner(exchange=exchange, clock=clock, policy=ChainPolicy(), on_cost=costs.append)
    providers = bound(sse_server, clock)
    try:
        outcome = await runner.run(SPEC, "hello", providers, request_id="r1", stream=True)
        assert outcome.provider == "groq" and isinstance(outcome.result, ChainStream)
        assert sse_server.hits == {"openai": 3, "groq": 1} and clock.sleeps == [0.5, 1.0]
        assert costs == []  # nothing billed before the stream ends
        assert [e async for e in outcome.result.events()] == ["1", "2", "3"]
        assert costs == [CostRecord(chain="teststream", provider="groq", model="m-1",
                                    usage=Usage(input_tokens=10, output_tokens=3), cost_usd=0.016, request_id="r1")]
        assert outcome.cost_usd == pytest.approx(0.016)
        assert providers[1].breaker.snapshot()["state"] == "CLOSED"
    finally:
        await exchange.close()


async def test_a_break_off_after_the_commit_reaches_the_consumer_without_fallback(sse_server: SseServer) -> None:
    sse_server.break_stream = 2  # the first 90 bytes hold two whole events: the commit point has passed
    clock, exchange = RecordingClock(), AiohttpExchange()
    runner = ChainRunner(exchange=exchange, clock=clock, policy=ChainPolicy())
    providers = bound(sse_server, clock)
    providers.reverse()  # the streaming one first: it commits and then breaks off
    try:
        outcome = await runner.run(SPEC, "hello", providers, request_id="r2", stream=True)
        assert outcome.provider == "groq"
        got: list[str] = []
        with pytest.raises(ProviderUnavailable):
            async for event in outcome.result.events():
                got.append(event)
        assert got == ["1", "2"]
        assert sse_server.hits == {"openai": 0, "groq": 1}
    finally:
        await exchange.close()


async def test_a_break_off_before_the_first_event_falls_back(sse_server: SseServer) -> None:
    # the commit point is the first event, not the status line: nothing has reached the caller yet
    sse_server.break_stream, sse_server.failing_status = 1, 200
    clock, exchange = RecordingClock(), AiohttpExchange()
    runner = ChainRunner(exchange=exchange, clock=clock, policy=ChainPolicy())
    providers = bound(sse_server, clock)
    providers.reverse()
    try:
        outcome = await runner.run(SPEC, "hello", providers, request_id="r3", stream=True)
        assert [(a.provider, a.outcome, a.error_class) for a in outcome.attempts][0] == ("groq", "error", "network")
        assert sse_server.hits["groq"] == 1 and sse_server.hits["openai"] >= 1
    finally:
        await exchange.close()
