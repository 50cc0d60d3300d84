"""The transcription chain end to end: the official openai SDK (and plain HTTP) against the gateway's
endpoints, the gateway against the REST fakes, every hop a real socket on 127.0.0.1.

Retries are counted on the fakes; backoff waits are read from the harness clock (recorded, not slept)."""

from __future__ import annotations

import logging
import struct

import aiohttp
import openai
import pytest

from gateway import metrics
from tests.chains.harness import CHAIN_KEYS, DTMF_WAV, ChainGateway
from tests.conftest import captured_log_lines


def sdk(gw: ChainGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="anything", base_url=gw.http + "/v1", max_retries=0)


async def transcribe_sdk(gw: ChainGateway, audio: bytes = DTMF_WAV, **kwargs: object) -> tuple[object, dict[str, str]]:
    async with sdk(gw) as client:
        raw = await client.audio.transcriptions.with_raw_response.create(
            file=("call.wav", audio, "audio/wav"), model="whisper-1", **kwargs)
        return raw.parse(), dict(raw.headers)


async def post(gw: ChainGateway, body: bytes, content_type: str = "audio/wav", path: str = "/api/v1/transcribe",
               **headers: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.http + path, data=body, headers={"Content-Type": content_type, **headers}) as res:
            return res.status, await res.json()


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "vg_event", None) == name]


async def test_all_up_deepgram_answers_through_the_openai_sdk() -> None:
    async with ChainGateway() as gw:
        result, headers = await transcribe_sdk(gw)
        assert result.text == "159#"
        assert headers["x-voice-gateway-provider"] == "deepgram"
        assert headers["x-voice-gateway-fallback-used"] == "false"
        assert float(headers["x-voice-gateway-cost-usd"]) > 0
        assert (gw.hits("deepgram"), gw.hits("groq"), gw.hits("openai")) == (1, 0, 0)
        assert gw.fakes["deepgram"].requests[0].query == {"model": "nova-2", "punctuate": "true", "language": "en"}


METRICS_AFTER_429 = {
    ("voice_gateway_chain_fallbacks_total", (("chain", "transcription"), ("from", "deepgram"), ("to", "groq"))): 1,
    ("voice_gateway_chain_requests_total", (("chain", "transcription"), ("provider", "deepgram"),
                                            ("outcome", "rate_limit"))): 1,
    ("voice_gateway_chain_requests_total", (("chain", "transcription"), ("provider", "groq"), ("outcome", "success"))): 1,
    ("voice_gateway_chain_runs_total", (("chain", "transcription"), ("result", "fallback"))): 1,
    ("ai_provider_requests_total", (("provider", "deepgram"), ("endpoint", "transcription"), ("status", "failure"))): 1,
    ("ai_provider_requests_total", (("provider", "groq"), ("endpoint", "transcription"), ("status", "success"))): 1,
    ("ai_provider_errors_total", (("provider", "deepgram"), ("error_type", "rate_limit"))): 1,
    ("voice_gateway_chain_latency_seconds_count", (("chain", "transcription"), ("provider", "groq"))): 1,
}


def metric_values() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: metrics.sample(key[0], dict(key[1])) or 0.0 for key in METRICS_AFTER_429}


async def test_deepgram_429_is_trx001_and_groq_answers_at_once() -> None:
    async with ChainGateway(faults={"deepgram": "*:status,status=429,retry_after=7"}) as gw:
        before = metric_values()
        cost_before = metrics.sample("voice_gateway_chain_cost_usd_total", {"chain": "transcription", "provider": "groq"})
        result, headers = await transcribe_sdk(gw)
        after = metric_values()
        assert {k: after[k] - before[k] for k in after} == METRICS_AFTER_429
        assert metrics.sample("voice_gateway_chain_cost_usd_total", {"chain": "transcription", "provider": "groq"}) \
            == pytest.approx(cost_before + float(headers["x-voice-gateway-cost-usd"]), abs=1e-6)
        assert result.text == "159#"
        assert headers["x-voice-gateway-provider"] == "groq" and headers["x-voice-gateway-fallback-used"] == "true"
        assert (gw.hits("deepgram"), gw.hits("groq"), gw.hits("openai")) == (1, 1, 0)
        assert gw.clock.sleeps == []  # Retry-After is honoured only on the last provider
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "groq" and body["fallback_used"] is True
        first = body["attempts"][0]
        assert (first["provider"], first["code"], first["status"], first["error_class"]) == \
            ("deepgram", "TRX-001", 429, "rate_limit")
        assert body["attempts"][1]["outcome"] == "success" and body["model"] == "whisper-large-v3"


