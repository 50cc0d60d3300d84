"""Load benchmark (docs/architecture.md): the gateway against a direct baseline and a bare relay.

    .venv/bin/python benchmarks/load.py [options]      (or: voice-gateway bench [options]; make bench)

Separate processes on loopback: the echo provider (benchmarks/echo_provider.py), the system under
test (the gateway: `voice-gateway serve`, one aiohttp.web process on uvloop; or the bare relay; or
nothing, for the direct baseline) and load generators (benchmarks/loadgen.py). On a 2-core machine
the server under test gets core 0 and everything else core 1, so the load does not steal the
gateway's CPU (the load generators and the fake then share a core: watch the `notes` column). Both
run on picows so that core outlasts the gateway's: on twilio-pcmu at 240–290 calls they took
0.21–0.23 % of a core per call together, the gateway about 0.3 %.

For each path and call count N: N calls stream 20 ms frames in real time for T seconds; each frame
carries a marker (benchmarks/marker.py) the fake echoes, so every reply is matched to its frame.
Reported per run: latency per direction (p50/p95/p99), added latency (gateway minus direct at the
same N), CPU seconds of the server process per call-minute and per frame, its peak RSS per call,
frames lost/duplicated/reordered; then a capacity search, whose answer is the gateway's capacity
only when the failing step had the gateway's core at ≥ 90 % (and the load core under 90 %: a saturated
load side puts its own queueing into the latency) and the machine's other tenants stayed
under --max-other-load-pct (steps measured on a busy machine are re-run, then reported as such); `--faults` instead runs the same load
with the fake dropping connections at random and reports reconnects, switches, frames and digits
lost. Output: a table on stdout and a JSON file. Figures are measured, never asserted.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import orjson  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.runner import BenchRunner, RunResult  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "load-latest.json"
CAPACITY_P99_MS = 20.0


@dataclass(frozen=True)
class PathSpec:
    """A way calls reach the provider through the gateway, and the baseline protocol it compares to."""

    name: str
    kind: str  # loadgen call kind against the gateway: native | twilio
    provider: str
    baseline: str  # key of BASELINES
    transcoding: bool
    description: str
    formats: dict[str, Any] = field(default_factory=dict)  # native: in/out encoding and rate


PATHS = {
    "native": PathSpec("native", "native", "gemini", "gemini", False,
                       "native PCM16 16k in / 24k out ↔ Gemini 16k/24k (no transcoding)",
                       {"in_encoding": "pcm16", "in_rate": 16000, "out_encoding": "pcm16", "out_rate": 24000}),
    "native-8k": PathSpec("native-8k", "native", "gemini", "gemini", True,
                          "native PCM16 8k both ways ↔ Gemini (resampling 8k→16k and 24k→8k)",
                          {"in_encoding": "pcm16", "in_rate": 8000, "out_encoding": "pcm16", "out_rate": 8000}),
    "twilio": PathSpec("twilio", "twilio", "gemini", "gemini", True,
                       "Twilio μ-law 8k ↔ Gemini (μ-law + resampling both ways)"),
    "twilio-pcmu": PathSpec("twilio-pcmu", "twilio", "openai", "openai-pcmu", False,
                            "Twilio μ-law 8k ↔ OpenAI audio/pcmu (passthrough)"),
    "twilio-live": PathSpec("twilio-live", "twilio", "openai_live", "openai-live-pcmu", False,
                            "Twilio μ-law 8k ↔ GPT-Live audio/pcmu (passthrough)"),
    "native-live": PathSpec("native-live", "native", "openai_live", "openai-live-pcm", False,
                            "native PCM16 24k both ways ↔ GPT-Live audio/pcm 24k (no transcoding)",
                            {"in_encoding": "pcm16", "in_rate": 24000, "out_encoding": "pcm16", "out_rate": 24000}),
}
BASELINES = {"gemini": {"kind": "gemini"}, "openai-pcmu": {"kind": "openai", "g711": True},
             "openai-live-pcmu": {"kind": "openai_live", "g711": True}, "openai-live-pcm": {"kind": "openai_live"}}
# direct: the load generator talks to the fake; relay: through the bare aiohttp relay (the floor a
# Python relay reaches, on aiohttp's server as the gateway is since issue 19); stack: through a relay on
# uvicorn+starlette (the ASGI stack the gateway ran on before issue 19; benchmarks/relay_asgi.py); floor:
# the bare relay with frames relayed in aiohttp's parser callback, no coroutine per message
# (benchmarks/relay_floor.py: how low a Python gateway on aiohttp could go; opt-in).
BASELINE_TARGETS = ("direct", "relay", "stack", "floor")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="voice-gateway bench", description=__doc__.split("\n")[0])
    p.add_argument("--paths", default="native,twilio,twilio-pcmu",
                   help=f"comma-separated, of: {', '.join(PATHS)} (native PCM16 ↔ Gemini; Twilio μ-law ↔ "
                        "Gemini, transcoded; Twilio μ-law ↔ OpenAI audio/pcmu, passed through)")
    p.add_argument("--calls", default="10,50,100", help="concurrent call counts to measure")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of streaming per run (≤ 80)")
    p.add_argument("--targets", default="direct,relay,stack,gateway",
                   help="direct (no server), relay (bare aiohttp, the gateway's server stack), "
                        "stack (relay on uvicorn+starlette, the ASGI baseline), floor (the bare relay "
                        "relaying in aiohttp's parser callback: the floor of a Python gateway on aiohttp), "
                        "gateway")
    p.add_argument("--capacity", action=argparse.BooleanOptionalAction, default=True,
                   help="search the largest N with p99 added latency ≤ 20 ms and nothing lost")
    p.add_argument("--capacity-paths", default="twilio-pcmu,twilio",
                   help="paths to search (those measured in this run)")
    p.add_argument("--capacity-start", type=int, default=150, help="first N the capacity search tries")
    p.add_argument("--capacity-max", type=int, default=600, help="largest N the capacity search tries")
    p.add_argument("--capacity-duration", type=float, default=5.0, help="seconds per capacity probe")
    p.add_argument("--faults", action="store_true", help="run the fault mode instead of the comparison")
    p.add_argument("--fault-calls", type=int, default=20, help="concurrent calls in --faults mode")
    p.add_argument("--fault-duration", type=float, default=20.0, help="seconds per path in --faults mode")
    p.add_argument("--drop-min-s", type=float, default=3.0,
                   help="--faults: each provider connection is cut after U(min, max) seconds")
    p.add_argument("--drop-max-s", type=float, default=9.0, help="see --drop-min-s")
    p.add_argument("--seed", type=int, default=1, help="seed for the random drops of --faults")
    p.add_argument("--calls-per-loadgen", type=int, default=150,
                   help="calls per load-generator process (one costs ~0.14 %% of a core per call on "
                        "twilio-pcmu; more processes spread over several --load-cpus)")
    p.add_argument("--server-cpus", default="0", help="cores for the server under test ('' = no pinning)")
    p.add_argument("--load-cpus", default="1", help="cores for the load generators and the echo fake; with several, load generators "
                        "take them in turn (one per process), so the callers are not one core's worth")
    p.add_argument("--baseline-checkout", type=Path,
                   help="another checkout of the gateway (e.g. `git archive main | tar -x -C DIR`): its gateway "
                        "runs as target gateway-base next to ours at every N, so a change is measured "
                        "before/after in one run (gateway rows get cpu_vs_base)")
    p.add_argument("--max-other-load-pct", type=float, default=25.0,
                   help="a run counts only when processes other than the benchmark's used at most this much "
                        "CPU (%% of one core) over its window; the capacity search re-runs a busy step and "
                        "reports when it could not get a quiet one")
    p.add_argument("--capacity-retries", type=int, default=2,
                   help="re-runs of a capacity step measured while the machine was busy")
    p.add_argument("--profile-native", action="store_true",
                   help="as --profile, but py-spy --native (C frames and syscalls too; it pauses the server for "
                        "each sample, so the run's own figures are not comparable): "
                        "`python -m benchmarks.profile_summary --native` splits the CPU into user space and syscalls")
    p.add_argument("--profile", action="store_true",
                   help="py-spy record the relay and the gateway at the largest N (WORKDIR/*-pyspy.txt)")
    p.add_argument("--rounds", type=int, default=1, help="every target this many times at each N, interleaved: "
                   "a row is the median round, its ratios the rounds' median ratios (runs drift 10-20 %%)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results as JSON")
    p.add_argument("--workdir", type=Path, help="logs and raw data (default: a temporary directory)")
    p.add_argument("--smoke", action="store_true",
                   help="a few seconds, a handful of calls, native path only, no capacity search")
    args = p.parse_args(argv)
    if args.smoke:
        args.paths, args.calls, args.duration, args.capacity = "native", "4", 2.0, False
        args.fault_calls, args.fault_duration = min(args.fault_calls, 4), min(args.fault_duration, 8.0)
    if not 1 <= args.duration <= 80 or not 1 <= args.capacity_duration <= 80:
        p.error("--duration and --capacity-duration must be within 1..80 s (the marker counts 4096 frames)")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def _cpus(text: str) -> set[int] | None:
    return {int(c) for c in text.split(",") if c.strip()} or None


def twilio_available() -> bool:
    from gateway.app import create_app, route_paths
    from gateway.config import Settings

    return "/v1/twilio" in route_paths(create_app(Settings()))


def compare(runner: BenchRunner, args: argparse.Namespace, paths: list[PathSpec]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    targets = [t.strip() for t in args.targets.split(",")]
    counts = [int(c) for c in args.calls.split(",")]
    for n in counts:
        # py-spy the relay and the gateway at the top load (the first round)
        profile = ("native" if args.profile_native else "python" if args.profile else "") if n == max(counts) else ""
        rounds = [_round(runner, args, paths, targets, n, profile if r == 0 else "") for r in range(args.rounds)]
        merged = report.median_of_rounds(rounds) if len(rounds) > 1 else rounds[0]
        rows.extend(merged)
        print(report.table(merged), flush=True)
    return rows


def _round(runner: BenchRunner, args: argparse.Namespace, paths: list[PathSpec], targets: list[str], n: int,
           profile: str) -> list[dict[str, Any]]:
    """Every target once at N, the baselines first; ratios within the round."""
    rows: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, RunResult | None]] = {}
    for b in dict.fromkeys(p.baseline for p in paths):
        base = baselines[b] = {t: runner.run(t, BASELINES[b], n, args.duration, profile=profile if t != "direct" else "")
                               if t in targets else None for t in BASELINE_TARGETS}
        for target, res in base.items():
            if res is not None:
                rows.append(report.row(res.figures, f"{b} (baseline)", target, _figures(base)))
    if "gateway" in targets:
        for ps in paths:
            before = None
            if args.baseline_checkout is not None:  # the checkout before the change, same N, same run
                before = runner.run("gateway-base", ps_spec(ps), n, args.duration, profile=profile)
                rows.append(report.row(before.figures, ps.name, "gateway-base", _figures(baselines[ps.baseline])))
            res = runner.run("gateway", ps_spec(ps), n, args.duration, profile=profile)
            rows.append(report.row(res.figures, ps.name, "gateway", _figures(baselines[ps.baseline]),
                                   before.figures if before is not None else None))
    return rows


def _figures(base: dict[str, RunResult | None]) -> dict[str, dict[str, Any]]:
    return {t: r.figures for t, r in base.items() if r is not None}


def ps_spec(ps: PathSpec) -> dict[str, Any]:
    return {"kind": ps.kind, "provider": ps.provider, **ps.formats}


def _worst(add: dict[str, dict[str, float | None]], pct: str) -> float:
    return max((d[pct] for d in add.values() if d.get(pct) is not None), default=math.inf)


def structural_delay_ms(rows: list[dict[str, Any]], path: str) -> float:
    """The smallest added median latency of `path` over the call counts measured, when it is over
    half the capacity bound: a delay built into the path (present at every load; the smallest, so a
    run disturbed by other processes does not inflate it, and only runs of our gateway measured on a
    quiet machine); else 0."""
    medians = [_worst(r["added"], "p50") for r in rows
               if r["path"] == path and r["target"] == "gateway" and r.get("added") and r.get("quiet", True)]
    median = min(medians, default=0.0)
    return median if CAPACITY_P99_MS / 2 < median < math.inf else 0.0


def capacity(runner: BenchRunner, args: argparse.Namespace, ps: PathSpec, structural_ms: float = 0.0
             ) -> dict[str, Any]:
    """Grow N by ×1.5 until a run fails the criterion, then bisect once or twice. A step measured
    while other processes took more than --max-other-load-pct is re-run; still busy, the search stops
    and reports no figure (`stopped`). A figure is the gateway's (`valid`) only when the failing step
    had the gateway's core at ≥ 90 % and the load core under 90 %; otherwise `limit` says what failed
    first (`load`, `gateway and load`, or latency/loss below saturation).

    A path with a structural delay (see structural_delay_ms) meets the bound at no load at all:
    that is reported, and the search counts the bound on top of that delay, so the CPU limit is
    still found."""
    steps: list[dict[str, Any]] = []
    busy: list[int] = []  # the step no quiet run could be had for (it stops the search)

    def measure(n: int) -> tuple[RunResult, RunResult]:
        """A direct and a gateway run at N, both quiet (other tenants ≤ the threshold), re-run up to
        --capacity-retries times; the last pair is returned either way and the step marked."""
        for attempt in range(args.capacity_retries + 1):
            direct = runner.run("direct", BASELINES[ps.baseline], n, args.capacity_duration)
            gw = runner.run("gateway", ps_spec(ps), n, args.capacity_duration)
            if direct.figures.get("quiet", True) and gw.figures.get("quiet", True):
                break
            print(f"capacity {ps.name} N={n}: machine busy (other processes "
                  f"{max(direct.figures['other_processes_cpu_pct'], gw.figures['other_processes_cpu_pct']):.0f}% "
                  f"> {args.max_other_load_pct:g}%){'; re-running' if attempt < args.capacity_retries else ''}",
                  flush=True)
        return direct, gw

    def ok(n: int) -> bool:
        direct, gw = measure(n)
        add = report.added(gw.figures, direct.figures)
        worst = _worst(add, "p99")
        passed = (gw.figures["frames_lost"] == 0 and gw.figures["calls_failed"] == 0
                  and worst - structural_ms <= CAPACITY_P99_MS)
        quiet = bool(direct.figures.get("quiet", True) and gw.figures.get("quiet", True))
        if not quiet:
            busy.append(n)
            steps.append({"calls": n, "passed": None, "quiet": False, "direct": _brief(direct), "gateway": _brief(gw)})
            print(f"capacity {ps.name} N={n}: no quiet run after {args.capacity_retries + 1}: search stopped, "
                  f"no capacity figure from this machine now", flush=True)
            raise _MachineBusy(n)
        # what limited a failing step: the gateway's core (the figure we want), the load core, both (then
        # the load side's own queueing is in the latency: not the gateway's figure), or neither
        server_full, load_full = gw.figures.get("server_saturated"), gw.figures.get("load_saturated")
        limit = None if passed else ("gateway and load" if server_full and load_full else "gateway" if server_full
                                     else "load" if load_full else "latency/loss below saturation")
        steps.append({"calls": n, "passed": passed, "quiet": quiet, "limit": limit, "added_p99_ms": worst,
                      "direct": _brief(direct), "gateway": _brief(gw)})
        print(f"capacity {ps.name} N={n}: {'pass' if passed else 'FAIL'} (added p99 {worst:.2f} ms"
              f"{f' = {structural_ms:.1f} structural + {worst - structural_ms:.2f}' if structural_ms else ''}, "
              f"lost {gw.figures['frames_lost']}, gateway CPU {gw.figures['server_cpu_pct']:.0f}%, "
              f"load CPU {gw.figures['load_cpu_pct']:.0f}% + fake {gw.figures['fake_cpu_pct']:.0f}%, other {gw.figures['other_processes_cpu_pct']:.0f}%"
              f"{f', limit: {limit}' if limit else ''})", flush=True)
        return passed

    try:
        good, bad = _search(ok, args)
    except _MachineBusy:
        return {"path": ps.name, "criterion": f"p99 added latency ≤ {CAPACITY_P99_MS} ms both ways, 0 frames lost",
                "max_calls_passed": None, "first_failed": None, "steps": steps, "limit": None,
                "gateway_saturated_at_failure": False, "other_load_threshold_pct": args.max_other_load_pct,
                "busy_steps": busy, "valid": False, "stopped": f"machine busy at N={busy[-1]}"}
    failed_step = next((st for st in steps if st["calls"] == bad), None)
    limit = failed_step["limit"] if failed_step else None
    out = {"path": ps.name, "criterion": f"p99 added latency ≤ {CAPACITY_P99_MS} ms both ways, 0 frames lost",
           "max_calls_passed": good, "first_failed": bad, "searched_up_to": args.capacity_max, "steps": steps,
           "limit": limit, "gateway_saturated_at_failure": limit == "gateway",
           "other_load_threshold_pct": args.max_other_load_pct, "busy_steps": busy,
           # a capacity of the gateway only when the failing step had the gateway's core ≥ 90 % (every
           # counted step was measured on a quiet machine: a busy one stops the search)
           "valid": limit == "gateway"}
    if structural_ms:  # no N meets the bound as such: say so, and what the CPU allows on top of the delay
        out |= {"max_calls_passed": 0, "structural_added_ms": structural_ms, "max_calls_over_structural": good}
    return out


class _MachineBusy(Exception):
    """A capacity step could not be measured on a quiet machine."""


def _search(ok: Any, args: argparse.Namespace) -> tuple[int, int | None]:
    """Grow N by ×1.5 from --capacity-start until `ok(N)` fails, then bisect once or twice: (largest
    N passed, first N failed)."""
    good, bad, n = 0, None, args.capacity_start
    if not ok(n):  # below the start: halve until a pass (or 10 calls)
        bad = n
        while n > 10:
            n = max(10, n // 2)
            if ok(n):
                good = n
                break
            bad = n
    else:
        good, n = n, int(n * 1.5)
        while n <= args.capacity_max:
            if not ok(n):
                bad = n
                break
            good, n = n, int(n * 1.5)
    for _ in range(2):
        if bad is None or bad - good <= max(10, good // 10):
            break
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, bad


def _brief(res: RunResult) -> dict[str, Any]:
    f = res.figures
    return {k: f.get(k) for k in ("uplink_ms", "downlink_ms", "frames_lost", "server_cpu_pct", "load_cpu_pct",
                                  "fake_cpu_pct", "other_processes_cpu_pct", "quiet", "server_saturated",
                                  "load_saturated", "send_lateness_ms", "notes")}


def faults(runner: BenchRunner, args: argparse.Namespace, paths: list[PathSpec]) -> list[dict[str, Any]]:
    rows = []
    for ps in paths:
        res = runner.run("gateway", {**ps_spec(ps), "fallback": ["gemini", "openai"], "digits": True},
                         args.fault_calls, args.fault_duration, drain_s=5.0)
        f = res.figures
        rows.append({"path": ps.name, **f})
        d = f.get("digits", {})
        print(f"faults {ps.name}: {f['calls']} calls × {args.fault_duration:g} s: provider connections "
              f"{f['provider_connections']}, reconnects {f.get('gateway_reconnects')}, switches "
              f"{f.get('gateway_switches')}, frames lost {f['frames_lost']}/{f['frames_sent']}, duplicates "
              f"{f['duplicates_client']}, digits lost {d.get('lost')}/{d.get('sent')} (duplicated "
              f"{d.get('duplicated')})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import picows  # noqa: F401 - the load generators and the echo fake run on it
    except ImportError:
        print("the load benchmark needs the bench extra: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    selected = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in selected if p not in PATHS]
    if unknown:
        print(f"unknown path(s): {', '.join(unknown)}; known: {', '.join(PATHS)}", file=sys.stderr)
        return 2
    has_twilio = twilio_available()
    paths = [PATHS[p] for p in selected if has_twilio or PATHS[p].kind != "twilio"]
    skipped = [p for p in selected if PATHS[p] not in paths]
    if skipped:
        print(f"skipping {', '.join(skipped)}: the gateway has no /v1/twilio yet", flush=True)
    if not paths:
        print("nothing to run", file=sys.stderr)
        return 2
    started = time.time()
    out: dict[str, Any] = {"version": 1, "started_unix": round(started), "host": _host_info(),
                           "args": {k: str(v) for k, v in vars(args).items()}, "skipped_paths": skipped,
                           "paths": {p.name: p.description for p in paths}}
    with BenchRunner(server_cpus=_cpus(args.server_cpus), load_cpus=_cpus(args.load_cpus),
                     calls_per_loadgen=args.calls_per_loadgen, workdir=args.workdir,
                     baseline_repo=args.baseline_checkout.resolve() if args.baseline_checkout else None,
                     max_other_pct=args.max_other_load_pct,
                     fake_args=_fake_args(args) if args.faults else []) as runner:
        out["workdir"] = str(runner.workdir)
        if args.faults:
            out["faults"] = faults(runner, args, paths)
        else:
            out["runs"] = rows = compare(runner, args, paths)
            print("\n" + report.table(rows), flush=True)
            if args.capacity:
                out["capacity"] = []
                for cap in [PATHS[p] for p in args.capacity_paths.split(",") if PATHS.get(p) in paths]:
                    c = capacity(runner, args, cap, structural_delay_ms(rows, cap.name))
                    out["capacity"].append(c)
                    extra = (f" (structural +{c['structural_added_ms']:.1f} ms at any load; on top of it "
                             f"{c['max_calls_over_structural']} calls)" if "structural_added_ms" in c else "")
                    why = ("the gateway's core saturated: a gateway capacity" if c["valid"] else
                           f"NOT a gateway capacity: {c['stopped']} (other processes over "
                           f"{args.max_other_load_pct:g}% of a core)" if c.get("stopped") else
                           f"NOT a gateway capacity: limit {c['limit']}")
                    if c.get("stopped"):
                        print(f"capacity ({cap.name}): no figure: {why}", flush=True)
                    else:
                        print(f"capacity ({cap.name}): {c['max_calls_passed']} calls pass{extra}; first failing "
                              f"N: {c['first_failed']} ({why})", flush=True)
    out["elapsed_s"] = round(time.time() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"JSON: {args.json}  (logs: {out['workdir']}; {out['elapsed_s']} s)", flush=True)
    return 0


def _fake_args(args: argparse.Namespace) -> list[str]:
    return ["--drop-min-s", str(args.drop_min_s), "--drop-max-s", str(args.drop_max_s), "--seed", str(args.seed),
            "--digits"]


def _host_info() -> dict[str, Any]:
    from benchmarks.procs import cpu_count

    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}


def fetch(url: str, timeout_s: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.read()


if __name__ == "__main__":
    sys.exit(main())
