"""Before/after of the per-frame pieces in one run: two checkouts timed in alternating short bursts.

    .venv/bin/python benchmarks/ab.py --base DIR [--rounds 8] [--number 400]

DIR is another checkout (e.g. `mkdir DIR && git archive main | tar -x -C DIR`). Each round starts one
worker process per checkout (PYTHONPATH = that checkout; this environment's packages), base first,
then ours; each worker times every case (best of 3 × `--number` calls, µs per call). The figure per
side is the best over the rounds: on a shared machine the bursts that other processes disturbed are
the slow ones, and alternating keeps both sides exposed to the same periods. Cases use only APIs
both checkouts have.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent

WORKER = r'''
import io, json, logging, sys, timeit
import orjson
from audio.formats import MULAW_8K, PCM16_16K, PCM16_24K
from audio.convert import FormatConverter
from audio.resample import ResampleStream
from gateway.logs import configure_logging, log_event, redact, register_secret
from gateway.telephony.twilio import TwilioMediaStream
from gateway.session_config import SessionConfig
from providers.base import Endpoint
from providers.gemini import GeminiAdapter
import base64
number = int(sys.argv[1])
register_secret("AIzaSyD-bench-0123456789abcdefghijklmno")
configure_logging("INFO", io.StringIO())
log = logging.getLogger("gateway.clients.telephony")
mulaw = bytes(range(160))
pcm16k = bytes(640)
pcm24k = (b"\x10\x20" * 480)
up, down = FormatConverter(MULAW_8K, PCM16_16K), FormatConverter(PCM16_24K, MULAW_8K)
r8_16, r24_8 = ResampleStream(8000, 16000), ResampleStream(24000, 8000)
pcm8k = bytes(320)
tw = TwilioMediaStream()
tw.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}')
tw.parse(orjson.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
    "streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode())
media_in = ('{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound",'
            '"chunk":"1","timestamp":"20","payload":"' + base64.b64encode(mulaw).decode() + '"}}')
gem = GeminiAdapter(SessionConfig(provider="gemini"), Endpoint(base_url="ws://127.0.0.1:1", api_key="k"))
msg = "message of 70000 bytes is over the 65536-byte limit"
cases = {
    "resample 8k→16k, one 20 ms frame": lambda: r8_16.process(pcm8k),
    "resample 24k→8k, one 20 ms frame": lambda: r24_8.process(pcm24k),
    "uplink μ-law 8k → PCM16 16k (FormatConverter)": lambda: up.convert(mulaw),
    "downlink PCM16 24k → μ-law 8k (FormatConverter)": lambda: down.convert(pcm24k),
    "twilio parse inbound media (JSON + base64)": lambda: tw.parse(media_in),
    "twilio outbound media_frames(160 B)": lambda: tw.media_frames(mulaw),
    "gemini audio_frame(640 B)": lambda: gem.audio_frame(pcm16k),
    "redact(): refused-frame message": lambda: redact(msg),
    "log line: refused over-limit frame (telephony.bad_input)": lambda: log_event(
        log, logging.WARNING, "telephony.bad_input", msg, client="twilio", code="message_too_big",
        session_id="s_0f3c2a9b7d114e6b"),
}
out = {name: min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6 for name, fn in cases.items()}
print(json.dumps(out))
'''


def burst(checkout: Path, number: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", WORKER, str(number)], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True, help="the checkout before the change")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--number", type=int, default=400)
    args = p.parse_args(argv)
    best: dict[str, dict[str, float]] = {"base": {}, "ours": {}}
    for _ in range(args.rounds):
        for side, checkout in (("base", args.base.resolve()), ("ours", REPO)):
            for name, us in burst(checkout, args.number).items():
                best[side][name] = min(us, best[side].get(name, float("inf")))
    print(f"best of {args.rounds} alternating rounds, µs per call; base = {args.base}")
    print(f"{'case':58} {'base':>8} {'ours':>8} {'ours/base':>9}")
    for name, b in best["base"].items():
        o = best["ours"][name]
        print(f"{name:58} {b:8.2f} {o:8.2f} {o / b:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
