"""The fake providers (Gemini, OpenAI, Deepgram STT and the Deepgram Voice Agent) in one process, for long runs (soak, chaos): bounded recording (a fake
that keeps every byte would grow ~115 MB per call-hour), optional fault SPECs per provider.

    python -m benchmarks.fakes_server [--faults-gemini SPEC] [--faults-openai SPEC] [--faults-deepgram SPEC]
        [--faults-deepgram-agent SPEC]

Prints one line `listening gemini=ws://… openai=ws://… deepgram=ws://… deepgram_agent=ws://…` once all accept
connections, then serves until SIGTERM/SIGINT. Keys: any non-empty key is accepted.
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
from providers.fakes.common import FaultScript  # noqa: E402

PROVIDERS = ("gemini", "openai", "deepgram", "deepgram_agent")  # a call on deepgram lands on the agent


async def main(args: argparse.Namespace) -> None:
    fakes = {}
    for name in args.only or PROVIDERS:
        spec = getattr(args, f"faults_{name}")
        fakes[name] = fake_class(name)(faults=FaultScript.parse(spec) if spec else None, seed=args.seed,
                                       record_limit_bytes=64_000, keep_connections=16)
        await fakes[name].start()
    print("listening " + " ".join(f"{n}={f.url}" for n, f in fakes.items()), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for f in fakes.values():
        await f.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for name in PROVIDERS:
        p.add_argument(f"--faults-{name.replace('_', '-')}", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", action="append", choices=PROVIDERS, help="serve only these (repeatable)")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(p.parse_args()))
