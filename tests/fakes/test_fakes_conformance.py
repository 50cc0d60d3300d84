"""One conformance suite over the three fake providers (and the `voice-gateway fake-provider` CLI that
runs them): auth rejection the provider's way, setup, the DTMF round trip (digits come back as the
user transcript and, for the speech-to-speech fakes, as tones in the reply audio), barge-in, and every
fault kind. A small per-provider driver below speaks each raw wire protocol; the assertions are shared."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audio.dtmf import detect_dtmf, generate_dtmf
from providers.fakes import PROVIDERS, fake_class
from providers.fakes.common import FakeServer, FaultScript

KEY = "conformance-key"
RECV_TIMEOUT_S = 3.0
REPO = Path(__file__).resolve().parents[2]


def speech(digits: str, rate_hz: int, trail_ms: int = 1600) -> bytes:
    """DTMF "speech" with a little lead-in and enough trailing silence to end the turn everywhere and
    let a reply of up to 4 digits play out in stream time (OpenAI ends a response once it has played)."""
    return generate_dtmf(digits, rate_hz, lead_silence_ms=100, trail_silence_ms=trail_ms)


def digits_in(pcm16: bytes, rate_hz: int) -> str:
    return "".join(d.digit for d in detect_dtmf(pcm16, rate_hz))


class Driver:
    """How a plain client speaks one provider's wire protocol. Subclasses fill in the details."""

    name = ""
    rate_hz = 16000
    speaks = True  # speech-to-speech (reply audio) or transcripts only
    rejection = ""  # how a wrong key is refused: "http:<status>" or "close:<code>"
    expire_code = 0  # close code of the provider's planned close
    server_kwargs: dict[str, Any] = {}

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, base_url: str, key: str = KEY, **kwargs: Any) -> Driver:
        """Connect and complete the provider's setup."""
        raise NotImplementedError

    async def send_audio(self, pcm16: bytes) -> None:
        raise NotImplementedError

    async def recv_raw(self) -> str | bytes:
        return await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_S)

    async def recv(self) -> dict[str, Any]:
        return json.loads(await self.recv_raw())

    async def until(self, predicate: Any) -> list[dict[str, Any]]:
        messages = []
        while True:
            messages.append(await self.recv())
            if predicate(messages[-1]):
                return messages

    async def user_transcript(self) -> str:
        raise NotImplementedError

    async def reply(self) -> tuple[bytes, bool]:
        """Reply audio (PCM16 at rate_hz... of the reply) of the next model turn, and whether it was cut."""
        raise NotImplementedError

    async def barge_in_seen(self) -> bool:
        """After a second utterance during the first reply: did the provider signal the interruption?"""
        raise NotImplementedError


class GeminiDriver(Driver):
    name, rate_hz, rejection, expire_code = "gemini", 16000, "close:1007", 1008
    path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"

    @classmethod
    async def open(cls, base_url: str, key: str = KEY, **kwargs: Any) -> Driver:
        driver = cls(await connect(f"{base_url}{cls.path}", additional_headers={"x-goog-api-key": key}, **kwargs))
        await driver.ws.send(json.dumps({"setup": {
            "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
            "inputAudioTranscription": {}, "outputAudioTranscription": {}}}))
        assert await driver.recv() == {"setupComplete": {}}
        return driver

    async def send_audio(self, pcm16: bytes) -> None:
        for offset in range(0, len(pcm16), 640):
            await self.ws.send(json.dumps({"realtimeInput": {"audio": {
                "data": base64.b64encode(pcm16[offset:offset + 640]).decode(), "mimeType": "audio/pcm;rate=16000"}}}))

    async def user_transcript(self) -> str:
        messages = await self.until(lambda m: m.get("serverContent", {}).get("inputTranscription", {}).get("finished"))
        return "".join(m["serverContent"]["inputTranscription"]["text"] for m in messages
                       if "inputTranscription" in m.get("serverContent", {}))

    async def reply(self) -> tuple[bytes, bool]:
        messages = await self.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
        audio = b"".join(base64.b64decode(p["inlineData"]["data"]) for m in messages
                         for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", []))
        return audio, any(m.get("serverContent", {}).get("interrupted") for m in messages)

    async def barge_in_seen(self) -> bool:
        # The fake streams a reply faster than real time, so on a busy machine the whole reply (and its
        # turnComplete) can be out before the second utterance is read; the interruption then comes
        # after it, while the reply still plays in stream time (as on the real server, which assumes
        # playback after generationComplete). Either way: `interrupted`, then that turn's turnComplete.
        await self.until(lambda m: m.get("serverContent", {}).get("interrupted"))
        await self.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
        return True


class OpenAIDriver(Driver):
    name, rate_hz, rejection, expire_code = "openai", 24000, "close:3000", 1001
    server_kwargs = {"reply_playback_factor": 100.0}

    @classmethod
    async def open(cls, base_url: str, key: str = KEY, **kwargs: Any) -> Driver:
        driver = cls(await connect(f"{base_url}/v1/realtime?model=gpt-realtime",
                                   additional_headers={"Authorization": f"Bearer {key}"}, **kwargs))
        first = await driver.recv()
        if first["type"] == "error":
            return driver  # the caller checks the rejection
        assert first["type"] == "session.created"
        await driver.ws.send(json.dumps({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}}))
        await driver.until(lambda m: m["type"] == "session.updated")
        return driver

    async def send_audio(self, pcm16: bytes) -> None:
        for offset in range(0, len(pcm16), 4800):
            await self.ws.send(json.dumps({"type": "input_audio_buffer.append",
                                           "audio": base64.b64encode(pcm16[offset:offset + 4800]).decode()}))

    async def user_transcript(self) -> str:
        messages = await self.until(lambda m: m["type"] == "conversation.item.input_audio_transcription.completed")
        return messages[-1]["transcript"]

    async def reply(self) -> tuple[bytes, bool]:
        messages = await self.until(lambda m: m["type"] == "response.done")
        audio = b"".join(base64.b64decode(m["delta"]) for m in messages if m["type"] == "response.output_audio.delta")
        return audio, messages[-1]["response"]["status"] == "cancelled"

    async def barge_in_seen(self) -> bool:
        _, cut = await self.reply()
        return cut


