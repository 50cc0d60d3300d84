"""Kubernetes preStop hook: `python -m gateway.fleet.prestop --port 8080 --timeout 300`.

Kubernetes runs preStop *before* it sends SIGTERM, so the hook starts the drain itself (SIGTERM to
the gateway, PID 1 in the container: `/readyz` 503, the replica marked draining in Redis, new calls
refused) and then waits until the gateway has no active call, or the drain timeout. The kubelet's own
SIGTERM that follows finds nothing left to wait for. Exit status is always 0: a failing hook must not
turn a graceful stop into an abrupt one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request


def active_calls(port: int) -> int | None:
    """Calls the gateway still holds; None once it no longer answers (it has stopped)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            body = r.read()
    except urllib.error.HTTPError as e:  # 503 while draining still carries the body
        body = e.read()
    except (urllib.error.URLError, OSError):
        return None
    try:
        return int(json.loads(body).get("sessions", 0))
    except (ValueError, AttributeError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.fleet.prestop", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--timeout", type=float, default=30.0, help="the gateway's VG_DRAIN_TIMEOUT_S")
    p.add_argument("--pid", type=int, default=1, help="the gateway's process id (PID 1 in its container)")
    p.add_argument("--poll", type=float, default=1.0)
    args = p.parse_args(argv)
    try:
        os.kill(args.pid, signal.SIGTERM)
    except OSError as e:
        print(f"prestop: cannot signal pid {args.pid}: {e.strerror}", file=sys.stderr)
        return 0
    deadline = time.monotonic() + args.timeout + 5
    while time.monotonic() < deadline:
        calls = active_calls(args.port)
        if not calls:  # 0, or the gateway is gone
            return 0
        time.sleep(args.poll)
    return 0


if __name__ == "__main__":
    sys.exit(main())
