"""Which instructions on the per-frame path Python 3.11's specialising interpreter could not specialise.

    .venv/bin/python benchmarks/specialisation.py [--n 2000]

CPython 3.11 rewrites a hot instruction into a specialised form (an attribute read at a known offset,
a method call without a lookup...). Where it cannot, the instruction stays generic (`*_ADAPTIVE`):
a full lookup every time, at 100 calls two to five times the cost. What defeats it, as found on this
path (benchmarks/PROFILE.md, "Issue 19, fourth session"):
- a class with `__getattr__` (no attribute of its instances is specialised);
- a property, a class attribute read through an instance, a `staticmethod` called through an instance,
  a named-tuple field, a Cython property;
- calling a callable stored in an instance attribute as `self.f()` (a method lookup that finds no
  method): `f = self.f; f()` is specialised;
- an instance with more than 30 attributes: it gets a dict of its own, whose method lookups are not
  specialised across the instances of many calls (`ProviderLink` has slots for this reason).

This drives the two load-benchmark paths as benchmarks/frame_path.py does (its worker: the real
connection, session, link and sink objects, sockets stubbed), then traces one more burst to find the
lines run on every frame, and prints the generic instructions on them. The check is per line: a line
run per frame can hold a sub-expression that is not (`a or b`), and some instructions have no
specialised form on 3.11 (a deque subscript, float-int arithmetic), so read the list, do not count it.
"""

from __future__ import annotations

import argparse
import collections
import dis
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.frame_path import WORKER  # noqa: E402

_CASES = (("twilio-pcmu up", "up"), ("twilio-pcmu down", "down"), ("native up", "nup"), ("native down", "ndown"))


def _ours(path: str) -> bool:
    return path.startswith(str(REPO)) and "/benchmarks/" not in path


def _generic_on_hot_lines(name: str, counts: collections.Counter[tuple[int, int]],
                          codes: dict[int, types.CodeType], n: int) -> list[str]:
    out = []
    for key, co in codes.items():
        line = None
        for ins in dis.get_instructions(co, adaptive=True):  # type: ignore[call-arg]
            line = ins.starts_line or line
            if ins.opname.endswith("_ADAPTIVE") and not ins.opname.startswith(("CALL", "PRECALL")) \
                    and counts[(key, line or 0)] >= n:
                where = f"{Path(co.co_filename).relative_to(REPO)}:{line}"
                out.append(f"  {where:<42} {co.co_qualname:<50} {ins.opname[:-9]} {ins.argrepr}")
    return [f"{name}:"] + (sorted(set(out)) or ["  (none)"])


def _traced(n: int) -> Any:
    """An async function that runs a burst under a line tracer and prints the generic instructions."""

    async def trace(name: str, burst: Any) -> None:
        await burst()  # warm: every instruction specialises (or gives up) before the look
        counts: collections.Counter[tuple[int, int]] = collections.Counter()
        codes: dict[int, types.CodeType] = {}

        def on_call(frame: types.FrameType, event: str, arg: Any) -> Any:
            co = frame.f_code
            if not _ours(co.co_filename):
                return None
            codes[id(co)] = co

            def on_line(frame: types.FrameType, event: str, arg: Any) -> Any:
                if event == "line":
                    counts[(id(co), frame.f_lineno)] += 1
                return on_line
            return on_line

        sys.settrace(on_call)
        try:
            await burst()
        finally:
            sys.settrace(None)
        print("\n".join(_generic_on_hot_lines(name, counts, codes, n)))

    return trace


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000, help="frames per burst")
    args = p.parse_args()
    if sys.version_info[:2] != (3, 11):
        print(f"this reads CPython 3.11's specialised instructions; this is {sys.version.split()[0]}")
        return 2
    worker = WORKER.replace("asyncio.run(main())", "")
    for case, burst in _CASES:
        timed = f'    out["{case}"] = min([await timed({burst}) for _ in range(3)])'
        if timed not in worker:
            raise SystemExit(f"benchmarks/frame_path.py's worker changed: no line {timed.strip()!r}")
        worker = worker.replace(timed, f'    await trace("{case}", {burst})')
    worker = worker.replace("    print(json.dumps(out))", "")
    sys.argv = ["frame_path", str(args.n)]
    namespace: dict[str, Any] = {"__name__": "frame_path_worker", "trace": _traced(args.n)}
    exec(compile(worker + "\nasyncio.run(main())\n", "frame_path worker", "exec"), namespace)  # noqa: S102
    return 0


if __name__ == "__main__":
    sys.exit(main())
