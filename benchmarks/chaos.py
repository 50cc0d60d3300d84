"""Chaos: many concurrent calls across all five live providers while the fakes inject faults and an
operator switches calls at random; reports words lost (by cause) and duplicated, sessions crashed,
how every outage ended, operator switches by outcome, and breaker transitions against the expected
ones (not part of `make test`). How to read the report: docs/audit.md "Chaos".

    nice -n 10 .venv/bin/python -m benchmarks.chaos --calls 40 --seconds 60
    nice -n 10 .venv/bin/python -m benchmarks.chaos --calls 10 --seconds 20      # smoke

Calls, in turn: Gemini Live, OpenAI Realtime, GPT-Live (`openai_live`), the Deepgram Voice Agent
(`deepgram`, which means the agent) and Deepgram streaming STT (`deepgram` with
`provider_options.deepgram.mode = "transcribe"`); each call's fallback list is the other providers.
The fakes run one process per origin (benchmarks/fakes_server.py; GPT-Live on OpenAI's origin).

Faults (seeded; the fakes' fault injection, per provider connection number): TCP abort (`drop`),
close 1011, handshake refused with 429 (Retry-After 1) or 503, `stall` (the provider stops reading
and writing), Gemini `goaway`, and the others' planned close (`expire`: OpenAI session_expired,
GPT-Live session.closed, Deepgram's NET-0001 close, the agent's idle-timeout error). Mid-call faults
fire 6-20 s after the upgrade, past the 5 s early-failure window, so a drop is not itself a breaker
failure; no two refusals are adjacent connection numbers, so the connection that follows a refusal
is not refused by the schedule and every outage is recoverable: a breaker never sees 5 consecutive
failures, the expected breaker transitions are none, and any is reported as unexpected.

Operator switches: every `--switch-every-s`, one random live call is moved to another provider with
`POST /admin/sessions/{id}/switch` (the admin API is open on a loopback bind without a token); a 409
is counted with the reason the gateway gives (the target's breaker open, the target refused or timed
out, the call ended meanwhile).

Words: see benchmarks/calls.py (DTMF words; lost = sent, never heard) and benchmarks/loss_causes.py
(each lost word's cause).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from benchmarks.calls import CallResult, run_call, summarize  # noqa: E402
from benchmarks.loss_causes import attribute  # noqa: E402
from benchmarks.procs import REPO, UNHANDLED, free_port, start_fakes, start_gateway_probe  # noqa: E402

# (label, provider asked for, provider_options): the five live providers
CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("gemini", "gemini", None), ("openai", "openai", None), ("openai_live", "openai_live", None),
    ("deepgram_agent", "deepgram", None), ("deepgram", "deepgram", {"deepgram": {"mode": "transcribe"}})]
FAKES = ["gemini", "openai", "openai_live", "deepgram", "deepgram_agent"]  # fault specs, one per fake
FALLBACK = ["gemini", "openai", "openai_live", "deepgram"]  # `deepgram`: the agent, or the STT in transcribe mode
SWITCH_TARGETS = ["gemini", "openai", "openai_live", "deepgram_agent", "deepgram"]
# the per-connection rate ceilings are not under test here (tests/e2e/test_client_limits.py is); a
# load generator starved by a busy machine catches up in bursts that would trip them
NO_CEILINGS = {"VG_MAX_FRAMES_PER_S": "100000", "VG_MAX_BYTES_PER_S": "64000000"}
_TRANSITION = re.compile(r'^circuit_breaker_state_transitions_total\{([^}]*)\} ([0-9.e+]+)$', re.MULTILINE)


def fault_specs(rng: random.Random, connections: int, rate: float) -> tuple[dict[str, str], Counter[str]]:
    """A fault SPEC per provider for connection numbers 1..connections, and how many of each kind."""
    specs: dict[str, str] = {}
    kinds: Counter[str] = Counter()
    for provider in FAKES:
        rules: list[str] = []
        last_refused = -10
        for n in range(2, connections + 1):
            if rng.random() >= rate:
                continue
            choices = ["drop", "close", "refuse429", "refuse503", "stall"]
            choices += ["goaway"] if provider == "gemini" else ["expire"]
            kind = rng.choice(choices)
            at = f"seconds={rng.uniform(6, 20):.1f}"
            if kind.startswith("refuse"):
                if n - last_refused <= 1:
                    continue
                last_refused = n
                status = kind[-3:]
                rules.append(f"{n}:refuse,status={status}" + (",retry_after=1" if status == "429" else ""))
            elif kind == "close":
                rules.append(f"{n}:close,code=1011,{at}")
            elif kind == "goaway":
                rules.append(f"{n}:goaway,time_left=3,{at}")
            else:
                rules.append(f"{n}:{kind},{at}")
            kinds[f"{provider}:{kind}"] += 1
        specs[provider] = ";".join(rules)
    return specs, kinds


def transitions(base: str) -> Counter[str]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: Counter[str] = Counter()
    for labels, value in _TRANSITION.findall(text):
        d = dict(part.split("=", 1) for part in labels.split(","))
        d = {k: v.strip('"') for k, v in d.items()}
        if float(value):
            out[f"{d['provider']}:{d['from_state']}->{d['to_state']}"] += int(float(value))
    return out


async def operator(base: str, deadline: float, every_s: float, rng: random.Random, log: Counter[str]) -> None:
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            await asyncio.sleep(every_s)
            try:
                async with http.get(f"{base}/admin/sessions") as r:
                    sessions = [s for s in (await r.json())["sessions"] if s["state"] == "active"]
                if not sessions:
                    continue
                s = rng.choice(sessions)
                target = rng.choice([p for p in SWITCH_TARGETS if p != s["provider"]])
                async with http.post(f"{base}/admin/sessions/{s['id']}/switch", json={"provider": target}) as r:
                    body = await r.json()
                    if r.status == 409:  # an expected refusal: the reason says which
                        log[f"refused_409:{body.get('reason')}"] += 1
                    else:
                        log[f"status_{r.status}"] += 1
            except (aiohttp.ClientError, OSError, KeyError, ValueError) as e:
                log[f"error_{type(e).__name__}"] += 1


async def drive(args: argparse.Namespace, port: int) -> tuple[list[CallResult], Counter[str]]:
    rng = random.Random(args.seed)
    url = f"ws://127.0.0.1:{port}/v1/voice"
    deadline = time.monotonic() + args.seconds + 10
    ops: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        async def call(i: int) -> CallResult:
            await asyncio.sleep(i * args.ramp_s / args.calls)
            label, provider, options = CALLS[i % len(CALLS)]
            fallback = [p for p in FALLBACK if p != provider]
            return await run_call(http, url, provider=provider, fallback=fallback, options=options, label=label,
                                  duration_s=args.seconds, rng=random.Random(rng.random()))

        op = asyncio.create_task(operator(f"http://127.0.0.1:{port}", deadline, args.switch_every_s,
                                          random.Random(args.seed + 1), ops))
        results = await asyncio.gather(*(call(i) for i in range(args.calls)))
        op.cancel()
    return list(results), ops


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--ramp-s", type=float, default=5.0)
    p.add_argument("--fault-rate", type=float, default=0.35, help="share of provider connections given a fault")
    p.add_argument("--switch-every-s", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=str(REPO / "test-artifacts" / "chaos"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs, kinds = fault_specs(random.Random(args.seed), connections=args.calls * 4, rate=args.fault_rate)
    (out / "faults.json").write_text(orjson.dumps(specs, option=orjson.OPT_INDENT_2).decode())
    fakes = start_fakes(log_path=out / "fakes.log", faults=specs, seed=args.seed, split=True)
    port = free_port()
    gw = start_gateway_probe(port=port, fakes=fakes, samples=out / "samples.jsonl", interval_s=10.0,
                             log_path=out / "gateway.log", extra_env={"VG_LOG_LEVEL": "INFO", **NO_CEILINGS})
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        before = transitions(base)
        results, ops = asyncio.run(drive(args, port))
        after = transitions(base)
    finally:
        gw.stop()
        fakes.stop()
    gateway_log = (out / "gateway.log").read_text(errors="replace")
    report = {
        "command": " ".join(sys.argv), "elapsed_s": round(time.monotonic() - started, 1),
        "faults_scheduled": dict(sorted(kinds.items())),
        "operator_switches": dict(ops),
        "breaker_transitions": dict(after - before), "breaker_transitions_expected": {},
        "unhandled_exceptions_in_log": sum(gateway_log.count(m) for m in UNHANDLED)
        + gateway_log.count('"event":"link.crashed"'),
        "error_lines_in_log": gateway_log.count('"level":"ERROR"'),
        "calls": {**summarize(results), **attribute(results)},
        "per_provider_start": {label: {**summarize(rs), **attribute(rs)} for label, *_ in CALLS
                               if (rs := [r for r in results if r.provider == label])},
    }
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    (out / "report.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
