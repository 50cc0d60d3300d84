"""Sans-I/O chain translators, the chain spec data, the policy table and the settings: no server."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.chains.policy import ACTIONS, BreakerEffect, ChainPolicy
from gateway.config import load_settings
from gateway.errors import BadAudio, ConfigError
from providers.chains.base import ChainEndpoint, ErrorClass, HttpResponse, Price, Usage, classify_status
from providers.chains.deepgram_batch import DeepgramBatch
from providers.chains.transcription import TRANSCRIPTION, TranscriptionOptions, sniff_audio, wav_duration_s
from providers.chains.whisper import GroqWhisper, OpenAIWhisper
from tests.chains.harness import DTMF_WAV

EP = ChainEndpoint(base_url="http://h:1", api_key="k-123", key_env="X_API_KEY")
OPTS = TranscriptionOptions(audio=DTMF_WAV, kind=sniff_audio(DTMF_WAV), language="pt-BR")


def response(status: int, body: object, **headers: str) -> HttpResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return HttpResponse(status=status, headers={k.replace("_", "-"): v for k, v in headers.items()}, body=raw)


def multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """Parsed back with the standard library's MIME parser (not our encoder's logic)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


def test_deepgram_request_is_raw_audio_with_token_auth_and_query() -> None:
    req = DeepgramBatch().build(OPTS, EP)
    url = urlsplit(req.url)
    assert (req.method, url.path) == ("POST", "/v1/listen")
    assert parse_qs(url.query) == {"model": ["nova-2"], "punctuate": ["true"], "language": ["pt-BR"]}
    assert dict(req.headers) == {"Authorization": "Token k-123", "Content-Type": "audio/wav"}
    assert req.body == DTMF_WAV
    assert "k-123" not in repr(req)


def test_whisper_requests_are_multipart_with_bearer_auth() -> None:
    for t, path, model, fmt in ((GroqWhisper(), "/openai/v1/audio/transcriptions", "whisper-large-v3", "verbose_json"),
                                (OpenAIWhisper(), "/audio/transcriptions", "whisper-1", "verbose_json"),
                                (OpenAIWhisper(model="gpt-4o-transcribe"), "/audio/transcriptions",
                                 "gpt-4o-transcribe", "json")):
        req = t.build(OPTS, EP)
        headers = dict(req.headers)
        assert urlsplit(req.url).path == path and headers["Authorization"] == "Bearer k-123"
        fields = multipart_fields(headers["Content-Type"], req.body)
        assert fields == {"model": model.encode(), "language": b"pt", "response_format": fmt.encode(),
                          "file": DTMF_WAV}


def test_parse_success_shapes_and_usage() -> None:
    dg = DeepgramBatch().parse(response(200, {
        "metadata": {"duration": 12.5, "model_info": {"x": {"arch": "nova-2"}}},
        "results": {"channels": [{"alternatives": [{"transcript": "hi", "words": [
            {"word": "hi", "punctuated_word": "Hi.", "start": 0.1, "end": 0.3, "confidence": 0.9}]}]}]}}))
    assert (dg.text, dg.model, dg.duration_s, dg.words[0]["word"], dg.usage.audio_seconds) == \
        ("hi", "nova-2", 12.5, "Hi.", 12.5)
    groq = GroqWhisper().parse(response(200, {"text": " hi ", "duration": 3.0, "x_groq": {"id": "r"}}))
    assert (groq.text, groq.usage.audio_seconds) == ("hi", 3.0)
    tokens = OpenAIWhisper(model="gpt-4o-transcribe").parse(response(200, {
        "text": "hi", "usage": {"type": "tokens", "input_tokens": 100, "output_tokens": 10}}))
    assert tokens.usage == Usage(input_tokens=100, output_tokens=10)


def test_cost_from_usage_fields() -> None:
    groq = GroqWhisper()
    assert groq.price_for("whisper-large-v3").cost_usd(Usage(audio_seconds=3.0)) == pytest.approx(10 / 60 * 0.111 / 60)
    assert OpenAIWhisper().price_for("whisper-1").cost_usd(Usage(audio_seconds=60)) == pytest.approx(0.006)
    assert OpenAIWhisper().price_for("gpt-4o-transcribe").cost_usd(
        Usage(input_tokens=1_000_000, output_tokens=100_000)) == pytest.approx(3.5)
    assert DeepgramBatch().price_for("nova-3").cost_usd(Usage(audio_seconds=120)) == pytest.approx(0.0154)
    assert Price(per_minute_usd=1.0).cost_usd(Usage()) == 0.0


