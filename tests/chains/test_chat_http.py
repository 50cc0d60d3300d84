"""The reasoning and vision chains end to end: the official openai SDK (sync, async, streaming, vision parts)
and plain HTTP against the gateway, the gateway against the MiniMax, OpenRouter, OpenAI and Anthropic fakes,
every hop a real socket on 127.0.0.1. Retries are counted on the fakes; backoff waits are recorded, not slept."""

from __future__ import annotations

import asyncio
import base64
import logging

import aiohttp
import openai
import pytest

from tests.chains.chat_harness import RED_PNG, ChatGateway, png

RED_URL = "data:image/png;base64," + base64.b64encode(RED_PNG).decode()


def sdk(gw: ChatGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="anything", base_url=gw.http + "/v1", max_retries=0)


async def ask(gw: ChatGateway, question: str = "What is 2+2?", **kwargs: object) -> tuple[object, dict[str, str]]:
    async with sdk(gw) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="reasoning", messages=[{"role": "user", "content": question}], **kwargs)
        return raw.parse(), dict(raw.headers)


def vision_messages(url: str = RED_URL, prompt: str = "What colour is this image?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": prompt},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "vg_event", None) == name]


async def test_reasoning_2_plus_2_is_4_from_minimax() -> None:
    async with ChatGateway() as gw:
        completion, headers = await ask(gw)
        assert completion.choices[0].message.content == "4"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.model == "minimax-m2.1-lightning"
        assert headers["x-voice-gateway-provider"] == "minimax"
        assert headers["x-voice-gateway-fallback-used"] == "false"
        assert (gw.hits("minimax"), gw.hits("openrouter"), gw.hits("anthropic")) == (1, 0, 0)
        extra = completion.model_extra["voice_gateway"]
        assert extra["provider"] == "minimax" and extra["chain"] == "reasoning"
        assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens == 1


async def test_counting_story_through_sync_sdk_and_native_endpoint() -> None:
    async with ChatGateway() as gw:
        def sync_call() -> str:
            with openai.OpenAI(api_key="x", base_url=gw.http + "/v1", max_retries=0) as client:
                done = client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": "I have 5 apples, give 2 away. How many?"}])
                return done.choices[0].message.content or ""

        assert await asyncio.to_thread(sync_call) == "3"
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/api/v1/reason", json={"prompt": "What is (3 + 4) * 2?",
                                                                    "context": "Answer with a number."}) as res:
                body = await res.json()
        assert res.status == 200 and body["text"] == "14" and body["provider"] == "minimax"
        assert set(body) >= {"text", "provider", "model", "fallback_used", "attempts", "usage", "cost_usd",
                             "request_id"}
        assert body["request_id"].startswith("rsn_") and body["usage"]["output_tokens"] == 1


async def test_minimax_timeout_is_rsn001_and_openrouter_answers() -> None:
    async with ChatGateway(faults={"minimax": "*:stall"}, attempt_timeout_s=0.3) as gw:
        completion, headers = await ask(gw)
        assert completion.choices[0].message.content == "4"
        assert headers["x-voice-gateway-provider"] == "openrouter"
        assert headers["x-voice-gateway-fallback-used"] == "true"
        attempts = completion.model_extra["voice_gateway"]["attempts"]
        # one timeout retry (with twice the timeout), then the next provider
        assert [(a["provider"], a["outcome"], a["code"], a["retry"]) for a in attempts] == [
            ("minimax", "timeout", "RSN-001", 0), ("minimax", "timeout", "RSN-001", 1),
            ("openrouter", "success", None, 0)]
        assert gw.hits("minimax") == 2
        sent = gw.fakes["openrouter"].requests[-1]
        assert sent.headers["x-title"] == "voice-gateway" and "http-referer" in sent.headers
        assert sent.fields["model"] == "minimax/minimax-m2.1-lightning"


async def test_minimax_http_200_error_is_classified_by_base_resp() -> None:
    # MiniMax answers a rate limit as HTTP 200 with base_resp.status_code 1002: no retry, fall back at once
    async with ChatGateway(faults={"minimax": "*:status,status=429"}) as gw:
        completion, _ = await ask(gw)
        attempts = completion.model_extra["voice_gateway"]["attempts"]
        assert [(a["provider"], a["outcome"], a["status"], a["error_class"]) for a in attempts[:1]] == [
            ("minimax", "rate_limit", 200, "rate_limit")]
        assert gw.hits("minimax") == 1 and completion.choices[0].message.content == "4"


