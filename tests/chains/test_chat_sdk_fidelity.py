"""Fidelity of the chat fakes: the official openai SDK (chat, vision parts, streaming, sync and async) against
the OpenRouter and OpenAI fakes and the anthropic SDK (messages, streaming) against the Anthropic fake parse
every answer into their own models and raise their own exception classes on error answers. MiniMax (no SDK)
is checked over plain HTTP, including its errors as HTTP 200 with base_resp."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import anthropic
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from providers.fakes.anthropic_rest import FakeAnthropic
from providers.fakes.chat_rest import FakeMiniMax, FakeOpenAIWithChat, FakeOpenRouter
from providers.fakes.rest_common import HttpFaultScript
from tests.chains.chat_harness import KEYS, RED_PNG

RED_URL = "data:image/png;base64," + base64.b64encode(RED_PNG).decode()
VISION = [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                       {"type": "image_url", "image_url": {"url": RED_URL, "detail": "high"}}]}]


@pytest.mark.parametrize(("fake_class", "prefix", "model"), [(FakeOpenRouter, "/api/v1", "qwen3-vision-30b"),
                                                             (FakeOpenAIWithChat, "/v1", "gpt-4o")])
async def test_openai_sdk_chat_vision_and_streaming_against_the_fakes(fake_class: type, prefix: str,
                                                                      model: str) -> None:
    async with fake_class(api_key=KEYS["openrouter" if prefix == "/api/v1" else "openai"]) as fake:
        key = fake.api_key
        async with openai.AsyncOpenAI(api_key=key, base_url=fake.url + prefix, max_retries=0) as client:
            done = await client.chat.completions.create(model=model, messages=VISION)
            assert isinstance(done, ChatCompletion)
            assert done.choices[0].message.content == "A PNG image, 8×8 pixels, mostly red."
            assert done.usage is not None and done.usage.prompt_tokens == 6 + 85
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "What is 2+2?"}], stream=True,
                stream_options={"include_usage": True})
            chunks = [c async for c in stream]
            assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "4"
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 1
            cut = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "tell me a story about a dragon"}], max_tokens=2)
            assert cut.choices[0].finish_reason == "length"

        def sync_call() -> str:
            with openai.OpenAI(api_key=key, base_url=fake.url + prefix, max_retries=0) as client:
                return client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "5 apples, give 2 away"}]).choices[0].message.content

        assert await asyncio.to_thread(sync_call) == "3"


@pytest.mark.parametrize(("status", "error"), [(400, openai.BadRequestError), (401, openai.AuthenticationError),
                                               (403, openai.PermissionDeniedError), (429, openai.RateLimitError),
                                               (500, openai.InternalServerError), (503, openai.InternalServerError)])
async def test_openai_sdk_raises_its_own_errors_from_the_fakes(status: int, error: type) -> None:
    for fake_class, prefix in ((FakeOpenRouter, "/api/v1"), (FakeOpenAIWithChat, "/v1")):
        async with fake_class(api_key="k", faults=HttpFaultScript.parse(f"1:status,status={status}")) as fake:
            async with openai.AsyncOpenAI(api_key="k", base_url=fake.url + prefix, max_retries=0) as client:
                with pytest.raises(error) as info:
                    await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
                assert info.value.status_code == status


async def test_anthropic_sdk_messages_and_streaming_against_the_fake() -> None:
    async with FakeAnthropic(api_key=KEYS["anthropic"]) as fake:
        async with anthropic.AsyncAnthropic(api_key=KEYS["anthropic"], base_url=fake.url, max_retries=0) as client:
            message = await client.messages.create(model="claude-3-haiku-20240307", max_tokens=64,
                                                   system="Be brief.",
                                                   messages=[{"role": "user", "content": "What is 2+2?"}])
            assert isinstance(message, Message)
            assert message.content[0].text == "4" and message.stop_reason == "end_turn"
            assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 1)
            image = await client.messages.create(model="claude-3-haiku-20240307", max_tokens=64, messages=[
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": base64.b64encode(RED_PNG).decode()}},
                    {"type": "text", "text": "Describe"}]}])
            assert image.content[0].text == "A PNG image, 8×8 pixels, mostly red."
            async with client.messages.stream(model="claude-3-haiku-20240307", max_tokens=64,
                                              messages=[{"role": "user", "content": "What is 9*9?"}]) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            assert text == "81" and final.stop_reason == "end_turn" and final.usage.output_tokens == 1
            refused = await client.messages.create(model="claude-3-haiku-20240307", max_tokens=64,
                                                   messages=[{"role": "user", "content": "[[refuse]] x"}])
            assert refused.stop_reason == "refusal"
        assert "x-api-key" not in fake.requests[0].headers  # never recorded


@pytest.mark.parametrize(("status", "error"), [(400, anthropic.BadRequestError), (401, anthropic.AuthenticationError),
                                               (403, anthropic.PermissionDeniedError),
                                               (429, anthropic.RateLimitError),
                                               (500, anthropic.InternalServerError),
                                               (529, anthropic.InternalServerError)])
async def test_anthropic_sdk_raises_its_own_errors_from_the_fake(status: int, error: type) -> None:
    async with FakeAnthropic(api_key="k", faults=HttpFaultScript.parse(f"1:status,status={status}")) as fake:
        async with anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0) as client:
            with pytest.raises(error) as info:
                await client.messages.create(model="claude-3-haiku-20240307", max_tokens=8,
                                             messages=[{"role": "user", "content": "hi"}])
            assert info.value.status_code == status
            assert info.value.body["error"]["type"]  # Anthropic's typed error body


async def test_minimax_answers_openai_shape_and_errors_as_http_200_base_resp() -> None:
    async with FakeMiniMax(api_key=KEYS["minimax"], faults=HttpFaultScript.parse("2:status,status=429")) as fake:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEYS['minimax']}"}) as http:
            url = fake.url + "/v1/text/chatcompletion_v2"
            body = {"model": "minimax-m2.1-lightning", "messages": [{"role": "user", "content": "What is 2+2?"}]}
            async with http.post(url, json=body) as res:
                ok = await res.json()
            assert res.status == 200 and ok["choices"][0]["message"]["content"] == "4"
            assert ok["base_resp"] == {"status_code": 0, "status_msg": ""}
            async with http.post(url, json=body) as res:
                limited = await res.json()
            assert res.status == 200 and limited["base_resp"]["status_code"] == 1002
            async with http.post(url, json=body | {"stream": True}) as res:
                raw = (await res.read()).decode()
            assert res.headers["content-type"].startswith("text/event-stream")
            assert raw.rstrip().endswith("data: [DONE]") and '"base_resp"' in raw
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer wrong"}) as http:
            async with http.post(url, json=body) as res:
                denied = await res.json()
            assert res.status == 200 and denied["base_resp"]["status_code"] == 1004