@pytest.mark.parametrize(("status", "cls"), [
    (400, ErrorClass.BAD_INPUT), (401, ErrorClass.AUTH), (402, ErrorClass.AUTH), (403, ErrorClass.AUTH),
    (408, ErrorClass.TIMEOUT), (413, ErrorClass.BAD_INPUT), (422, ErrorClass.BAD_INPUT),
    (429, ErrorClass.RATE_LIMIT), (498, ErrorClass.RATE_LIMIT), (500, ErrorClass.SERVER),
    (502, ErrorClass.SERVER), (503, ErrorClass.SERVER), (504, ErrorClass.SERVER)])
def test_status_classes(status: int, cls: ErrorClass) -> None:
    assert classify_status(status) is cls
    assert GroqWhisper().parse(response(status, {"error": {"message": "m", "code": "c"}})).error_class is cls


def test_error_details_deepgram_504_quota_retry_after_and_malformed() -> None:
    err = DeepgramBatch().parse(response(504, {"err_code": "GATEWAY_TIMEOUT", "err_msg": "took too long"}))
    assert (err.error_class, err.provider_code, err.message) == (ErrorClass.PROCESSING_CAP, "GATEWAY_TIMEOUT",
                                                                 "took too long")
    quota = OpenAIWhisper().parse(response(429, {"error": {"message": "quota", "code": "insufficient_quota"}}))
    assert quota.error_class is ErrorClass.AUTH
    limited = OpenAIWhisper().parse(response(429, {"error": {"message": "slow down"}}, retry_after="2.5"))
    assert (limited.error_class, limited.retry_after_s) == (ErrorClass.RATE_LIMIT, 2.5)
    assert GroqWhisper().parse(response(429, b"<html>", retry_after="Wed, 21 Oct 2015")).retry_after_s is None
    for t in (DeepgramBatch(), GroqWhisper(), OpenAIWhisper()):
        assert t.parse(response(200, b'{"text": "trunc')).error_class is ErrorClass.PROTOCOL
        assert t.parse(response(200, {"results": 5, "text": 7})).error_class is ErrorClass.PROTOCOL