async def test_deepgram_and_groq_down_openai_answers_with_a_critical_log(caplog: pytest.LogCaptureFixture) -> None:
    async with ChainGateway() as gw:
        await gw.fakes["deepgram"].stop()
        await gw.fakes["groq"].stop()
        result, headers = await transcribe_sdk(gw)
        assert result.text == "159#" and headers["x-voice-gateway-provider"] == "openai"
        critical = events(caplog, "chain.last_resort")
        assert len(critical) == 1 and critical[0].levelno == logging.CRITICAL
        assert critical[0].vg_fields["path"] == "deepgram→groq→openai"
        fallbacks = events(caplog, "chain.fallback")
        assert [(r.levelno, r.vg_fields["from"], r.vg_fields["to"], r.vg_fields["error_class"]) for r in fallbacks] == \
            [(logging.WARNING, "deepgram", "groq", "network"), (logging.WARNING, "groq", "openai", "network")]
        assert fallbacks[0].vg_fields["code"] == "TRX-002"


async def test_all_down_is_502_trx003_with_three_attempts(caplog: pytest.LogCaptureFixture) -> None:
    async with ChainGateway() as gw:
        for fake in gw.fakes.values():
            await fake.stop()
        failed = {"chain": "transcription", "result": "failed"}
        runs_before = metrics.sample("voice_gateway_chain_runs_total", failed) or 0.0
        # the SDK's own retries left at their default (2): `x-should-retry: false` stops them
        async with openai.AsyncOpenAI(api_key="anything", base_url=gw.http + "/v1") as client:
            with pytest.raises(openai.APIStatusError) as info:
                await client.audio.transcriptions.create(file=("call.wav", DTMF_WAV), model="whisper-1")
        assert metrics.sample("voice_gateway_chain_runs_total", failed) == runs_before + 1
        assert info.value.status_code == 502
        assert info.value.code == "TRX-003"
        body = info.value.response.json()
        assert [(a["provider"], a["error_class"]) for a in body["attempts"]] == \
            [("deepgram", "network"), ("groq", "network"), ("openai", "network")]
        assert all(a["latency_ms"] >= 0 and "code" in a for a in body["attempts"])
        assert info.value.response.headers["x-voice-gateway-provider"] == "none"
        failed = events(caplog, "chain.failed")
        assert len(failed) == 1 and failed[0].levelno == logging.ERROR and failed[0].vg_fields["code"] == "TRX-003"
        assert len(failed[0].vg_fields["attempts"]) == 3


