"""The transcription benchmark keeps working (a few requests, a second of load). Structure only, never
speed: figures depend on the machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_transcription_benchmark_smoke() -> None:
    proc = subprocess.run([sys.executable, "benchmarks/transcription.py", "--requests", "5", "--concurrency", "2",
                           "--seconds", "1"], cwd=REPO, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for label in ("direct", "gateway", "overhead"):
        assert re.search(rf"^{label}\s+-?[\d.]+\s+-?[\d.]+\s+-?[\d.]+", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"throughput: gateway \d+ req/s .* ms gateway CPU per request", proc.stdout), proc.stdout
    assert re.search(r"direct to the fake \d+ req/s", proc.stdout), proc.stdout
