"""Trigger → first audio at the new provider, over many mid-call switches on loopback.

    .venv/bin/python -m benchmarks.switch_latency [--switches 60]

One call streams 20 ms PCM16 frames in real time while it is switched round Gemini → OpenAI →
Deepgram → Gemini … by `provider.switch` messages. For each switch we time, from the moment the
client sent the command, until the new provider's fake server has received its first audio chunk
(the replayed buffer, then live audio). Also reported: the gateway's own
voice_gateway_switch_seconds (trigger → new link open and replay sent). Target: p50/p95 < 300 ms
(docs/architecture.md bar: < 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio.formats import PCM16_16K  # noqa: E402
from gateway import metrics  # noqa: E402
from tests.harness import Gateway, VoiceClient  # noqa: E402

ORDER = ("openai", "deepgram", "gemini")


async def stream(c: VoiceClient, stop: asyncio.Event) -> None:
    frame = bytes(PCM16_16K.frame_bytes(20))
    next_at = time.perf_counter()
    while not stop.is_set():
        await c.ws.send(frame)
        next_at += 0.02
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def run(n: int) -> dict[str, float]:
    samples: list[float] = []
    async with Gateway() as gw, gw.client() as c:
        await c.start("gemini", input_format=PCM16_16K)
        stop = asyncio.Event()
        streamer = asyncio.create_task(stream(c, stop))
        await asyncio.sleep(0.3)
        for i in range(n):
            target = ORDER[i % 3]
            fake = gw.fakes[target]
            before = len(fake.connections)
            t0 = time.perf_counter()
            await c.send({"type": "provider.switch", "provider": target})
            while not (len(fake.connections) > before and fake.connections[-1].audio_chunks > 0):  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            samples.append(time.perf_counter() - t0)
            await asyncio.sleep(0.1)
        stop.set()
        await streamer
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    gw_hist = metrics.sample("voice_gateway_switch_seconds_sum", {"reason": "client"}) or 0.0
    gw_count = metrics.sample("voice_gateway_switch_seconds_count", {"reason": "client"}) or 1.0
    return {"switches": n, "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "max_ms": samples[-1] * 1000,
            "gateway_mean_ms": gw_hist / gw_count * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--switches", type=int, default=60)
    args = ap.parse_args()
    r = asyncio.run(run(args.switches))
    print(f"switches: {r['switches']}  trigger → first audio at the new provider: "
          f"p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  max {r['max_ms']:.1f} ms  "
          f"(gateway-side mean {r['gateway_mean_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