async def test_5xx_gets_two_retries_with_backoff_then_falls_back() -> None:
    async with ChainGateway(faults={"deepgram": "*:status,status=500", "groq": "*:status,status=503"}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "openai"
        assert (gw.hits("deepgram"), gw.hits("groq"), gw.hits("openai")) == (3, 3, 1)
        assert gw.clock.sleeps == [0.5, 1.0, 0.5, 1.0]
        assert [a["code"] for a in body["attempts"][:3]] == ["TRX-002"] * 3
        assert [a["retry"] for a in body["attempts"]] == [0, 1, 2, 0, 1, 2, 0]


async def test_deepgram_504_processing_cap_is_not_retried() -> None:
    async with ChainGateway(faults={"deepgram": "*:status,status=504"}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "groq"
        assert gw.hits("deepgram") == 1 and body["attempts"][0]["error_class"] == "processing_cap"


async def test_timeout_gets_one_retry_with_a_longer_timeout() -> None:
    async with ChainGateway(faults={"deepgram": "*:stall"}, attempt_timeout_s=0.3) as gw:
        gw.fakes["deepgram"].stall_max_s = 5.0
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "groq"
        assert gw.hits("deepgram") == 2
        assert [a["message"] for a in body["attempts"][:2]] == ["no answer within 0.3s", "no answer within 0.6s"]
        assert [a["outcome"] for a in body["attempts"][:2]] == ["timeout", "timeout"]


async def test_rate_limit_on_the_last_provider_honours_retry_after_once() -> None:
    async with ChainGateway(chain=("groq",), faults={"groq": "1:status,status=429,retry_after=2"}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and gw.hits("groq") == 2 and gw.clock.sleeps == [2.0]
    async with ChainGateway(chain=("groq",), faults={"groq": "*:status,status=429"}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert status == 502 and body["error"]["code"] == "TRX-003" and gw.hits("groq") == 1


async def test_bad_input_answers_do_not_count_against_the_breaker() -> None:
    async with ChainGateway(faults={"deepgram": "*:status,status=422"}) as gw:
        for _ in range(6):
            status, body = await post(gw, DTMF_WAV)
            assert status == 200 and body["provider"] == "groq"
        assert gw.hits("deepgram") == 6
        assert gw.chains.breaker("deepgram_transcription").snapshot()["state"] == "CLOSED"
    async with ChainGateway(faults={n: "*:status,status=400" for n in ("deepgram", "groq", "openai")}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert status == 400 and body["error"]["code"] == "audio_rejected" and len(body["attempts"]) == 3


async def test_five_deepgram_5xx_requests_open_its_breaker_and_the_sixth_skips_it() -> None:
    labels = {"name": "deepgram_transcription", "provider": "deepgram", "status": "rejected"}
    rejected_before = metrics.sample("circuit_breaker_calls_total", labels) or 0.0
    async with ChainGateway(faults={"deepgram": "*:status,status=503"}) as gw:
        for n in range(5):
            status, body = await post(gw, DTMF_WAV)
            assert status == 200 and body["provider"] == "groq", n
        assert gw.hits("deepgram") == 15  # five requests, each 1 + 2 retries: one breaker call each
        assert gw.chains.breaker("deepgram_transcription").snapshot()["state"] == "OPEN"
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "groq"
        assert gw.hits("deepgram") == 15
        assert body["attempts"][0] == {**body["attempts"][0], "provider": "deepgram", "outcome": "rejected",
                                       "code": "circuit_open"}
        assert metrics.sample("circuit_breaker_calls_total", labels) == rejected_before + 1
        assert metrics.sample("circuit_breaker_state", {"name": "deepgram_transcription", "provider": "deepgram"}) == 2
        async with aiohttp.ClientSession() as http:
            async with http.get(gw.http + "/admin/circuits") as res:
                circuits = {c["name"]: c for c in (await res.json())["circuits"]}
            assert circuits["deepgram_transcription"]["state"] == "OPEN"
            assert circuits["groq_transcription"]["state"] == "CLOSED"
            assert circuits["deepgram_stt"]["state"] == "CLOSED"  # the live breaker is a different one
            async with http.post(gw.http + "/admin/circuits/deepgram_transcription/reset") as res:
                assert res.status == 200 and (await res.json())["circuit"]["state"] == "CLOSED"


async def test_auth_failure_forces_the_breaker_open_and_names_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    async with ChainGateway(keys={"groq": "gsk_wrong-key-0000"}, faults={"deepgram": "*:status,status=429"}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "openai"
        assert body["attempts"][1]["outcome"] == "auth" and gw.hits("groq") == 1
        snap = gw.chains.breaker("groq_transcription").snapshot()
        assert (snap["state"], snap["opened_reason"]) == ("OPEN", "auth")
        logs = events(caplog, "chain.auth_failed")
        assert logs[0].levelno == logging.ERROR and "GROQ_API_KEY" in logs[0].getMessage()
        status, body = await post(gw, DTMF_WAV)
        assert gw.hits("groq") == 1 and body["attempts"][1]["outcome"] == "rejected"
    joined = "\n".join(captured_log_lines())
    assert "gsk_wrong-key-0000" not in joined
    assert not any(key in joined for key in CHAIN_KEYS.values())


def junk_padded_wav(total_bytes: int) -> bytes:
    """The DTMF fixture plus a RIFF `JUNK` chunk: a valid WAV of `total_bytes` whose audio is 0.9 s."""
    pad = total_bytes - len(DTMF_WAV) - 8
    body = DTMF_WAV[12:] + b"JUNK" + struct.pack("<I", pad) + bytes(pad)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


async def test_upload_limits_413_and_skip_providers_over_their_cap() -> None:
    async with ChainGateway(faults={"deepgram": "*:status,status=503"}, caps={"groq": 19_000_000}) as gw:
        async with sdk(gw) as client:
            with pytest.raises(openai.APIStatusError) as info:
                await client.audio.transcriptions.create(file=("big.wav", bytes(30_000_000)), model="whisper-1")
        assert info.value.status_code == 413 and info.value.code == "payload_too_large"
        assert sum(len(f.requests) for f in gw.fakes.values()) == 0
        status, body = await post(gw, junk_padded_wav(20_000_000))
        assert status == 200 and body["provider"] == "openai" and body["text"] == "159#"
        assert body["attempts"][3] == {**body["attempts"][3], "provider": "groq", "outcome": "skipped",
                                       "code": "upload_too_large"}
        assert gw.hits("groq") == 0


async def test_bad_requests_get_stable_codes_and_contact_nobody() -> None:
    async with ChainGateway() as gw:
        assert gw.runtime is not None
        gw.runtime.draining = True  # what SIGTERM does (gateway/serve.py)
        status, body = await post(gw, DTMF_WAV)
        assert (status, body["error"]["code"]) == (503, "draining")
        gw.runtime.draining = False
        assert (await post(gw, DTMF_WAV, "text/plain"))[1]["error"]["code"] == "unsupported_media_type"
        status, body = await post(gw, b"", "audio/wav")
        assert (status, body["error"]["code"]) == (400, "empty_audio")
        status, body = await post(gw, b"hello, this is not audio", "application/octet-stream")
        assert (status, body["error"]["code"]) == (400, "undecodable_audio")
        status, body = await post(gw, DTMF_WAV, path="/api/v1/transcribe?quality=ultra")
        assert (status, body["error"]["code"]) == (400, "bad_option")
        assert sum(len(f.requests) for f in gw.fakes.values()) == 0


async def test_multipart_options_and_openai_response_formats() -> None:
    async with ChainGateway() as gw:
        form = aiohttp.FormData()
        form.add_field("file", DTMF_WAV, filename="a.wav", content_type="audio/wav")
        for k, v in {"language": "pt-BR", "diarize": "true", "quality": "high"}.items():
            form.add_field(k, v)
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/api/v1/transcribe", data=form) as res:
                body = await res.json()
        assert body["text"] == "159#" and body["model"] == "nova-3" and body["words"][0]["word"] == "159#"
        assert gw.fakes["deepgram"].requests[0].query == {"model": "nova-3", "punctuate": "true",
                                                          "language": "pt-BR", "diarize": "true"}
        verbose, _ = await transcribe_sdk(gw, response_format="verbose_json")
        assert verbose.text == "159#" and verbose.duration == pytest.approx(0.9, abs=0.01)
        text, _ = await transcribe_sdk(gw, response_format="text")
        assert str(text).strip() == "159#"


async def test_bad_multipart_bodies_get_stable_codes_and_contact_nobody() -> None:
    async with ChainGateway() as gw:
        two_files = aiohttp.FormData()
        two_files.add_field("file", DTMF_WAV, filename="a.wav", content_type="audio/wav")
        two_files.add_field("other", DTMF_WAV, filename="b.wav", content_type="audio/wav")
        no_file = aiohttp.FormData(default_to_multipart=True)
        no_file.add_field("file", "not a file part")
        no_file.add_field("language", "en")
        too_many = aiohttp.FormData()
        too_many.add_field("file", DTMF_WAV, filename="a.wav", content_type="audio/wav")
        for n in range(33):
            too_many.add_field(f"f{n}", "x")
        async with aiohttp.ClientSession() as http:
            for form, code in ((two_files, "bad_multipart"), (too_many, "bad_multipart"), (no_file, "missing_file")):
                async with http.post(gw.http + "/v1/audio/transcriptions", data=form) as res:
                    assert (res.status, (await res.json())["error"]["code"]) == (400, code)
        status, body = await post(gw, b"--x\r\nnot a part", "multipart/form-data; boundary=zzz")
        assert (status, body["error"]["code"]) == (400, "bad_multipart")
        status, body = await post(gw, DTMF_WAV, "multipart/form-data")  # no boundary at all
        assert (status, body["error"]["code"]) == (400, "bad_multipart")
        assert sum(len(f.requests) for f in gw.fakes.values()) == 0


async def test_a_chunked_upload_is_counted_while_read_and_refused_at_the_limit() -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives (413 once over)."""
    async with ChainGateway() as gw:
        limit = gw.chains.settings.upload_limit_bytes

        async def chunks():  # noqa: ANN202
            for _ in range(limit // 65536 + 2):
                yield bytes(65536)

        async with aiohttp.ClientSession() as http:
            async with http.post(gw.http + "/api/v1/transcribe", data=chunks(),
                                 headers={"Content-Type": "audio/wav"}) as res:
                assert res.status == 413 and (await res.json())["error"]["code"] == "payload_too_large"
        assert sum(len(f.requests) for f in gw.fakes.values()) == 0


async def test_client_tokens_guard_the_endpoints() -> None:
    async with ChainGateway(settings_overrides={"client_tokens": ("tok-123",)}) as gw:
        status, body = await post(gw, DTMF_WAV)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        status, body = await post(gw, DTMF_WAV, Authorization="Bearer tok-123")
        assert status == 200 and body["text"] == "159#"
        assert gw.hits("deepgram") == 1


async def test_open_chain_breaker_half_opens_after_its_timeout_and_closes_after_two_successes() -> None:
    async with ChainGateway(faults={"deepgram": "1-15:status,status=503"}) as gw:
        breaker = gw.chains.breaker("deepgram_transcription")
        for _ in range(5):
            await post(gw, DTMF_WAV)
        assert breaker.snapshot()["state"] == "OPEN" and gw.hits("deepgram") == 15
        gw.clock.advance(59.0)
        assert (await post(gw, DTMF_WAV))[1]["attempts"][0]["outcome"] == "rejected"
        gw.clock.advance(1.0)  # 60 s after opening: the next request is a half-open trial
        status, body = await post(gw, DTMF_WAV)
        assert status == 200 and body["provider"] == "deepgram" and breaker.snapshot()["state"] == "HALF_OPEN"
        status, body = await post(gw, DTMF_WAV)
        assert body["provider"] == "deepgram" and breaker.snapshot()["state"] == "CLOSED"
        assert gw.hits("deepgram") == 17


async def test_the_chain_deadline_bounds_every_retry() -> None:
    async with ChainGateway(faults={"deepgram": "*:stall", "groq": "*:stall"}, attempt_timeout_s=0.4,
                            deadline_s=0.6) as gw:
        for fake in gw.fakes.values():
            fake.stall_max_s = 5.0
        status, body = await post(gw, DTMF_WAV)
        assert status == 502 and body["error"]["code"] == "TRX-003"
        # deepgram: 0.4 s, then its retry gets what is left of 0.6 s; nobody after that is contacted
        assert gw.hits("deepgram") == 2 and gw.hits("groq") == 0 and gw.hits("openai") == 0
        assert [(a["provider"], a["outcome"]) for a in body["attempts"]] == [
            ("deepgram", "timeout"), ("deepgram", "timeout"), ("groq", "skipped"), ("openai", "skipped")]
        assert body["attempts"][-1]["code"] == "deadline_exceeded"
        # providers that were never contacted are not breaker results
        assert gw.chains.breaker("groq_transcription").snapshot()["failures"] == 0