class DeepgramDriver(Driver):
    name, rate_hz, speaks, rejection, expire_code = "deepgram", 16000, False, "http:401", 1011
    server_kwargs = {"silence_final_every_s": None}
    query = ("model=nova-3&encoding=linear16&sample_rate=16000&interim_results=true&vad_events=true"
             "&endpointing=300&utterance_end_ms=1000")

    @classmethod
    async def open(cls, base_url: str, key: str = KEY, **kwargs: Any) -> Driver:
        return cls(await connect(f"{base_url}/v1/listen?{cls.query}",
                                 additional_headers={"Authorization": f"Token {key}"}, **kwargs))

    async def send_audio(self, pcm16: bytes) -> None:
        for offset in range(0, len(pcm16), 640):
            await self.ws.send(pcm16[offset:offset + 640])

    async def user_transcript(self) -> str:
        messages = await self.until(lambda m: m["type"] == "Results" and m["speech_final"])
        return messages[-1]["channel"]["alternatives"][0]["transcript"]

    async def barge_in_seen(self) -> bool:
        # Transcripts only: what a gateway needs for barge-in is SpeechStarted for the second utterance.
        first = await self.until(lambda m: m["type"] == "SpeechStarted")
        second = await self.until(lambda m: m["type"] == "SpeechStarted")
        return first[-1]["timestamp"] < 0.2 and second[-1]["timestamp"] > 1.0


class OpenAILiveDriver(Driver):
    """GPT-Live marks no turns: reads end at an in-order barrier (mute → muted, the fake answers
    messages in order), and a reply is the audio after the last input transcript delta."""

    name, rate_hz, rejection, expire_code = "openai_live", 24000, "http:401", 1000

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws)
        self.backlog: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, base_url: str, key: str = KEY, **kwargs: Any) -> Driver:
        driver = cls(await connect(f"{base_url}/v1/live/sessions",
                                   additional_headers={"Authorization": f"Bearer {key}"}, **kwargs))
        await driver.ws.send(json.dumps({"type": "session.start", "session": {
            "model": "gpt-live-1", "audio": {"format": {"type": "audio/pcm", "rate": 24000}}}}))
        await driver.until(lambda m: m["type"] == "session.started")
        return driver

    async def send_audio(self, pcm16: bytes) -> None:
        for offset in range(0, len(pcm16), 4800):
            await self.ws.send(json.dumps({"type": "session.input_audio.append",
                                           "audio": base64.b64encode(pcm16[offset:offset + 4800]).decode()}))

    async def barrier(self) -> list[dict[str, Any]]:
        await self.ws.send(json.dumps({"type": "session.input_audio.mute"}))
        self.backlog += (await self.until(lambda m: m["type"] == "session.input_audio.muted"))[:-1]
        await self.ws.send(json.dumps({"type": "session.input_audio.unmute"}))
        await self.until(lambda m: m["type"] == "session.input_audio.unmuted")
        return self.backlog

    async def user_transcript(self) -> str:
        messages = await self.barrier()
        return "".join(m["delta"] for m in messages if m["type"] == "session.input_transcript.delta")

    async def reply(self) -> tuple[bytes, bool]:
        messages = self.backlog or await self.barrier()
        last_input = max((i for i, m in enumerate(messages) if m["type"] == "session.input_transcript.delta"),
                         default=-1)
        audio = b"".join(base64.b64decode(m["delta"]) for m in messages[last_input + 1:]
                         if m["type"] == "session.output_audio.delta")
        self.backlog = []
        return audio, False  # nothing marks a cut reply: the timeline shows it (barge_in_seen)

    async def barge_in_seen(self) -> bool:
        messages = await self.barrier()
        inputs = [m for m in messages if m["type"] == "session.input_transcript.delta"]
        first_reply_end = max(m["end_ms"] for m in messages if m["type"] == "session.output_transcript.delta"
                              and messages.index(m) < messages.index(inputs[-1]))
        return inputs[-1]["delta"] == "9" and inputs[-1]["start_ms"] < first_reply_end


