"""`voice-gateway` command line: serve, fake-provider, token, check-config, bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

SUBCOMMANDS = ("serve", "fake-provider", "token", "check-config", "bench", "transcribe", "providers")


def _not_built(name: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        print(f"voice-gateway {name}: not built yet", file=sys.stderr)
        return 2

    return run


def _serve(args: argparse.Namespace) -> int:
    from gateway.serve import serve

    return serve(host=args.host, port=args.port, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voice-gateway", description="Real-time voice WebSocket gateway")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the gateway (embedded fake providers when no keys are set)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--ssl-certfile")
    s.add_argument("--ssl-keyfile")
    s.set_defaults(func=_serve)

    f = sub.add_parser("fake-provider", help="run one fake provider server "
                       "(gemini|openai|deepgram|groq|minimax|openrouter|anthropic)")
    # groq: REST only (the transcription chain); openai/deepgram also serve REST on the same port
    f.add_argument("provider", choices=[*__import__("providers.registry", fromlist=["_"]).PROVIDER_NAMES, "groq",
                                                 "minimax", "openrouter", "anthropic"])
    f.add_argument("--host", default="127.0.0.1")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--api-key")
    f.add_argument("--tls-cert")
    f.add_argument("--tls-key")
    f.add_argument("--faults", help="fault SPEC, see providers/fakes/common.py")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--rest-faults", help="HTTP fault SPEC of the REST side (openai/deepgram), see "
                   "providers/fakes/rest_common.py")
    # openai/deepgram serve their REST API on the same port; groq is REST only (providers/fakes/rest_cli.py)
    f.set_defaults(func=lambda args: __import__("providers.fakes.rest_cli", fromlist=["_"]).run(args))

    t = sub.add_parser("token", help="mint a short-lived client token signed with VG_CLIENT_TOKEN_SECRET")
    t.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    t.add_argument("--subject", default="client")
    t.add_argument("--allow-switch", action="store_true", help="the token may send provider.switch")
    t.set_defaults(func=lambda args: __import__("gateway.auth", fromlist=["run_token"]).run_token(args))

    c = sub.add_parser("check-config", help="validate the effective config and print it, secrets masked")
    c.set_defaults(func=lambda args: __import__("gateway.config", fromlist=["_"]).run_check_config(args))

    b = sub.add_parser("bench", help="load benchmark: gateway vs direct vs bare relay (benchmarks/load.py)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=lambda args: __import__("gateway.bench_cli", fromlist=["_"]).run_bench(args))

    from gateway.chains.cli import add_parsers as add_chain_parsers  # transcribe, providers check

    add_chain_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"] and argv[1:2] != ["--"]:
        # everything after `bench` belongs to benchmarks/load.py, options included (no `--` needed)
        argv = ["bench", "--", *argv[1:]]
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