async def test_minimax_and_openrouter_down_haiku_answers_with_a_critical_log(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with ChatGateway(faults={"minimax": "*:status,status=500", "openrouter": "*:status,status=503"}) as gw:
        completion, headers = await ask(gw)
        assert completion.choices[0].message.content == "4"
        assert headers["x-voice-gateway-provider"] == "anthropic"
        assert completion.model == "claude-3-haiku-20240307"
        assert (gw.hits("minimax"), gw.hits("openrouter"), gw.hits("anthropic")) == (3, 3, 1)  # 2 retries each
        codes = [a["code"] for a in completion.model_extra["voice_gateway"]["attempts"]]
        assert codes == ["RSN-001"] * 3 + ["RSN-002"] * 3 + [None]
        assert gw.clock.sleeps == [0.5, 1.0, 0.5, 1.0]  # 5xx backoff b, 2b per provider, recorded not slept
        critical = events(caplog, "chain.last_resort")
        assert len(critical) == 1 and critical[0].levelno == logging.CRITICAL
        assert critical[0].vg_fields["path"] == "minimax→openrouter→anthropic"
        sent = gw.fakes["anthropic"].requests[-1]
        assert sent.headers["anthropic-version"] == "2023-06-01"


async def test_all_down_is_502_rsn003_with_every_attempt() -> None:
    faults = {"minimax": "*:status,status=401", "openrouter": "*:status,status=429",
              "anthropic": "*:status,status=529"}
    async with ChatGateway(faults=faults) as gw:
        with pytest.raises(openai.APIStatusError) as info:
            await ask(gw)
        assert info.value.status_code == 502
        body = info.value.response.json()
        assert body["error"]["code"] == "RSN-003"
        assert [(a["provider"], a["outcome"]) for a in body["attempts"]] == [
            ("minimax", "auth"), ("openrouter", "rate_limit"), ("anthropic", "error"), ("anthropic", "error"),
            ("anthropic", "error")]
        assert gw.chains.breaker("minimax_reasoning").snapshot()["state"] == "OPEN"  # auth: forced open


async def test_red_png_simple_minimax_says_red_complex_starts_at_qwen() -> None:
    async with ChatGateway() as gw:
        async with sdk(gw) as client:
            simple = await client.chat.completions.create(model="auto", messages=vision_messages(),
                                                          extra_body={"complexity": "simple"})
            assert simple.model_extra["voice_gateway"]["provider"] == "minimax"
            assert simple.model == "minimax-m2.1"
            assert "red" in simple.choices[0].message.content and "8×8" in simple.choices[0].message.content
            complex_ = await client.chat.completions.create(model="auto", messages=vision_messages(),
                                                            extra_body={"complexity": "complex"})
        assert complex_.model_extra["voice_gateway"]["provider"] == "openrouter"
        assert [a["provider"] for a in complex_.model_extra["voice_gateway"]["attempts"]] == ["openrouter"]
        assert complex_.model == "qwen3-vision-30b" and "red" in complex_.choices[0].message.content
        assert (gw.hits("minimax"), gw.hits("openrouter")) == (1, 1)


async def test_vision_falls_back_to_gpt4v_with_detail_and_native_multipart() -> None:
    blue = png(3, 5, (0, 0, 255))
    async with ChatGateway(faults={"minimax": "*:status,status=400", "openrouter": "*:status,status=503"}) as gw:
        form = aiohttp.FormData()
        form.add_field("image", blue, filename="blue.png", content_type="image/png")
        form.add_field("prompt", "Describe it")
        form.add_field("complexity", "complex")
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/api/v1/vision/analyze", data=form) as res:
                body = await res.json()
        assert res.status == 200, body
        assert body["provider"] == "openai" and body["model"] == "gpt-4o"
        assert body["text"] == "A PNG image, 3×5 pixels, mostly blue."
        assert [a["code"] for a in body["attempts"]] == ["VIS-002"] * 3 + [None]
        assert gw.fakes["openai"].requests[-1].fields["model"] == "gpt-4o"


async def test_streaming_falls_back_before_the_first_chunk() -> None:
    async with ChatGateway(faults={"minimax": "*:status,status=503"}) as gw:
        async with sdk(gw) as client:
            stream = await client.chat.completions.create(
                model="reasoning", messages=[{"role": "user", "content": "What is 12*12?"}], stream=True,
                stream_options={"include_usage": True})
            chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "144"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        finish = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
        assert finish.model_extra["voice_gateway"]["provider"] == "openrouter"
        last = chunks[-1]
        assert last.usage is not None and last.usage.completion_tokens == 1
        assert last.model_extra["voice_gateway"]["provider"] == "openrouter"
        assert last.model_extra["voice_gateway"]["fallback_used"] is True
        assert last.model_extra["voice_gateway"]["cost_usd"] > 0
        assert gw.fakes["openrouter"].requests[-1].fields["stream"] == "true"


async def test_streaming_vision_and_anthropic_streams_through_the_sync_sdk() -> None:
    async with ChatGateway(faults={"minimax": "*:status,status=500", "openrouter": "*:status,status=500"}) as gw:
        def sync_stream() -> str:
            with openai.OpenAI(api_key="x", base_url=gw.http + "/v1", max_retries=0) as client:
                out = client.chat.completions.create(
                    model="reasoning", messages=[{"role": "user", "content": "What is 6 * 7?"}], stream=True)
                # the usual loop of an app that did not ask for usage: every chunk has a choice
                return "".join(c.choices[0].delta.content or "" for c in out)

        assert await asyncio.to_thread(sync_stream) == "42"
        assert gw.fakes["anthropic"].requests[-1].fields["stream"] == "true"
        async with sdk(gw) as client:
            stream = await client.chat.completions.create(model="vision", messages=vision_messages(), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "A PNG image, 8×8 pixels, mostly red."


async def test_low_quality_answers_are_billed_and_move_on() -> None:
    async with ChatGateway() as gw:
        completion, headers = await ask(gw, "What is 2+2? [[confidence=0.6]]", extra_body={"complexity": "complex"})
        extra = completion.model_extra["voice_gateway"]
        # MiniMax and OpenRouter report 0.6 < 0.85 (complex): low_quality; Haiku reports none
        assert [(a["provider"], a["outcome"]) for a in extra["attempts"]] == [
            ("minimax", "low_quality"), ("openrouter", "low_quality"), ("anthropic", "success")]
        assert extra["provider"] == "anthropic"
        lines = gw.ledger.report()["today"]["chains"]["reasoning"]["providers"]
        assert set(lines) == {"minimax", "openrouter", "anthropic"}  # all three billed
        assert extra["cost_usd"] == pytest.approx(sum(v["cost_usd"] for v in lines.values()), abs=1e-6)
        simple, _ = await ask(gw, "What is 2+2? [[confidence=0.6]]", extra_body={"complexity": "simple"})
        assert simple.model_extra["voice_gateway"]["provider"] == "minimax"  # 0.6 >= 0.5


async def test_models_lists_the_routes_and_bad_requests_have_codes() -> None:
    async with ChatGateway() as gw:
        async with sdk(gw) as client:
            models = await client.models.list()
            assert [m.id for m in models.data] == ["reasoning", "auto", "vision"]
            assert models.data[2].model_extra["providers"] == ["minimax", "openrouter", "openai"]
            assert (await client.models.retrieve("reasoning")).model_extra["chain"] == "reasoning"
            with pytest.raises(openai.NotFoundError):
                await client.models.retrieve("gpt-4o")
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(
                    model="auto", messages=vision_messages("data:image/png;base64,AAAA"))
            assert info.value.body["code"] == "unsupported_image"
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "x"}],
                                                     extra_body={"complexity": "extreme"})
            assert info.value.body["code"] == "bad_option"
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/v1/chat/completions", data=b"{", headers={
                    "Content-Type": "application/json"}) as res:
                assert res.status == 400 and (await res.json())["error"]["code"] == "bad_json"
            async with http.post(gw.http + "/api/v1/vision/analyze", json={"prompt": "x"}) as res:
                assert res.status == 400 and (await res.json())["error"]["code"] == "missing_image"
        assert sum(gw.hits(p) for p in ("minimax", "openrouter", "openai", "anthropic")) == 0


