"""The chain CLI as a user runs it: `voice-gateway fake-provider groq|deepgram|openai` (REST on the same
port as the WebSocket fake), `voice-gateway transcribe FILE` and `voice-gateway providers check`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import groq
import openai

from tests.chains.harness import CHAIN_KEYS, DTMF_WAV, FIXTURES
from tests.chains.test_chain_sdk_fidelity import NO_RETRY, deepgram_client

REPO = Path(__file__).resolve().parents[2]
WAV = str(FIXTURES / "dtmf_159hash_16k.wav")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("VG_") or k.endswith(("_API_KEY", "_BASE_URL", "_API_KEY_FILE")))}
    return {**env, "PYTHONPATH": str(REPO), **extra}


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, cwd=REPO, env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def start_fake(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "fake-provider", *args, "--port", "0", cwd=REPO, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
    assert line.startswith("listening on "), line
    return process, line.removeprefix("listening on ")


async def stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_transcribe_in_process_with_no_keys_uses_the_embedded_fakes() -> None:
    code, out, err = await cli("transcribe", WAV)
    assert code == 0, err
    assert out.splitlines()[0] == "159#"
    assert "provider: deepgram" in out and "cost: $" in out


async def test_fake_provider_cli_serves_rest_and_providers_check_reports_each() -> None:
    groq_p, groq_url = await start_fake("groq", "--api-key", CHAIN_KEYS["groq"])
    dg_p, dg_url = await start_fake("deepgram", "--api-key", CHAIN_KEYS["deepgram"])
    oa_p, oa_url = await start_fake("openai", "--api-key", CHAIN_KEYS["openai"])
    try:
        assert groq_url.startswith("http://") and dg_url.startswith("ws://") and oa_url.startswith("ws://")
        async with groq.AsyncGroq(api_key=CHAIN_KEYS["groq"], base_url=groq_url, max_retries=0) as client:
            res = await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-large-v3")
            assert res.text == "159#"
        dg_http = dg_url.replace("ws://", "http://")
        res = await deepgram_client(dg_http).listen.v1.media.transcribe_file(request=DTMF_WAV, request_options=NO_RETRY)
        assert res.results.channels[0].alternatives[0].transcript == "159#"
        async with openai.AsyncOpenAI(api_key=CHAIN_KEYS["openai"], base_url=oa_url.replace("ws://", "http://") + "/v1",
                                      max_retries=0) as client:
            assert (await client.audio.transcriptions.create(file=("a.wav", DTMF_WAV), model="whisper-1")).text == "159#"
        env = clean_env(GROQ_BASE_URL=groq_url, GROQ_API_KEY=CHAIN_KEYS["groq"], DEEPGRAM_BASE_URL=dg_url,
                        DEEPGRAM_API_KEY=CHAIN_KEYS["deepgram"], OPENAI_BASE_URL=oa_url + "/v1",
                        OPENAI_API_KEY=CHAIN_KEYS["openai"])
        code, out, err = await cli("providers", "check", env=env)
        assert code == 0, out + err
        lines = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert "simulated" in lines["gemini"]
        for name in ("deepgram", "groq", "openai"):
            assert " live " in lines[name] and " yes " in lines[name] and " ok " in lines[name], lines[name]
        code, out, err = await cli("providers", "check", env={**env, "GROQ_API_KEY": "gsk_not-the-key-42"})
        assert code == 1
        assert "refused (HTTP 401): check GROQ_API_KEY" in out and "gsk_not-the-key-42" not in out + err
        # the chain through the CLI, in-process, against the three fake processes
        code, out, err = await cli("transcribe", WAV, "--language", "en", env=env)
        assert code == 0 and out.splitlines()[0] == "159#" and "provider: deepgram" in out, err
    finally:
        for process in (groq_p, dg_p, oa_p):
            await stop(process)


async def test_transcribe_reports_a_bad_file_with_its_code() -> None:
    code, _, err = await cli("transcribe", str(REPO / "README.md"))
    assert code == 2 and "undecodable_audio" in err


async def test_serve_with_no_keys_transcribes_a_wav_with_the_embedded_fakes() -> None:
    import aiohttp

    from benchmarks.procs import free_port

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), cwd=REPO, env=clean_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # up to ~30 s on a busy machine
                try:
                    async with http.get(base + "/readyz") as res:
                        if res.status == 200:
                            ready = await res.json()
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the gateway did not become ready")
            assert {p["mode"] for p in ready["chains"]["transcription"].values()} == {"simulated"}
            async with http.post(base + "/api/v1/transcribe", data=DTMF_WAV,
                                 headers={"Content-Type": "audio/wav"}) as res:
                body = await res.json()
            assert res.status == 200 and body["text"] == "159#" and body["provider"] == "deepgram"
    finally:
        await stop(process)
