"""Fidelity of the REST fakes: the official SDKs (deepgram-sdk, groq, openai) call them, parse every
answer into their own models, and raise their own exception classes on error answers."""

from __future__ import annotations

import groq
import httpx
import openai
import pytest
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.errors import BadRequestError as DeepgramBadRequest
from deepgram.types.listen_v1response import ListenV1Response

from providers.fakes.deepgram_rest import FakeDeepgramRest
from providers.fakes.rest_common import HttpFaultScript
from providers.fakes.whisper_rest import FakeGroq, FakeOpenAIRest
from tests.chains.harness import CHAIN_KEYS, DTMF_WAV, FIXTURES

KEY_DG, KEY_GROQ, KEY_OPENAI = CHAIN_KEYS["deepgram"], CHAIN_KEYS["groq"], CHAIN_KEYS["openai"]


def deepgram_client(url: str, key: str = KEY_DG) -> AsyncDeepgramClient:
    ws = url.replace("http", "ws", 1)
    env = DeepgramClientEnvironment(base=url, production=ws, agent=ws, agent_rest=url)
    return AsyncDeepgramClient(api_key=key, environment=env, timeout=10)


NO_RETRY = {"max_retries": 0}


async def test_deepgram_sdk_transcribe_file_parses_the_fake_result() -> None:
    async with FakeDeepgramRest(api_key=KEY_DG) as fake:
        dg = deepgram_client(fake.url)
        res = await dg.listen.v1.media.transcribe_file(request=DTMF_WAV, model="nova-2", punctuate=True,
                                                       diarize=True, utterances=True, request_options=NO_RETRY)
        assert isinstance(res, ListenV1Response)
        alt = res.results.channels[0].alternatives[0]
        assert alt.transcript == "159#"
        assert [w.word for w in alt.words] == ["159#"]
        assert res.metadata.duration == pytest.approx(0.9, abs=0.01)
        assert res.results.utterances and res.results.utterances[0].transcript == "159#"
        assert fake.requests[0].query["model"] == "nova-2"
        assert "authorization" not in fake.requests[0].headers  # never recorded
        projects = await dg.manage.v1.projects.list(request_options=NO_RETRY)
        assert len(projects.projects) == 1


@pytest.mark.parametrize(("status", "retry_after"), [(429, None), (429, 3), (401, None), (402, None),
                                                     (403, None), (500, None), (503, None), (504, None)])
async def test_deepgram_sdk_raises_api_error_with_the_status(status: int, retry_after: int | None) -> None:
    spec = f"1:status,status={status}" + (f",retry_after={retry_after}" if retry_after else "")
    async with FakeDeepgramRest(api_key=KEY_DG, faults=HttpFaultScript.parse(spec)) as fake:
        with pytest.raises(ApiError) as info:
            await deepgram_client(fake.url).listen.v1.media.transcribe_file(request=DTMF_WAV,
                                                                            request_options=NO_RETRY)
        assert info.value.status_code == status
        assert isinstance(info.value.body, dict) and "err_code" in info.value.body
        assert info.value.headers.get("retry-after") == (str(retry_after) if retry_after else None)


async def test_deepgram_sdk_bad_audio_and_wrong_key() -> None:
    async with FakeDeepgramRest(api_key=KEY_DG) as fake:
        with pytest.raises(DeepgramBadRequest) as info:
            await deepgram_client(fake.url).listen.v1.media.transcribe_file(request=b"not audio at all",
                                                                            request_options=NO_RETRY)
        assert "corrupt or unsupported data" in info.value.body["err_msg"]
        with pytest.raises(ApiError) as info:
            await deepgram_client(fake.url, key="wrong").listen.v1.media.transcribe_file(
                request=DTMF_WAV, request_options=NO_RETRY)
        assert info.value.status_code == 401 and info.value.body["err_code"] == "INVALID_AUTH"


async def test_groq_sdk_every_response_format_parses() -> None:
    async with FakeGroq(api_key=KEY_GROQ) as fake:
        client = groq.AsyncGroq(api_key=KEY_GROQ, base_url=fake.url, max_retries=0)
        plain = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-large-v3")
        assert plain.text == "159#"
        assert plain.model_extra and "x_groq" in plain.model_extra
        verbose = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-large-v3",
                                                           response_format="verbose_json")
        assert verbose.text == "159#" and verbose.model_extra["duration"] == pytest.approx(0.9, abs=0.01)
        text = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-large-v3-turbo",
                                                        response_format="text")
        assert str(text).strip() == "159#"
        models = await client.models.list()
        assert {m.id for m in models.data} == {"whisper-large-v3", "whisper-large-v3-turbo"}
        assert fake.requests[0].fields["model"] == "whisper-large-v3"


GROQ_ERRORS = [(401, groq.AuthenticationError), (403, groq.PermissionDeniedError), (422, groq.UnprocessableEntityError),
               (429, groq.RateLimitError), (500, groq.InternalServerError), (503, groq.InternalServerError),
               (413, groq.APIStatusError)]


@pytest.mark.parametrize(("status", "exc"), GROQ_ERRORS)
async def test_groq_sdk_raises_its_own_classes(status: int, exc: type[Exception]) -> None:
    async with FakeGroq(api_key=KEY_GROQ, faults=HttpFaultScript.parse(f"1:status,status={status},retry_after=2")) as fake:
        client = groq.AsyncGroq(api_key=KEY_GROQ, base_url=fake.url, max_retries=0)
        with pytest.raises(exc) as info:
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-large-v3")
        assert info.value.status_code == status
        assert info.value.response.headers["retry-after"] == "2"


