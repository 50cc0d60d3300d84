"""Summarise a py-spy `--format raw` profile (collapsed stacks) of the gateway.

    python -m benchmarks.profile_summary WORKDIR/RUN-pyspy.txt [--frames 50000] [--top 25] [--match gateway/]

Prints the share of samples per source file (self time: where the CPU actually was), then per
function on the stack (inclusive) and at the top (self). With `--cpu-s` (process CPU seconds during
the profile) and `--frames` (frames relayed meanwhile; both are in the run's JSON) each share is
also shown as CPU µs per frame. py-spy records only non-idle samples by default, so samples ∝ CPU.

`--native` reads a `load.py --profile-native` profile (py-spy --native: C frames included; it samples
at a fixed rate whatever the process does) and splits the time into what the kernel does for the
process (read/write/epoll syscalls, by the Python function that made them; epoll_wait is idle time,
not CPU) and user space (by module and by function, C code charged to the Python function that
called it). With `--frames` and `--rate` each line is µs per frame. This is how the load benchmark's
gap between the gateway and the bare relay was split: the relay's CPU is mostly syscalls, the
gateway's extra is user-space Python (benchmarks/PROFILE.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

_LOCATION = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _samples(path: Path) -> Iterator[tuple[list[str], int]]:
    """Each collapsed stack of a py-spy `--format raw` file: its frames (root first) and its count."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def parse(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    total = 0
    for raw, n in _samples(path):
        total += n
        frames = [_name(f) for f in raw]
        for f in set(frames):
            inclusive[f] += n
        self_time[frames[-1]] += n
        by_file[frames[-1].rpartition("(")[2].rstrip(")")] += n
    return inclusive, self_time, by_file, total


def _name(frame: str) -> str:
    m = _LOCATION.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for root in ("site-packages/", "lib/python3"):
        if root in file:
            file = file.split(root, 1)[1]
    return f"{m.group('func')} ({file})"


_SYSCALLS = {"epoll_pwait", "epoll_wait", "write", "read", "writev", "sendmsg", "recvmsg", "send", "recv"}


def native_split(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """(syscall time by call and Python caller, user time by module, user time by function, total)."""
    syscalls: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = 0
    for frames, n in _samples(path):
        total += n
        python = [_name(f) for f in frames if ".py:" in f or ".py)" in f]
        caller = python[-1] if python else "(no Python frame)"
        leaf = frames[-1].strip().split(" ", 1)[0]
        if leaf in _SYSCALLS:
            syscalls[f"{leaf} ← {caller}"] += n
            continue
        by_function[caller] += n
        by_module[caller.rpartition("(")[2].rstrip(")")] += n
    return syscalls, by_module, by_function, total


def _main_native(path: Path, frames: int | None, rate: float, top: int) -> int:
    syscalls, by_module, by_function, total = native_split(path)
    if not total:
        print("no samples", file=sys.stderr)
        return 1

    def cost(n: int) -> str:
        return f"{n / rate * 1e6 / frames:7.2f} µs/frame" if frames else f"{n:7d} samples"

    user = sum(by_module.values())
    idle = sum(n for k, n in syscalls.items() if k.startswith(("epoll_pwait ", "epoll_wait ")))
    print(f"{total} samples at {rate:g} Hz: user space {cost(user)}, syscalls {cost(sum(syscalls.values()) - idle)}, "
          f"idle in epoll {cost(idle)}")
    for title, counter in (("syscalls, by the Python function that made them", syscalls),
                           ("user space by module (C code charged to its Python caller)", by_module),
                           ("user space by function", by_function)):
        print(f"\n{title}:")
        for name, n in counter.most_common(top):
            print(f"{cost(n)}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("profile", type=Path)
    p.add_argument("--frames", type=int, help="frames relayed during the profile")
    p.add_argument("--cpu-s", type=float, help="CPU seconds of the process during the profile")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--match", default="", help="only functions whose name/file contains this")
    p.add_argument("--native", action="store_true", help="a --profile-native profile: user space vs syscalls")
    p.add_argument("--rate", type=float, default=400.0, help="--native: the sampling rate (load.py uses 400 Hz)")
    args = p.parse_args(argv)
    if args.native:
        return _main_native(args.profile, args.frames, args.rate, args.top)
    inclusive, self_time, by_file, total = parse(args.profile)
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples")
    per_sample_us = (args.cpu_s / total * 1e6) if args.cpu_s else None

    def cost(n: int) -> str:
        if per_sample_us is None or not args.frames:
            return ""
        return f"{n * per_sample_us / args.frames:7.1f} µs/frame"

    for title, counter in (("self time by file", by_file), ("inclusive (on the stack)", inclusive),
                           ("self (top of the stack)", self_time)):
        print(f"\n{title}: % of samples")
        shown = 0
        for func, n in counter.most_common():
            if args.match not in func:
                continue
            print(f"{100 * n / total:6.1f}%  {cost(n)}  {func}")
            shown += 1
            if shown >= args.top:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