async def test_chat_endpoints_take_the_client_auth_of_the_transcription_endpoints() -> None:
    async with ChatGateway(settings_overrides={"client_tokens": ("tok-chat-123",)}) as gw:
        async with openai.AsyncOpenAI(api_key="wrong", base_url=gw.http + "/v1", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(model="reasoning", messages=[{"role": "user", "content": "1+1"}])
            with pytest.raises(openai.AuthenticationError):
                await client.models.list()
        async with openai.AsyncOpenAI(api_key="tok-chat-123", base_url=gw.http + "/v1", max_retries=0) as client:
            done = await client.chat.completions.create(model="reasoning",
                                                        messages=[{"role": "user", "content": "What is 1+1?"}])
            assert done.choices[0].message.content == "2"
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/api/v1/reason", json={"prompt": "What is 1+1?"}) as res:
                assert res.status == 401
        assert gw.hits("minimax") == 1


async def test_limits_and_hygiene_413_before_any_provider_and_no_prompt_in_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "zebra-7731-secret-prompt"
    async with ChatGateway() as gw:
        async with aiohttp.ClientSession() as http:
            big = b'{"model": "reasoning", "messages": [{"role": "user", "content": "' + b"x" * (26 * 1024 * 1024) + b'"}]}'
            async with http.post(gw.http + "/v1/chat/completions", data=big,
                                 headers={"Content-Type": "application/json"}) as res:
                assert res.status == 413 and (await res.json())["error"]["code"] == "payload_too_large"
            async with http.post(gw.http + "/api/v1/reason", json={"prompt": f"What is 2+2? {marker}",
                                                                    "context": marker}) as res:
                assert res.status == 200 and (await res.json())["text"] == "4"
        assert gw.hits("minimax") == 1 and gw.hits("openrouter") == 0
    assert not [r for r in caplog.records if marker in r.getMessage() or marker in str(getattr(r, "vg_fields", ""))]
