"""The resampler and converter of two checkouts in one process, alternately: per-frame µs before/after.

    .venv/bin/python benchmarks/resample_ab.py --base DIR [--rounds 15] [--calls 1]

DIR is another checkout; its audio/g711.py, resample.py and convert.py are loaded beside ours (they
import only numpy and audio.errors/audio.formats besides each other). Both sides get the same 20 ms
frames of noise, alternately; best of `--rounds` × 3 × 200 frames per side. With `--calls N`, each
side runs N streams and feeds them one frame each in turn, as a gateway with N calls does (each
stream's state is then cold in cache when its next frame comes). Printed besides: how far the two
outputs are apart (PCM16 LSBs, G.711 decoded first; audio/resample.py CHUNKING_MAX_ABS_DIFF).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # run as a script: repo root first

import numpy as np  # noqa: E402

import audio.convert as ours_convert  # noqa: E402
import audio.resample as ours_resample  # noqa: E402
from audio.formats import AudioFormat  # noqa: E402
from audio.g711 import alaw_decode, ulaw_decode, ulaw_encode  # noqa: E402

RESAMPLE_PAIRS = ((8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (16000, 24000), (24000, 16000))
CONVERT_PATHS = (("mulaw", 8000, "pcm16", 16000), ("pcm16", 24000, "mulaw", 8000),
                 ("mulaw", 8000, "pcm16", 24000), ("pcm16", 16000, "mulaw", 8000))


def load_base(base: Path) -> dict[str, ModuleType]:
    """The base checkout's audio.g711/resample/convert, each importing the others of the base."""
    names = ("g711", "resample", "convert")
    saved = {f"audio.{n}": sys.modules[f"audio.{n}"] for n in names if f"audio.{n}" in sys.modules}
    modules: dict[str, ModuleType] = {}
    try:
        for name in names:
            spec = importlib.util.spec_from_file_location(f"audio.{name}", base / "audio" / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[f"audio.{name}"] = module
            spec.loader.exec_module(module)
            modules[name] = module
    finally:
        sys.modules.update(saved)
    return modules


def apart(a: bytes, b: bytes, encoding: str) -> str:
    if a == b:
        return "same bytes"
    if len(a) != len(b):
        return f"LENGTHS DIFFER {len(a)} != {len(b)}"
    decode = {"mulaw": ulaw_decode, "alaw": alaw_decode}.get(encoding)
    x, y = (np.frombuffer(decode(v) if decode else v, dtype="<i2").astype(int) for v in (a, b))
    return f"max |diff| {np.abs(x - y).max()} in {(x != y).sum()} of {len(x)} samples"


def measure(make: dict[str, object], frame: bytes, rounds: int, calls: int) -> dict[str, float]:
    """Best µs per frame per side; `make[side]()` builds one stream's step function."""
    steps = {side: [build() for _ in range(calls)] for side, build in make.items()}  # type: ignore[operator]
    best = dict.fromkeys(make, float("inf"))
    for _ in range(rounds):
        for side, stream_steps in steps.items():
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(max(200 // calls, 1)):
                    for step in stream_steps:
                        step(frame)
                elapsed = time.perf_counter() - start
                best[side] = min(best[side], elapsed / (max(200 // calls, 1) * calls) * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--calls", type=int, default=1, help="streams per side, fed round-robin")
    args = p.parse_args(argv)
    base = load_base(args.base)
    rng = np.random.default_rng(1)

    def row(label: str, make: dict[str, object], frame: bytes, whole: bytes, out_encoding: str) -> None:
        outs = {side: build()(whole) for side, build in make.items()}  # type: ignore[operator]
        best = measure(make, frame, args.rounds, args.calls)
        print(f"{label:26} base {best['base']:6.2f} µs, ours {best['ours']:6.2f} µs, "
              f"ours/base {best['ours'] / best['base']:.2f}   ({apart(outs['base'], outs['ours'], out_encoding)})")

    print(f"µs per 20 ms frame, {args.calls} stream(s) per side, best of {args.rounds} rounds")
    for a, b in RESAMPLE_PAIRS:
        frame = (rng.standard_normal(a // 50) * 3000).astype("<i2").tobytes()
        make = {side: (lambda m=m, a=a, b=b: m.ResampleStream(a, b).process)
                for side, m in (("base", base["resample"]), ("ours", ours_resample))}
        row(f"resample {a // 1000}k → {b // 1000}k", make, frame, frame * 3, "pcm16")
    for src_enc, a, dst_enc, b in CONVERT_PATHS:
        pcm = (rng.standard_normal(a // 50) * 3000).astype("<i2").tobytes()
        frame = ulaw_encode(pcm) if src_enc == "mulaw" else pcm
        src, dst = AudioFormat(encoding=src_enc, sample_rate_hz=a), AudioFormat(encoding=dst_enc, sample_rate_hz=b)
        make = {side: (lambda m=m, src=src, dst=dst: m.FormatConverter(src, dst).convert)
                for side, m in (("base", base["convert"]), ("ours", ours_convert))}
        row(f"convert {src_enc} {a // 1000}k → {dst_enc} {b // 1000}k", make, frame, frame * 3, dst_enc)
    # A provider's reply chunks need not be 20 ms: sizes that never repeat (µs per chunk, 5-100 ms).
    pcm = (rng.standard_normal(2400) * 3000).astype("<i2").tobytes()
    chunks = [pcm[: 2 * int(n)] for n in rng.integers(120, 2400, 1000)]
    make = {side: (lambda m=m: _rotating(m.FormatConverter(AudioFormat(encoding="pcm16", sample_rate_hz=24000),
                                                           AudioFormat(encoding="mulaw", sample_rate_hz=8000)).convert,
                                         chunks))
            for side, m in (("base", base["convert"]), ("ours", ours_convert))}
    row("convert 24k → μ-law, 5-100 ms chunks", make, b"", b"", "mulaw")  # compares the first chunk
    return 0


def _rotating(convert: Callable[[bytes], bytes], chunks: list[bytes]) -> Callable[[bytes], bytes]:
    """A step that ignores its frame and converts the next of `chunks`, round and round."""
    position = [-1]

    def step(_: bytes) -> bytes:
        position[0] = (position[0] + 1) % len(chunks)
        return convert(chunks[position[0]])

    return step


if __name__ == "__main__":
    sys.exit(main())
