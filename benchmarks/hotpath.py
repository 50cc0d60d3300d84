"""Per-frame cost of the pieces of the gateway's audio hot path, in isolation (no sockets).

    .venv/bin/python benchmarks/hotpath.py [--repeat 7] [--number 5000]

Each line is one operation the gateway does for every 20 ms frame (or a proposed replacement,
marked "→"), timed with timeit: best of `--repeat` runs of `--number` calls, in µs per call. Used
for benchmarks/PROFILE.md: the load benchmark's py-spy profile says where the time goes, this says
what each piece costs and what a change would save.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import orjson  # noqa: E402
import pybase64  # noqa: E402

from audio.convert import FormatConverter  # noqa: E402
from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K, AudioChunk  # noqa: E402
from audio.g711 import ulaw_decode  # noqa: E402
from benchmarks.echo_provider import gemini_reply, live_reply, openai_reply  # noqa: E402
from benchmarks.marker import marker_frame  # noqa: E402
from gateway import metrics  # noqa: E402
from gateway.limits import ConnectionLimits, FrameRateLimiter  # noqa: E402
from gateway.replay import ReplayBuffer  # noqa: E402
from gateway.session_config import SessionConfig  # noqa: E402
from gateway.telephony.twilio import TwilioMediaStream  # noqa: E402
from providers.base import Endpoint  # noqa: E402
from providers.gemini import GeminiAdapter  # noqa: E402
from providers.openai import OpenAIAdapter  # noqa: E402
from providers.openai_live import OpenAILiveAdapter  # noqa: E402


def cases() -> list[tuple[str, Callable[[], object]]]:
    mulaw = marker_frame(7, MULAW_8K)
    pcm16k = marker_frame(7, PCM16_16K)
    pcm24k = marker_frame(7, PCM16_24K)
    up = FormatConverter(MULAW_8K, PCM16_16K)
    down = FormatConverter(PCM16_24K, MULAW_8K)
    ep = Endpoint(base_url="ws://127.0.0.1:1", api_key="k")
    gemini = GeminiAdapter(SessionConfig(provider="gemini"), ep)
    openai = OpenAIAdapter(SessionConfig(provider="openai", input_format=MULAW_8K, output_format=MULAW_8K), ep)
    g_reply, o_reply = gemini_reply(7), openai_reply(7, MULAW_8K)
    live = OpenAILiveAdapter(SessionConfig(provider="openai_live", input_format=MULAW_8K, output_format=MULAW_8K), ep)
    l_reply = live_reply(7, MULAW_8K)
    twilio = TwilioMediaStream()
    twilio.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}')
    twilio.parse(orjson.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode())
    b64 = base64.b64encode(mulaw).decode()
    media_in = ('{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound",'
                '"chunk":"1","timestamp":"20","payload":"' + b64 + '"}}')
    media_prefix = '{"event":"media","streamSid":"MZ1","media":{"payload":"'
    counter = metrics.ai_provider_audio_chunks_sent
    child = counter.labels("gemini")
    replay = ReplayBuffer(maxlen=100)
    for i in range(100):
        replay.append(AudioChunk(data=pcm16k, fmt=PCM16_16K, seq=i, offset_s=i * 0.02), link_up=True)
    seq = [100]
    limiter = FrameRateLimiter(ConnectionLimits(max_frames_per_s=1e9, max_bytes_per_s=1e12), now=lambda: 0.0)

    def replay_append() -> None:
        chunk = AudioChunk(data=pcm16k, fmt=PCM16_16K, seq=seq[0], offset_s=seq[0] * 0.02)
        seq[0] += 1
        replay.append(chunk, link_up=True)
        replay.mark_sent(chunk)

    return [
        ("metrics: counter.labels(provider).inc()  (link.py, per frame each way)", lambda: counter.labels("gemini").inc()),
        ("  → cached child .inc()", child.inc),
        ("uplink μ-law 8k → PCM16 16k (FormatConverter)", lambda: up.convert(mulaw)),
        ("  → μ-law decode only (Gemini told audio/pcm;rate=8000)", lambda: ulaw_decode(mulaw)),
        ("downlink PCM16 24k → μ-law 8k (FormatConverter)", lambda: down.convert(pcm24k)),
        ("twilio parse inbound media (JSON + base64)", lambda: twilio.parse(media_in)),
        ("  base64.b64decode(validate=True) of the payload", lambda: base64.b64decode(b64, validate=True)),
        ("  → binascii.a2b_base64(strict_mode=True)", lambda: binascii.a2b_base64(b64, strict_mode=True)),
        ("  → pybase64.b64decode(validate=True)  (what the gateway uses)", lambda: pybase64.b64decode(b64, validate=True)),
        ("twilio outbound media_frames(160 B) (chunker + orjson envelope)", lambda: twilio.media_frames(mulaw)),
        ("  → string template + b2a_base64", lambda: media_prefix + binascii.b2a_base64(
            mulaw, newline=False).decode() + '"}}'),
        ("gemini audio_frame(640 B)", lambda: gemini.audio_frame(pcm16k)),
        ("gemini parse(24 kHz reply)", lambda: gemini.parse(g_reply)),
        ("openai audio_frame(160 B μ-law)", lambda: openai.audio_frame(mulaw)),
        ("openai parse(output_audio.delta)", lambda: openai.parse(o_reply)),
        ("openai_live audio_frame(160 B μ-law)", lambda: live.audio_frame(mulaw)),
        ("openai_live parse(session.output_audio.delta)", lambda: live.parse(l_reply)),
        ("AudioChunk(...) + ReplayBuffer.append + mark_sent", replay_append),
        ("FrameRateLimiter.check", lambda: limiter.check(300)),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--number", type=int, default=5000)
    args = p.parse_args(argv)
    for name, fn in cases():
        best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
        print(f"{best * 1e6:8.2f} µs  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