DRIVERS: dict[str, type[Driver]] = {"gemini": GeminiDriver, "openai": OpenAIDriver, "deepgram": DeepgramDriver,
                                    "openai_live": OpenAILiveDriver}
assert set(DRIVERS) == set(PROVIDERS)


async def start_fake(provider: str, spec: str = "") -> FakeServer:
    driver = DRIVERS[provider]
    fake = fake_class(provider)(api_key=KEY, faults=FaultScript.parse(spec), **driver.server_kwargs)
    return await fake.start()


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


# -- auth, setup, the DTMF round trip, barge-in ------------------------------------------------------------


async def test_wrong_key_is_rejected_the_providers_way(provider: str) -> None:
    fake = await start_fake(provider)
    driver = DRIVERS[provider]
    try:
        try:
            client = await driver.open(fake.url, key="not-the-key")
            await client.recv_raw()
            await client.recv_raw()
            outcome = "no rejection"
        except InvalidStatus as err:
            outcome = f"http:{err.response.status_code}"
        except ConnectionClosed as err:
            outcome = f"close:{err.rcvd.code if err.rcvd else 1006}"
        assert outcome == driver.rejection
    finally:
        await fake.stop()


async def test_setup_is_recorded(provider: str) -> None:
    fake = await start_fake(provider)
    try:
        client = await DRIVERS[provider].open(fake.url)
        await client.ws.close()
        record = await fake.connection_done(1)
        assert record.setup and record.number == 1 and record.refused is None
        assert not {"authorization", "x-goog-api-key"} & set(record.headers)
    finally:
        await fake.stop()


async def test_dtmf_round_trip(provider: str) -> None:
    fake = await start_fake(provider)
    driver = DRIVERS[provider]
    try:
        client = await driver.open(fake.url)
        await client.send_audio(speech("2580", driver.rate_hz))
        assert await client.user_transcript() == "2580"
        if driver.speaks:
            audio, cut = await client.reply()
            assert digits_in(audio, 24000) == "2580" and not cut
        assert fake.connections[0].digits == "2580"
    finally:
        await fake.stop()


async def test_barge_in_during_the_reply(provider: str) -> None:
    fake = await start_fake(provider)
    driver = DRIVERS[provider]
    try:
        client = await driver.open(fake.url)
        # The reply to "12345678" lasts 1.6 s; "9" starts 0.8 s after the first turn ended.
        await client.send_audio(speech("12345678", driver.rate_hz, trail_ms=700) + speech("9", driver.rate_hz))
        assert await client.barge_in_seen()
        if driver.speaks:
            audio, _ = await client.reply()
            assert digits_in(audio, 24000) == "9"
    finally:
        await fake.stop()


# -- faults ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
async def test_refuse_fault(provider: str, status: int) -> None:
    fake = await start_fake(provider, f"1:refuse,status={status},retry_after=3")
    try:
        with pytest.raises(InvalidStatus) as err:
            await DRIVERS[provider].open(fake.url)
        assert err.value.response.status_code == status
        assert err.value.response.headers.get("Retry-After") == ("3" if status == 429 else None)
        await DRIVERS[provider].open(fake.url)  # the next connection is served
    finally:
        await fake.stop()


async def test_drop_fault_is_an_abrupt_close(provider: str) -> None:
    fake = await start_fake(provider, "1:drop,audio_bytes=3200")
    try:
        client = await DRIVERS[provider].open(fake.url)
        with pytest.raises(ConnectionClosed) as err:
            await client.send_audio(bytes(9600))
            await client.recv_raw()
        assert err.value.rcvd is None  # no close frame: 1006 for the client
    finally:
        await fake.stop()


