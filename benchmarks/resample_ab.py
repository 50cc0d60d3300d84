"""The resampler of two checkouts in one process, alternately: per-frame µs before/after.

    .venv/bin/python benchmarks/resample_ab.py --base DIR [--rounds 15]

DIR is another checkout; its audio/resample.py is loaded beside ours (it imports only numpy and
audio.errors/audio.formats). Both streams get the same 20 ms frames of noise, alternately, and must
give the same bytes; best of `--rounds` × 3 × 200 frames per side.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import timeit
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import numpy as np  # noqa: E402

import audio.resample as ours  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    spec = importlib.util.spec_from_file_location("base_resample", args.base / "audio" / "resample.py")
    assert spec is not None and spec.loader is not None
    base = importlib.util.module_from_spec(spec)
    sys.modules["base_resample"] = base
    spec.loader.exec_module(base)
    rng = np.random.default_rng(1)
    for a, b in ((8000, 16000), (24000, 8000), (16000, 24000), (24000, 16000)):
        frame = (rng.standard_normal(a // 50) * 3000).astype("<i2").tobytes()
        sb, so = base.ResampleStream(a, b), ours.ResampleStream(a, b)
        if sb.process(frame * 3) != so.process(frame * 3):
            print(f"{a}->{b}: outputs differ")
        best = {"base": float("inf"), "ours": float("inf")}
        for _ in range(args.rounds):
            for name, s in (("base", sb), ("ours", so)):
                t = min(timeit.repeat(lambda s=s, f=frame: s.process(f), number=200, repeat=3)) / 200 * 1e6
                best[name] = min(best[name], t)
        print(f"{a}->{b}: base {best['base']:.2f} µs, ours {best['ours']:.2f} µs, "
              f"ours/base {best['ours'] / best['base']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
