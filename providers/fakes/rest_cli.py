"""`voice-gateway fake-provider {gemini|openai|deepgram|groq}` with the one-shot REST APIs.

groq is REST only (`listening on http://HOST:PORT`). openai and deepgram serve their WebSocket fake and
their REST fake on the one port (providers/fakes/port_share.py) and print `listening on ws://HOST:PORT`
as before; gemini is unchanged. `--faults` is the WebSocket SPEC for gemini/openai/deepgram and the HTTP
SPEC (providers/fakes/rest_common.py) for groq; `--rest-faults` sets the REST side of openai/deepgram.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gateway.errors import ConfigError
from providers.fakes.cli import build_fake, run_fake_provider
from providers.fakes.common import tls_context
from providers.fakes.port_share import SharedPortFront
from providers.fakes.rest_common import HttpFaultScript
from providers.registry import chain_fake_class as rest_fake_class


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def _serve_groq(args: argparse.Namespace) -> None:
    ctx = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    fake = rest_fake_class("groq")(api_key=args.api_key, host=args.host, port=args.port, ssl_context=ctx,
                                   faults=HttpFaultScript.parse(args.faults), seed=args.seed)
    await fake.start()
    print(f"listening on {fake.url}", flush=True)
    try:
        await _until_signalled()
    finally:
        await fake.stop()


async def _serve_shared(args: argparse.Namespace) -> None:
    ctx = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    ws_args = argparse.Namespace(**{**vars(args), "host": "127.0.0.1", "port": 0, "tls_cert": None, "tls_key": None})
    ws_fake = build_fake(ws_args)
    rest_fake = rest_fake_class(args.provider)(api_key=args.api_key, faults=HttpFaultScript.parse(args.rest_faults),
                                               seed=args.seed)
    await ws_fake.start()
    await rest_fake.start()
    front = await SharedPortFront(ws_port=ws_fake.port, rest_port=rest_fake.port, host=args.host, port=args.port,
                                  ssl_context=ctx).start()
    print(f"listening on {'wss' if ctx else 'ws'}://{args.host}:{front.port}", flush=True)
    try:
        await _until_signalled()
    finally:
        await front.stop()
        await rest_fake.stop()
        await ws_fake.stop()


WITH_REST = ("openai", "deepgram", "groq")  # fakes that also (or only) serve a one-shot REST API


def run(args: argparse.Namespace) -> int:
    if args.provider not in WITH_REST:  # WebSocket only: gemini, openai_live, deepgram_agent
        return run_fake_provider(args)
    try:
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        HttpFaultScript.parse(args.faults if args.provider == "groq" else args.rest_faults)
        if args.provider != "groq":
            build_fake(args)  # validates the WebSocket fault SPEC and TLS files up front
        serve = _serve_groq if args.provider == "groq" else _serve_shared
    except ConfigError as err:
        print(f"voice-gateway fake-provider: {err.message}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except OSError as err:
        print(f"voice-gateway fake-provider: cannot listen on {args.host}:{args.port}: {err.strerror}",
              file=sys.stderr)
        return 1
    return 0