async def test_close_fault_sends_the_code(provider: str) -> None:
    fake = await start_fake(provider, "1:close,code=1011,reason=scripted,audio_bytes=3200")
    try:
        client = await DRIVERS[provider].open(fake.url)
        with pytest.raises(ConnectionClosed) as err:
            await client.send_audio(bytes(9600))
            await client.recv_raw()
        assert (err.value.rcvd.code, err.value.rcvd.reason) == (1011, "scripted")
    finally:
        await fake.stop()


async def test_delay_fault_holds_back_server_messages(provider: str) -> None:
    fake = await start_fake(provider, "*:delay,ms=120")
    driver = DRIVERS[provider]
    try:
        client = await driver.open(fake.url)
        started = time.monotonic()
        await client.send_audio(speech("4", driver.rate_hz, trail_ms=0))  # no turn end: few delayed replies
        await client.recv()  # the first reaction to the speech (speech started / a transcript fragment)
        assert time.monotonic() - started >= 0.12
        await client.ws.close()  # before stop(): an unread client cannot answer the server's close
    finally:
        await fake.stop()


async def test_stall_fault_goes_silent(provider: str) -> None:
    fake = await start_fake(provider, "1:stall,audio_bytes=3200")
    driver = DRIVERS[provider]
    try:
        client = await driver.open(fake.url, ping_interval=None)
        await client.send_audio(speech("5", driver.rate_hz))
        await fake.fault_fired(1, "stall")
        pong = await client.ws.ping()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pong), 0.3)
        assert fake.connections[0].faults_fired == ["stall"]
    finally:
        await fake.stop()


async def test_malformed_fault_sends_an_unparsable_frame(provider: str) -> None:
    fake = await start_fake(provider, "1:malformed,audio_bytes=3200")
    try:
        client = await DRIVERS[provider].open(fake.url)
        await client.send_audio(bytes(6400))  # silence: nothing else to say
        with pytest.raises(json.JSONDecodeError):
            json.loads(await client.recv_raw())
    finally:
        await fake.stop()


async def test_expire_fault_is_the_providers_planned_close(provider: str) -> None:
    fake = await start_fake(provider, "1:expire,audio_bytes=3200")
    driver = DRIVERS[provider]
    try:
        client = await driver.open(fake.url)
        await client.send_audio(bytes(6400))
        with pytest.raises(ConnectionClosed) as err:
            while True:
                await client.recv_raw()
        assert err.value.rcvd is not None and err.value.rcvd.code == driver.expire_code
    finally:
        await fake.stop()


async def test_goaway_fault_warns_then_closes_gemini() -> None:
    fake = await start_fake("gemini", "1:goaway,time_left=0.05,audio_bytes=3200")
    try:
        client = await GeminiDriver.open(fake.url)
        await client.send_audio(bytes(6400))
        assert await client.recv() == {"goAway": {"timeLeft": "0.05s"}}
        with pytest.raises(ConnectionClosed) as err:
            await client.recv_raw()
        assert err.value.rcvd.code == 1008
    finally:
        await fake.stop()


# -- the CLI -----------------------------------------------------------------------------------------------


async def start_cli(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "fake-provider", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
    return process, line


async def stop_cli(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 10)


async def test_cli_serves_each_fake_on_a_free_port(provider: str) -> None:
    process, line = await start_cli(provider, "--port", "0", "--api-key", KEY)
    try:
        assert line.startswith("listening on ws://127.0.0.1:")
        url = line.removeprefix("listening on ")
        client = await DRIVERS[provider].open(url)
        await client.send_audio(speech("7", DRIVERS[provider].rate_hz))
        assert await client.user_transcript() == "7"
        if DRIVERS[provider].speaks:  # read the reply: a client with unread frames cannot see the close reply
            audio, _ = await client.reply()
            assert digits_in(audio, 24000) == "7"
        await client.ws.close()
    finally:
        assert await stop_cli(process) == 0


async def test_cli_serves_tls_and_applies_faults(tls_cert_files: tuple[Path, Path], tls_client_context: Any) -> None:
    cert, key = tls_cert_files
    process, line = await start_cli("gemini", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key),
                                    "--faults", "1:refuse,status=503")
    try:
        assert line.startswith("listening on wss://127.0.0.1:")
        url = line.removeprefix("listening on ")
        with pytest.raises(InvalidStatus) as err:
            await GeminiDriver.open(url, key="any-key", ssl=tls_client_context)
        assert err.value.response.status_code == 503
        client = await GeminiDriver.open(url, key="any-key", ssl=tls_client_context)  # any non-empty key
        await client.ws.close()
    finally:
        assert await stop_cli(process) == 0


async def test_cli_rejects_a_bad_fault_spec_without_a_traceback() -> None:
    process, _ = await start_cli("openai", "--port", "0", "--faults", "1:explode")
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert await process.wait() == 2
    assert "unknown kind 'explode'" in stderr and "Traceback" not in stderr