def test_audio_sniffing_and_validation() -> None:
    assert sniff_audio(DTMF_WAV).extension == "wav"
    assert wav_duration_s(DTMF_WAV) == pytest.approx(0.9, abs=0.01)
    for head, ext in ((b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3\x03", "mp3"), (b"\xff\xfb\x90", "mp3"),
                      (b"\x1aE\xdf\xa3", "webm"), (b"\0\0\0\x20ftypM4A ", "m4a")):
        assert sniff_audio(head + bytes(16)).extension == ext
    with pytest.raises(BadAudio) as info:
        sniff_audio(b"")
    assert info.value.code == "empty_audio"
    with pytest.raises(BadAudio) as info:
        sniff_audio(b"<html>hello</html>")
    assert info.value.code == "undecodable_audio"
    for bad in ({"quality": "best"}, {"language": "en; DROP"}, {"language": ""}):
        with pytest.raises(BadAudio) as info:
            TRANSCRIPTION.validate(TranscriptionOptions(**{"audio": DTMF_WAV, "kind": OPTS.kind, **bad}))
        assert info.value.code == "bad_option"


def test_chain_codes_are_data() -> None:
    codes = TRANSCRIPTION.codes
    assert codes.for_attempt("deepgram", ErrorClass.RATE_LIMIT) == "TRX-001"
    assert codes.for_attempt("deepgram", ErrorClass.SERVER) == "TRX-002"
    assert codes.for_attempt("deepgram", ErrorClass.AUTH) == "TRX-002"
    assert codes.for_attempt("groq", ErrorClass.RATE_LIMIT) == "rate_limit"
    assert codes.all_failed == "TRX-003"
    assert TRANSCRIPTION.order == ("deepgram", "groq", "openai")


def test_policy_table() -> None:
    assert {c: (a.retries, a.backoff, a.timeout_factor, a.breaker) for c, a in ACTIONS.items()} == {
        ErrorClass.RATE_LIMIT: (0, False, 1.0, BreakerEffect.FAILURE),
        ErrorClass.AUTH: (0, False, 1.0, BreakerEffect.AUTH),
        ErrorClass.TIMEOUT: (1, False, 2.0, BreakerEffect.FAILURE),
        ErrorClass.SERVER: (2, True, 1.0, BreakerEffect.FAILURE),
        ErrorClass.NETWORK: (0, False, 1.0, BreakerEffect.FAILURE),
        ErrorClass.PROTOCOL: (1, True, 1.0, BreakerEffect.FAILURE),
        ErrorClass.PROCESSING_CAP: (0, False, 1.0, BreakerEffect.FAILURE),
        ErrorClass.BAD_INPUT: (0, False, 1.0, BreakerEffect.NEUTRAL),
    }
    assert [ChainPolicy(retry_backoff_s=0.5).backoff_s(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_settings_parse_chain_variables() -> None:
    s = load_settings({}).chains
    assert s.transcription_chain == ("deepgram", "groq", "openai")
    assert all(p.simulated for p in s.providers.values())
    s = load_settings({"VG_TRANSCRIPTION_CHAIN": "groq, openai", "GROQ_API_KEY": "gsk_1", "DEEPGRAM_BASE_URL":
                       "wss://dg.example:8443", "OPENAI_BASE_URL": "ws://127.0.0.1:9/v1/", "OPENAI_WHISPER_MODEL":
                       "gpt-4o-mini-transcribe", "GROQ_MAX_UPLOAD_MB": "100"}).chains
    assert s.transcription_chain == ("groq", "openai")
    assert (s.providers["groq"].simulated, s.providers["groq"].live_base_url) == (False, "https://api.groq.com")
    assert s.providers["groq"].max_upload_bytes == 100_000_000
    assert s.providers["deepgram"].base_url == "https://dg.example:8443"
    assert (s.providers["openai"].base_url, s.providers["openai"].model) == ("http://127.0.0.1:9/v1",
                                                                             "gpt-4o-mini-transcribe")
    for env, fragment in (({"VG_TRANSCRIPTION_CHAIN": "deepgram,whisperx"}, "unknown provider"),
                          ({"VG_TRANSCRIPTION_CHAIN": "groq,groq"}, "twice"),
                          ({"GROQ_BASE_URL": "ftp://x"}, "GROQ_BASE_URL"),
                          ({"VG_CHAIN_DEADLINE_S": "-1"}, "VG_CHAIN_DEADLINE_S")):
        with pytest.raises(ConfigError) as info:
            load_settings(env)
        assert fragment in info.value.message
    public = load_settings({"GROQ_API_KEY": "gsk_secret-1"}).to_public_dict()
    assert public["chains"]["providers"]["groq"]["api_key"] == "***"
    assert "gsk_secret-1" not in orjson.dumps(public).decode()


STATUSES = st.sampled_from([200, 200, 200, 400, 401, 402, 403, 408, 413, 422, 429, 498, 500, 502, 503, 504, 302, 204])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                           ["text", "results", "channels", "alternatives", "transcript", "metadata", "duration",
                            "words", "usage", "error", "message", "code", "segments", "type", "seconds",
                            "input_tokens", "output_tokens", "model_info", "arch", "start", "end", "word"]), inner,
                           max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(status=STATUSES, body=st.one_of(JSONISH.map(orjson.dumps), st.binary(max_size=64)),
       retry_after=st.one_of(st.none(), st.text(max_size=8)))
def test_parse_never_raises(status: int, body: bytes, retry_after: str | None) -> None:
    """Whatever a provider answers, a translator returns a result or an AttemptError, never raises."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    for t in (DeepgramBatch(), GroqWhisper(), OpenAIWhisper(), OpenAIWhisper(model="gpt-4o-transcribe")):
        out = t.parse(HttpResponse(status=status, headers=headers, body=body))
        if status != 200:
            assert out.error_class in ErrorClass
        else:
            assert isinstance(out.text, str) if hasattr(out, "text") else out.error_class is ErrorClass.PROTOCOL
