"""Every example in examples/ runs against the embedded default (no keys, in-process fakes), as a
user would run it: the Python client as a subprocess, the TwiML as Twilio would act on it (the
official `twilio` package signs the URL it names). The browser example: tests/browser/."""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile
from twilio.request_validator import RequestValidator

from audio.dtmf import detect_dtmf
from audio.formats import MULAW_8K
from audio.g711 import ulaw_decode
from tests.embedded import embedded_gateway
from tests.harness import dtmf_utterance
from tests.telephony_clients import FakeTwilioCaller

pytestmark = pytest.mark.timeout(90)
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def digits(pcm16: bytes, rate_hz: int) -> str:
    return "".join(d.digit for d in detect_dtmf(pcm16, rate_hz))


@pytest.mark.parametrize("provider", ["gemini", "openai"])
async def test_stream_wav_example_sends_a_wav_and_saves_the_spoken_reply(provider: str, tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    async with embedded_gateway() as base:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "stream_wav.py"), str(REPO / "fixtures" / "dtmf_159hash_16k.wav"),
            "--url", base + "/v1/voice", "--provider", provider, "--fast", "--out", str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert f"call started with {provider}" in text and "user: 159#" in text
    reply, rate = soundfile.read(out, dtype="int16")
    assert rate == 24000 and digits(np.asarray(reply, dtype="<i2").tobytes(), 24000) == "159#"


async def test_twilio_twiml_example_connects_a_signed_stream_with_its_parameters() -> None:
    stream = ET.parse(EXAMPLES / "twilio" / "stream.xml").getroot().find("./Connect/Stream")
    assert stream is not None
    url = stream.get("url", "")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    parts = urlsplit(url)
    assert parts.scheme == "wss" and not parts.query  # <Stream> takes no query string
    token = "twilio-auth-token-for-the-example-0001"
    # the fake caller sends faster than real time: lift the per-connection frame ceiling
    env = {"TWILIO_AUTH_TOKEN": token, "VG_PUBLIC_URL": f"wss://{parts.netloc}", "VG_MAX_FRAMES_PER_S": "100000",
           "VG_MAX_BYTES_PER_S": "64000000"}
    async with embedded_gateway(env) as base:
        signature = RequestValidator(token).compute_signature(url, {})
        async with FakeTwilioCaller(base + parts.path, params, instant_playout=True,
                                    headers={"X-Twilio-Signature": signature}) as caller:
            await caller.send_audio(dtmf_utterance("26", MULAW_8K))
            deadline = asyncio.get_running_loop().time() + 15
            while digits(ulaw_decode(bytes(caller.received_audio)), 8000) != "26":
                assert asyncio.get_running_loop().time() < deadline, "no spoken reply"
                await caller.send_silence(200)
                await asyncio.sleep(0.05)
            assert not caller.protocol_errors
            await caller.hangup()
