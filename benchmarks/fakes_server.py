"""The five live providers' fakes in one process, for long runs (soak, chaos, fuzz): bounded
recording (a fake that keeps every byte would grow ~115 MB per call-hour), optional fault SPECs per
provider.

    python -m benchmarks.fakes_server [--faults-gemini SPEC] [--faults-openai SPEC] ... [--only NAME ...]

Prints one line `listening gemini=ws://… openai=ws://… …` once all accept connections, then serves
until SIGTERM/SIGINT. Keys: any non-empty key is accepted.

GPT-Live is reached on `OPENAI_BASE_URL` (the SDK's `{base}/live/sessions`), like OpenAI Realtime:
when both are served, one front port routes `/v1/live/…` upgrades to the GPT-Live fake and the rest
to the Realtime fake, and both are listed with that port. The Deepgram Voice Agent has its own origin
(`DEEPGRAM_AGENT_BASE_URL`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

from providers.fakes import fake_class  # noqa: E402
from providers.fakes.common import FakeServer, FaultScript  # noqa: E402
from providers.fakes.port_share import SharedPortFront  # noqa: E402
from providers.registry import PROVIDER_NAMES  # noqa: E402

PROVIDERS = PROVIDER_NAMES  # gemini, openai, deepgram, openai_live, deepgram_agent
LIVE_PATH = "/v1/live/"


async def main(args: argparse.Namespace) -> None:
    fakes: dict[str, FakeServer] = {}
    for name in args.only or PROVIDERS:
        spec = getattr(args, f"faults_{name}")
        fakes[name] = fake_class(name)(faults=FaultScript.parse(spec) if spec else None, seed=args.seed,
                                       record_limit_bytes=64_000, keep_connections=16)
        await fakes[name].start()
    urls = {name: fake.url for name, fake in fakes.items()}
    front: SharedPortFront | None = None
    if "openai" in fakes and "openai_live" in fakes:
        ws_port = fakes["openai"].port
        front = await SharedPortFront(ws_port=ws_port, rest_port=ws_port,
                                      ws_routes={LIVE_PATH: fakes["openai_live"].port}).start()
        urls["openai"] = urls["openai_live"] = f"ws://127.0.0.1:{front.port}"
    print("listening " + " ".join(f"{n}={u}" for n, u in urls.items()), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    if front is not None:
        await front.stop()
    for f in fakes.values():
        await f.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for name in PROVIDERS:
        p.add_argument(f"--faults-{name.replace('_', '-')}", dest=f"faults_{name}", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", action="append", choices=PROVIDERS, help="serve only these (repeatable)")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(p.parse_args()))