async def test_groq_fake_refuses_an_upload_over_25_mb_with_413() -> None:
    async with FakeGroq(api_key=KEY_GROQ) as fake:
        client = groq.AsyncGroq(api_key=KEY_GROQ, base_url=fake.url, max_retries=0)
        with pytest.raises(groq.APIStatusError) as info:
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV + bytes(25_000_000)),
                                                     model="whisper-large-v3")
        assert info.value.status_code == 413
        assert info.value.body["error"]["code"] == "request_too_large"


async def test_openai_sdk_every_response_format_and_usage() -> None:
    async with FakeOpenAIRest(api_key=KEY_OPENAI) as fake:
        client = openai.AsyncOpenAI(api_key=KEY_OPENAI, base_url=fake.url + "/v1", max_retries=0)
        res = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")
        assert res.text == "159#" and res.usage is not None and res.usage.type == "duration"
        verbose = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1",
                                                           response_format="verbose_json",
                                                           timestamp_granularities=["word", "segment"])
        assert verbose.duration == pytest.approx(0.9, abs=0.01) and verbose.words[0].word == "159#"
        assert verbose.segments and verbose.segments[0].text.strip() == "159#"
        srt = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1",
                                                       response_format="srt")
        assert "159#" in srt
        tokens = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="gpt-4o-transcribe")
        assert tokens.usage is not None and tokens.usage.type == "tokens" and tokens.usage.input_tokens > 0
        with pytest.raises(openai.BadRequestError):
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="gpt-4o-transcribe",
                                                     response_format="verbose_json")
        speech = await client.audio.transcriptions.create(file=("s.wav", (FIXTURES / "speech_16k.wav").read_bytes()),
                                                          model="whisper-1")
        assert speech.text == "speech"  # the dialect's placeholder for plain speech
        assert (await client.models.list()).data[0].id == "whisper-1"


OPENAI_ERRORS = [(401, openai.AuthenticationError), (403, openai.PermissionDeniedError),
                 (429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError),
                 (413, openai.APIStatusError), (422, openai.UnprocessableEntityError)]


@pytest.mark.parametrize(("status", "exc"), OPENAI_ERRORS)
async def test_openai_sdk_raises_its_own_classes(status: int, exc: type[Exception]) -> None:
    async with FakeOpenAIRest(api_key=KEY_OPENAI, faults=HttpFaultScript.parse(f"1:status,status={status}")) as fake:
        client = openai.AsyncOpenAI(api_key=KEY_OPENAI, base_url=fake.url + "/v1", max_retries=0)
        with pytest.raises(exc) as info:
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")
        assert info.value.status_code == status
        assert info.value.request_id  # x-request-id on every answer


async def test_openai_sdk_wrong_key_malformed_stall_and_reset() -> None:
    spec = "2:malformed;3:stall;4:reset"
    async with FakeOpenAIRest(api_key=KEY_OPENAI, faults=HttpFaultScript.parse(spec)) as fake:
        fake.stall_max_s = 5.0
        bad = openai.AsyncOpenAI(api_key="sk-wrong", base_url=fake.url + "/v1", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            await bad.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")
        assert info.value.code == "invalid_api_key"
        client = openai.AsyncOpenAI(api_key=KEY_OPENAI, base_url=fake.url + "/v1", max_retries=0, timeout=0.5)
        with pytest.raises(ValueError):  # the SDK's JSON decoding fails on the malformed body
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")
        with pytest.raises(openai.APITimeoutError):
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")
        with pytest.raises(openai.APIConnectionError):
            await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")
        assert [r.fault for r in fake.requests] == [None, "malformed", "stall", "reset"]
        await client.close()
        await bad.close()


async def test_delay_fault_and_fault_spec_errors() -> None:
    from gateway.errors import ConfigError

    for bad in ("1:status", "1:status,status=200", "x:delay", "1:nope", "0:reset", "1:delay,ms=abc"):
        with pytest.raises(ConfigError):
            HttpFaultScript.parse(bad)
    async with FakeGroq(api_key=KEY_GROQ, faults=HttpFaultScript.parse("*:delay,ms=50")) as fake:
        async with httpx.AsyncClient() as http:
            res = await http.get(fake.url + "/openai/v1/models", headers={"Authorization": f"Bearer {KEY_GROQ}"})
        assert res.status_code == 200 and res.elapsed.total_seconds() >= 0.05


async def test_deepgram_fake_answers_429_over_its_concurrency_cap() -> None:
    import asyncio

    async with FakeDeepgramRest(api_key=KEY_DG, max_concurrent=1,
                                faults=HttpFaultScript.parse("1:delay,ms=300")) as fake:
        dg = deepgram_client(fake.url)
        slow = asyncio.create_task(dg.listen.v1.media.transcribe_file(request=DTMF_WAV, request_options=NO_RETRY))
        while not fake.requests:  # noqa: ASYNC110 - the first request is in flight once recorded
            await asyncio.sleep(0.005)
        with pytest.raises(ApiError) as info:
            await dg.listen.v1.media.transcribe_file(request=DTMF_WAV, request_options=NO_RETRY)
        assert info.value.status_code == 429 and info.value.body["err_code"] == "TOO_MANY_REQUESTS"
        assert (await slow).results.channels[0].alternatives[0].transcript == "159#"
