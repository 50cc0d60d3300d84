"""`voice-gateway fake-provider {gemini|openai|deepgram}`: run one fake provider server alone.

Prints exactly one line, `listening on ws://HOST:PORT` (or `wss://` with --tls-cert/--tls-key), once it
accepts connections, then serves until SIGINT or SIGTERM. The fault SPEC is parsed before anything starts,
so a bad `--faults` is an error message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gateway.errors import ConfigError
from providers.fakes import fake_class
from providers.fakes.common import FakeServer, FaultScript, tls_context


def build_fake(args: argparse.Namespace) -> FakeServer:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    try:
        ssl_context = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load the TLS certificate or key: {err.__class__.__name__}") from None
    speech = None
    if getattr(args, "speech", False):
        from providers.fakes.speech import OfflineSpeech

        speech = OfflineSpeech()
    return fake_class(args.provider.replace("-", "_"))(api_key=args.api_key, host=args.host, port=args.port,
                                     ssl_context=ssl_context, faults=FaultScript.parse(args.faults),
                                     seed=getattr(args, "seed", 0), speech=speech)


async def serve_until_signalled(fake: FakeServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await fake.start()
    print(f"listening on {fake.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()
        if fake.speech is not None:
            await fake.speech.close()


def run_fake_provider(args: argparse.Namespace) -> int:
    try:
        fake = build_fake(args)
    except ConfigError as err:
        print(f"voice-gateway fake-provider: {err.message}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_until_signalled(fake))
    except OSError as err:  # e.g. the port is taken
        print(f"voice-gateway fake-provider: cannot listen on {args.host}:{args.port}: {err.strerror}",
              file=sys.stderr)
        return 1
    return 0
