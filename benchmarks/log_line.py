"""Cost of one JSON log line (gateway/logs.py): log_event → JsonFormatter → a stream that discards.

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/log_line.py [--number 3000] [--repeat 7]

Lines: the one every refused over-limit telephony frame logs (`telephony.bad_input`, nothing
secret-shaped in it), a provider line with ordinary fields, and a line carrying a bearer header and a
registered key (the redaction must still mask them; printed so a run shows it). Two API keys are
registered first, as the config does in production. Best of `--repeat` runs, µs per line. Point
PYTHONPATH at two checkouts (the baseline from `git archive`) and run them back to back to compare.
"""

import argparse
import io
import logging
import sys
import timeit
from pathlib import Path

# Run as a script, drop this directory (benchmarks/audio.py would shadow the audio package); the
# checkout under test comes from PYTHONPATH.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from gateway.logs import configure_logging, log_context, log_event, register_secret  # noqa: E402

KEY = "AIzaSyD-bench-0123456789abcdefghijklmno"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--number", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    register_secret(KEY)
    register_secret("sk-proj-benchbenchbench0123456789")
    stream = io.StringIO()
    configure_logging("INFO", stream)
    log = logging.getLogger("gateway.clients.telephony")
    sid = "s_0f3c2a9b7d114e6b"

    def refused() -> None:
        log_event(log, logging.WARNING, "telephony.bad_input",
                  "message of 70000 bytes is over the 65536-byte limit", client="twilio",
                  code="message_too_big", session_id=sid)

    def ordinary() -> None:
        log_event(log, logging.INFO, "provider.connected", "gemini link up in 41 ms", provider="gemini",
                  elapsed_ms=41.2, attempt=1, url="wss://generativelanguage.googleapis.com/ws/x")

    def secret() -> None:
        log_event(log, logging.WARNING, "provider.rejected", f"upgrade refused; sent Authorization: Bearer "
                  f"{KEY}", headers={"x-goog-api-key": KEY}, provider="gemini")

    with log_context(session_id=sid):
        for name, fn in (("refused frame (no secret)", refused), ("ordinary provider line", ordinary),
                         ("line with a bearer header and a key", secret)):
            best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
            print(f"{best * 1e6:8.2f} µs/line  {name}")
    last = stream.getvalue().splitlines()[-1]
    print("masked:", KEY not in stream.getvalue(), last[:160])
    return 0


if __name__ == "__main__":
    sys.exit(main())
