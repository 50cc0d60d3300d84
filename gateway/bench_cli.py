"""`voice-gateway bench`: runs the load benchmark (benchmarks/load.py) of a source checkout.

The benchmark is not part of the installed package (it drives the gateway, fakes and load
generators as separate processes from the checkout), so the package never imports it: from a
checkout (an editable install) this runs `python benchmarks/load.py ARGS` in a child process;
from an installed wheel it says how to run it from a checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "load.py"
HOW = ("voice-gateway bench needs a source checkout: clone the repository, `pip install -e '.[test,bench]'`, "
       "then run `voice-gateway bench [OPTIONS]` or `python benchmarks/load.py [OPTIONS]` from its root")


def run_bench(args: argparse.Namespace) -> int:
    if not SCRIPT.is_file():
        print(HOW, file=sys.stderr)
        return 2
    rest = list(getattr(args, "rest", None) or [])
    rest = rest[1:] if rest[:1] == ["--"] else rest
    return subprocess.run([sys.executable, str(SCRIPT), *rest], cwd=ROOT, check=False).returncode
