"""The chat translators and chain data, sans-I/O: what each provider is sent, how its answers and errors are
read (MiniMax's base_resp in a 200 included), the answer check (`low_quality`), validation before any
provider, and that no answer or stream, however malformed, makes a translator or decoder raise."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.chains.anthropic_messages import AnthropicMessages
from providers.chains.base import AttemptError, ChainEndpoint, ErrorClass, HttpResponse
from providers.chains.chat import (
    REASONING,
    VISION,
    BadChatRequest,
    ChatOptions,
    ChatResult,
    check_answer,
    image_size,
)
from providers.chains.openai_chat import (
    MiniMaxChat,
    MiniMaxVision,
    OpenAIVision,
    OpenRouterChat,
    OpenRouterVision,
)
from tests.chains.chat_harness import RED_PNG

EP = ChainEndpoint(base_url="http://p.example", api_key="k-1")
RED_URL = "data:image/png;base64," + base64.b64encode(RED_PNG).decode()
Q = ChatOptions(messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}))
V = ChatOptions(messages=({"role": "user", "content": [{"type": "text", "text": "colour?"},
                                                       {"type": "image_url", "image_url": {"url": RED_URL}}]},),
                complexity="complex", stream=True)


def test_requests_per_provider() -> None:
    mm = MiniMaxChat().build(Q, EP)
    assert mm.url == "http://p.example/v1/text/chatcompletion_v2" and ("Authorization", "Bearer k-1") in mm.headers
    assert orjson.loads(mm.body)["model"] == "minimax-m2.1-lightning"
    assert orjson.loads(MiniMaxVision().build(V, EP).body)["model"] == "minimax-m2.1"
    orr = OpenRouterChat().build(Q, EP)
    assert orr.url == "http://p.example/chat/completions"
    assert {"HTTP-Referer", "X-Title"} <= {k for k, _ in orr.headers}
    vision = orjson.loads(OpenRouterVision().build(V, EP).body)
    assert vision["model"] == "qwen3-vision-30b" and vision["stream"] is True
    assert vision["stream_options"] == {"include_usage": True}
    gpt = orjson.loads(OpenAIVision().build(V, EP).body)
    assert gpt["messages"][0]["content"][1]["image_url"] == {"detail": "high", "url": RED_URL}
    claude = AnthropicMessages().build(Q, EP)
    body = orjson.loads(claude.body)
    assert claude.url == "http://p.example/v1/messages"
    assert dict(claude.headers)["x-api-key"] == "k-1" and dict(claude.headers)["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Be brief." and body["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    image = orjson.loads(AnthropicMessages().build(V, EP).body)["messages"][0]["content"][1]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
    assert "k-1" not in repr(claude)


@pytest.mark.parametrize(("code", "cls"), [(1001, ErrorClass.TIMEOUT), (1002, ErrorClass.RATE_LIMIT),
                                           (1004, ErrorClass.AUTH), (1008, ErrorClass.AUTH), (1013, ErrorClass.SERVER),
                                           (2013, ErrorClass.BAD_INPUT), (1039, ErrorClass.RATE_LIMIT),
                                           (9999, ErrorClass.SERVER)])
def test_minimax_http_200_errors_are_classified_by_base_resp(code: int, cls: ErrorClass) -> None:
    body = orjson.dumps({"choices": None, "base_resp": {"status_code": code, "status_msg": "nope"}})
    out = MiniMaxChat().parse(HttpResponse(status=200, headers={}, body=body))
    assert isinstance(out, AttemptError) and out.error_class is cls and out.provider_code == str(code)


def test_answers_and_errors_are_read() -> None:
    ok = orjson.dumps({"model": "m", "choices": [{"message": {"content": "4"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    out = OpenRouterChat().parse(HttpResponse(status=200, headers={}, body=ok))
    assert isinstance(out, ChatResult) and (out.text, out.usage.input_tokens, out.usage.output_tokens) == ("4", 3, 1)
    err = OpenRouterChat().parse(HttpResponse(status=429, headers={"retry-after": "3"},
                                              body=b'{"error": {"code": 429, "message": "slow down"}}'))
    assert isinstance(err, AttemptError) and err.error_class is ErrorClass.RATE_LIMIT and err.retry_after_s == 3
    over = AnthropicMessages().parse(HttpResponse(status=529, headers={}, body=orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
    assert isinstance(over, AttemptError) and over.error_class is ErrorClass.SERVER
    assert over.provider_code == "overloaded_error"
    msg = AnthropicMessages().parse(HttpResponse(status=200, headers={}, body=orjson.dumps(
        {"model": "claude", "content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens",
         "usage": {"input_tokens": 5, "output_tokens": 9}})))
    assert isinstance(msg, ChatResult) and msg.finish_reason == "length" and msg.usage.output_tokens == 9


def test_low_quality_checks() -> None:
    def result(**kw: object) -> ChatResult:
        return ChatResult(**{"text": "4", "model": "m", **kw})  # type: ignore[arg-type]

    assert check_answer(Q, result()) is None
    assert check_answer(Q, result(text="  ")) == "empty answer"
    assert check_answer(Q, result(finish_reason="length")) == "answer cut off by the token limit"
    assert check_answer(Q, result(refusal=True)) == "the model refused"
    assert check_answer(Q, result(text="I can't help with that.")) == "the model refused"
    assert check_answer(Q, result(confidence=0.6)) == "confidence 0.60 under 0.70 for standard"
    assert check_answer(ChatOptions(messages=Q.messages, complexity="simple"), result(confidence=0.6)) is None
    assert REASONING.codes.for_attempt("minimax", ErrorClass.TIMEOUT) == "RSN-001"
    assert REASONING.codes.for_attempt("openrouter", ErrorClass.SERVER) == "RSN-002"
    assert REASONING.codes.for_attempt("anthropic", ErrorClass.SERVER) == "server"
    assert (VISION.codes.for_attempt("minimax", ErrorClass.BAD_INPUT), VISION.codes.all_failed) == ("VIS-001", "VIS-003")
    assert VISION.skip_when["complex"] == ("minimax",)


@pytest.mark.parametrize(("options", "code"), [
    (ChatOptions(messages=()), "bad_messages"),
    (ChatOptions(messages=({"role": "robot", "content": "x"},)), "bad_messages"),
    (ChatOptions(messages=({"role": "user", "content": "x"},), complexity="hard"), "bad_option"),
    (ChatOptions(messages=({"role": "user", "content": "x"},), max_tokens=0), "bad_option"),
    (ChatOptions(messages=({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}]},)),
     "bad_image"),
    (ChatOptions(messages=({"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(b"GIF8").decode()}}]},)), "unsupported_image"),
    (ChatOptions(messages=({"role": "user", "content": [{"type": "audio", "data": "x"}]},)), "bad_messages"),
    (ChatOptions(messages=({"role": "user", "content": ["hello"]},)), "bad_messages"),
    (ChatOptions(messages=({"role": "user", "content": []},)), "bad_messages"),
])
def test_validation_refuses_before_any_provider(options: ChatOptions, code: str) -> None:
    with pytest.raises(BadChatRequest) as info:
        REASONING.validate(options)
    assert info.value.code == code
    with pytest.raises(BadChatRequest) as info:
        VISION.validate(ChatOptions(messages=({"role": "user", "content": "no image"},)))
    assert info.value.code == "missing_image"


def test_image_size_from_headers() -> None:
    assert image_size(RED_PNG) == (8, 8)
    assert image_size(b"GIF89a\x03\x00\x05\x00" + b"\x00" * 8) == (3, 5)


STATUSES = st.sampled_from([200, 200, 200, 400, 401, 402, 403, 408, 413, 429, 500, 503, 529, 302])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.text(max_size=12),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                           ["choices", "message", "content", "delta", "finish_reason", "usage", "prompt_tokens",
                            "completion_tokens", "base_resp", "status_code", "status_msg", "error", "code",
                            "type", "text", "stop_reason", "input_tokens", "output_tokens", "confidence",
                            "refusal"]), inner, max_size=5), max_leaves=16)
TRANSLATORS = (MiniMaxChat(), OpenRouterChat(), OpenAIVision(), AnthropicMessages())


@settings(max_examples=300, deadline=None)
@given(status=STATUSES, body=st.one_of(JSONISH.map(orjson.dumps), st.binary(max_size=48)))
def test_parse_never_raises(status: int, body: bytes) -> None:
    for t in TRANSLATORS:
        out = t.parse(HttpResponse(status=status, headers={}, body=body))
        assert isinstance(out, ChatResult | AttemptError)
        if isinstance(out, ChatResult):
            assert isinstance(out.text, str) and check_answer(Q, out) in (None, *(check_answer(Q, out),))


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.one_of(JSONISH.map(orjson.dumps), st.binary(max_size=24)), max_size=6),
       cut=st.integers(0, 200))
def test_stream_decoders_never_raise(events: list[bytes], cut: int) -> None:
    raw = b"".join(b"event: x\ndata: " + e.replace(b"\n", b" ") + b"\n\n" for e in events)
    for t in TRANSLATORS:
        decoder = t.stream_decoder()
        decoder.feed(raw[:cut])
        decoder.feed(raw[cut:])
        decoder.finish()
        assert decoder.usage.input_tokens is None or decoder.usage.input_tokens >= 0


STREAM_SHAPES = st.fixed_dictionaries({"type": st.sampled_from(["message_start", "content_block_delta", "message_delta",
                                                                "error", "x"])}, optional={
    "message": JSONISH, "delta": JSONISH, "usage": JSONISH, "error": JSONISH, "choices": JSONISH,
    "base_resp": JSONISH})


@settings(max_examples=300, deadline=None)
@given(events=st.lists(STREAM_SHAPES.map(orjson.dumps), max_size=5))
def test_stream_decoders_never_raise_on_typed_events(events: list[bytes]) -> None:
    raw = b"".join(b"data: " + e + b"\n\n" for e in events)
    for t in TRANSLATORS:
        decoder = t.stream_decoder()
        decoder.feed(raw)
        decoder.finish()
