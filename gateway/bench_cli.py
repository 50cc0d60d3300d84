"""`voice-gateway bench`: the load benchmark (benchmarks/load.py), run from a source checkout.

benchmarks/ is not part of the installed package (pyproject includes gateway, providers, audio), so
this shim puts the checkout root on sys.path before importing it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_bench(args: argparse.Namespace) -> int:
    if not (ROOT / "benchmarks" / "load.py").is_file():
        print("voice-gateway bench: needs a source checkout (benchmarks/load.py not found)", file=sys.stderr)
        return 2
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.load import run_bench as run

    return run(args)
