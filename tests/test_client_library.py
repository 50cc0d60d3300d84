"""voice_gateway_client over real sockets against the embedded default (no keys, in-process fakes
speaking the DTMF dialect): typed events, errors, tokens, and reconnecting after a network cut."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from audio.dtmf import detect_dtmf
from audio.formats import PCM16_16K
from tests.embedded import CuttableProxy, embedded_gateway
from tests.harness import dtmf_utterance
from voice_gateway_client import (
    AudioChunk,
    Error,
    GatewayDisconnected,
    GatewayReconnected,
    GatewayRefused,
    SessionEnded,
    SessionStarted,
    Transcript,
    TurnCompleted,
    connect,
)

pytestmark = pytest.mark.timeout(60)
FRAME = PCM16_16K.frame_bytes(20)


async def send_frames(call, pcm: bytes) -> int:  # noqa: ANN001
    n = 0
    for i in range(0, len(pcm), FRAME):
        await call.send_audio(pcm[i:i + FRAME])
        n += 1
    return n


async def until(call, kind, predicate=lambda _: True):  # noqa: ANN001, ANN201
    async for event in call:
        if isinstance(event, kind) and predicate(event):
            return event
    raise AssertionError(f"the call ended before a {kind.__name__}")


@pytest.mark.parametrize("provider", ["gemini", "openai", "deepgram"])
async def test_a_call_streams_audio_and_iterates_typed_events(provider: str) -> None:
    async with embedded_gateway() as base, connect(base + "/v1/voice", provider=provider) as call:
        started = await until(call, SessionStarted)
        assert started.provider == provider and started.input_format["sample_rate"] == 16000
        await send_frames(call, dtmf_utterance("42", PCM16_16K))
        user = await until(call, Transcript, lambda t: t.role == "user" and t.final)
        assert user.text == "42" and call.session_id == started.session_id
        if provider != "deepgram":  # speech-to-speech fakes answer by speaking the digits back
            audio = bytearray()
            async for event in call:
                if isinstance(event, AudioChunk):
                    audio += event.data
                if isinstance(event, TurnCompleted) and event.role == "assistant":
                    break
            assert "".join(d.digit for d in detect_dtmf(bytes(audio), 24000)) == "42"
        await call.end()
        ended = await until(call, SessionEnded)
        assert ended.reason == "client_ended"
        assert [e async for e in call] == []  # the iterator stops after the call ended


async def test_protocol_errors_arrive_as_typed_errors_and_the_call_goes_on() -> None:
    async with embedded_gateway() as base, connect(base + "/v1/voice", provider="deepgram") as call:
        await until(call, SessionStarted)
        await call.send({"type": "no.such.message"})
        err = await until(call, Error)
        assert err.code == "unknown_type"
        await send_frames(call, dtmf_utterance("7", PCM16_16K))
        assert (await until(call, Transcript, lambda t: t.final)).text == "7"


async def test_the_token_is_sent_and_a_refusal_is_an_exception() -> None:
    async with embedded_gateway({"VG_CLIENT_TOKENS": "library-test-token-1234"}) as base:
        with pytest.raises(GatewayRefused) as refused:
            async with connect(base + "/v1/voice"):
                pass
        assert refused.value.status == 403
        async with connect(base + "/v1/voice", token="library-test-token-1234", provider="deepgram") as call:
            assert (await until(call, SessionStarted)).provider == "deepgram"


async def test_after_a_network_cut_it_reconnects_and_sends_what_was_said_meanwhile() -> None:
    async with embedded_gateway() as base, CuttableProxy(urlsplit(base).port) as proxy:
        async with connect(f"ws://127.0.0.1:{proxy.port}/v1/voice", provider="deepgram",
                           initial_backoff_s=0.05) as call:
            first = await until(call, SessionStarted)
            proxy.cut()
            lost = await until(call, GatewayDisconnected)
            assert lost.attempt == 1
            sent = await send_frames(call, dtmf_utterance("369", PCM16_16K))  # while the link is down
            back = await until(call, GatewayReconnected)
            assert back.resent_audio_chunks == sent and back.dropped_audio_chunks == 0
            second = await until(call, SessionStarted)
            assert second.session_id != first.session_id  # a new call on the gateway
            assert (await until(call, Transcript, lambda t: t.final)).text == "369"


def test_events_parse_to_their_types_and_unknown_shapes_stay_untyped() -> None:
    from voice_gateway_client import ProviderSwitched, UnknownEvent, parse_event

    switched = parse_event({"type": "provider.switched", "session_id": "s1", "ts": 1.0, "from": "gemini",
                            "to": "openai", "provider": "openai", "reason": "circuit_open", "carried_turns": 2,
                            "capabilities": {"audio_output": True}})
    assert switched == ProviderSwitched("gemini", "openai", "circuit_open", 2, {"audio_output": True})
    assert switched.session_id == "s1"
    assert parse_event({"type": "audio.delta", "audio": "AAE="}) == AudioChunk(b"\x00\x01")
    # a newer gateway's event, or a known type missing a field: handed over, never raised
    assert parse_event({"type": "cost.update", "usd": 0.1}) == UnknownEvent("cost.update")
    assert parse_event({"type": "error"}) == UnknownEvent("error")


def test_the_library_stands_alone() -> None:
    """It ships to applications that do not run the gateway: it imports none of the gateway's code."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "voice_gateway_client"
    imported = set()
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported & {"gateway", "providers", "audio"} == set()
