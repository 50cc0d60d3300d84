"""`voice-gateway` command line: serve, fake-provider, token, check-config, bench."""

from __future__ import annotations

import argparse
import sys

SUBCOMMANDS = ("serve", "fake-provider", "token", "check-config", "config-reference", "bench", "transcribe",
               "providers")
FAULTS_HELP = """fault SPEC: rules separated by ';', each  CONN:KIND[,key=value...]
  CONN     a connection number (1-based), a range 2-4, or * for every connection
  KIND     drop       abort the TCP connection (no close frame)
           close      send a close frame (code=, reason=)
           refuse     refuse the handshake (status=401|403|429|500|503, retry_after=)
           delay      add ms= milliseconds before every server message
           stall      stop reading and writing
           malformed  send one malformed message
           goaway     Gemini goAway (time_left=)
           expire     the provider's planned close (OpenAI session_expired)
  trigger  (drop/close/stall/malformed/goaway/expire; default: right after setup)
           messages=N | seconds=T | audio_bytes=N;  random drops: *:drop,p=0.01,seed=7
example: --faults '1:drop,audio_bytes=16000;2:refuse,status=503;*:delay,ms=20'"""


def _serve(args: argparse.Namespace) -> int:
    from gateway.serve import serve

    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print("voice-gateway serve: --ssl-certfile and --ssl-keyfile go together", file=sys.stderr)
        return 2
    return serve(host=args.host, port=args.port, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voice-gateway", description="Real-time voice WebSocket gateway")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "serve", help="run the gateway (embedded fake providers when no keys are set)",
        description="Run the gateway. Settings come from the environment (see docs/configuration.md; "
                    "`voice-gateway check-config` validates them); a provider with neither an API key "
                    "nor a base URL runs against an in-process fake of that provider.")
    s.add_argument("--host", help="address to bind (default: VG_HOST, else 127.0.0.1); any non-loopback "
                                  "address makes client tokens mandatory")
    s.add_argument("--port", type=int, help="TCP port to listen on (default: VG_PORT, else 8080)")
    s.add_argument("--ssl-certfile", metavar="PEM",
                   help="serve TLS (https:// and wss://) with this certificate chain; needs --ssl-keyfile")
    s.add_argument("--ssl-keyfile", metavar="PEM", help="private key for --ssl-certfile")
    s.set_defaults(func=_serve)

    names = [*__import__("providers.registry", fromlist=["_"]).PROVIDER_NAMES, "groq", "minimax", "openrouter",
             "anthropic"]
    spelled = "|".join(name.replace("_", "-") for name in names)  # openai-live, as on a command line
    f = sub.add_parser("fake-provider", help=f"run one fake provider server ({spelled})",
                       description="Run one fake provider on its real URL paths; the official SDKs "
                                   "connect to it. It speaks the DTMF dialect: digits in the audio are words.",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=FAULTS_HELP)
    # groq, minimax, openrouter, anthropic: REST only (the chains); openai/deepgram also serve their REST API
    # on the same port
    f.add_argument("provider", choices=names, metavar=f"{{{spelled}}}", type=lambda name: name.replace("-", "_"),
                   help="which provider to imitate")
    f.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    f.add_argument("--port", type=int, required=True, help="TCP port to listen on (0 = any free port)")
    f.add_argument("--api-key", help="the only key the fake accepts (default: any key)")
    f.add_argument("--tls-cert", metavar="PEM", help="serve wss:// with this certificate")
    f.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    f.add_argument("--faults", metavar="SPEC", help="faults to inject per connection, e.g. "
                   "'1:drop,audio_bytes=16000;2:refuse,status=503' (grammar below)")
    f.add_argument("--speech", action="store_true",
                   help="recognise plain English speech and answer in synthesized speech (PocketSphinx, "
                        "eSpeak NG, offline) instead of echoing it")
    f.add_argument("--seed", type=int, default=0, help="seed for random faults (p=)")
    f.add_argument("--rest-faults", metavar="SPEC", help="HTTP faults of the REST side (openai/deepgram; groq "
                   "takes them as --faults) by request number: REQ:KIND[,key=value] with REQ N, N-M or *, KIND "
                   "status (status=400..599, retry_after=S), delay (ms=N), stall, malformed or reset; e.g. "
                   "'1:status,status=429,retry_after=2;2-4:status,status=503' (docs/chains.md)")
    f.set_defaults(func=lambda args: __import__("providers.fakes.rest_cli", fromlist=["_"]).run(args))

    t = sub.add_parser("token", help="mint a short-lived client token signed with VG_CLIENT_TOKEN_SECRET")
    t.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    t.add_argument("--subject", default="client", help="who the token is for (its `sub` claim; default client)")
    t.add_argument("--allow-switch", action="store_true", help="the token may send provider.switch")
    t.set_defaults(func=lambda args: __import__("gateway.auth", fromlist=["run_token"]).run_token(args))

    c = sub.add_parser("check-config", help="validate the effective config and print it, secrets masked")
    c.set_defaults(func=lambda args: __import__("gateway.config_check", fromlist=["_"]).run_check_config(args))

    r = sub.add_parser("config-reference", help="print the configuration reference (docs/configuration.md)")
    r.add_argument("--write", metavar="FILE", help="write it to FILE instead of stdout")
    r.set_defaults(func=lambda args: __import__("gateway.settings_reference", fromlist=["_"]).run_config_reference(args))

    b = sub.add_parser("bench", help="load benchmark: gateway vs direct vs bare relay (benchmarks/load.py); "
                                     "`voice-gateway bench --help` lists its options")
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
